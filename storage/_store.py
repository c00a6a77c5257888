"""The store contract every backend fulfils, and the base class that does the shared half.

A store keeps, per context, the last `retain_heads` head snapshots (the newest is *the* head)
and any number of labelled recovery points. Every write is atomic, and the only way to move a
head is compare-and-set on its version, so concurrent writers (threads or processes) can never
both install the same next version.

Backends subclass `Store` and implement the blob-level primitives (`_create`, `_read_head`,
...). The base class validates names, encodes and decodes States, and checks versions, so
those rules are written once for every backend.
"""

from __future__ import annotations

import abc
from datetime import datetime
from types import TracebackType
from typing import Self

import attrs

from storage._codec import SnapshotCodec
from storage._exceptions import StateError
from storage._names import validate_context_name
from storage._state import State, utc_now

__all__ = ["DEFAULT_RETAIN_HEADS", "RecoveryPoint", "Store"]

DEFAULT_RETAIN_HEADS = 3
"""How many head snapshots per context a store keeps unless told otherwise."""


@attrs.frozen
class RecoveryPoint:
    """A labelled full snapshot of a context, kept until deleted (the description, not data)."""

    context: str
    point_id: int
    version: int
    label: str | None
    created_at: datetime


class Store(abc.ABC):
    """A durable home for context snapshots; see the module docstring for the contract.

    Every method may raise `PersistenceError` (with the backend's error as `__cause__`) and
    `InvalidContextNameError`; the others it raises are listed per method.
    """

    def __init__(
        self, *, codec: SnapshotCodec | None = None, retain_heads: int = DEFAULT_RETAIN_HEADS
    ) -> None:
        if retain_heads < 1:
            msg = f"retain_heads must be at least 1, got {retain_heads!r}"
            raise ValueError(msg)
        self.codec = codec if codec is not None else SnapshotCodec()
        self.retain_heads = retain_heads

    # -- the contract ---------------------------------------------------------------------

    def create(self, state: State) -> None:
        """Store `state` as the first head of a new context named `state.context`.

        Raises:
            ContextExistsError: a context of that name exists.
        """
        name = validate_context_name(state.context)
        self._create(name, state.version, self.codec.encode(state))

    def read_head(self, name: str) -> State:
        """The newest snapshot of context `name`.

        Raises:
            ContextNotFoundError: no such context.
            CorruptSnapshotError: the head snapshot is damaged.
        """
        name = validate_context_name(name)
        version, blob = self._read_head(name)
        return self.codec.decode(blob, context=name, version=version)

    def head_version(self, name: str) -> int:
        """The version of the head snapshot, without reading it.

        Raises:
            ContextNotFoundError: no such context.
        """
        return self._head_version(validate_context_name(name))

    def compare_and_set(self, state: State, expected_version: int) -> None:
        """Make `state` the head of its context if the head is still `expected_version`.

        `state.version` must be greater than `expected_version` (a tracker that batches
        writes skips the versions it never stored). Older heads beyond `retain_heads` are
        dropped in the same transaction.

        Raises:
            VersionConflict: the stored head is not `expected_version`; nothing was written.
            ContextNotFoundError: no such context.
            StateError: `state.version` is not greater than `expected_version`.
        """
        name = validate_context_name(state.context)
        if state.version <= expected_version:
            raise StateError(
                f"context {name!r}: a write after version {expected_version} must carry a "
                f"greater version, not {state.version}"
            )
        self._compare_and_set(name, expected_version, state.version, self.codec.encode(state))

    def delete(self, name: str) -> None:
        """Delete context `name` with all its snapshots and recovery points.

        Raises:
            ContextNotFoundError: no such context.
        """
        self._delete(validate_context_name(name))

    def exists(self, name: str) -> bool:
        """Whether context `name` exists."""
        return self._exists(validate_context_name(name))

    def list_contexts(self) -> list[str]:
        """The names of all contexts, sorted."""
        return sorted(self._list_contexts())

    def list_versions(self, name: str) -> list[int]:
        """The versions of the retained head snapshots of `name`, newest first.

        Raises:
            ContextNotFoundError: no such context.
        """
        return sorted(self._list_versions(validate_context_name(name)), reverse=True)

    def read_version(self, name: str, version: int) -> State:
        """One retained head snapshot of `name`.

        Raises:
            ContextNotFoundError: no such context.
            SnapshotNotFoundError: that version is not retained.
            CorruptSnapshotError: that snapshot is damaged.
        """
        name = validate_context_name(name)
        return self.codec.decode(self._read_version(name, version), context=name, version=version)

    def create_recovery_point(self, state: State, label: str | None = None) -> RecoveryPoint:
        """Keep a full snapshot of `state` under a new id until it is deleted.

        Raises:
            ContextNotFoundError: no such context.
        """
        name = validate_context_name(state.context)
        if label is not None and not isinstance(label, str):
            raise StateError(f"recovery point label must be a str or None, not {label!r}")
        created_at = utc_now()
        point_id = self._create_recovery_point(
            name, state.version, label, created_at, self.codec.encode(state)
        )
        return RecoveryPoint(name, point_id, state.version, label, created_at)

    def list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        """The recovery points of `name`, oldest first.

        Raises:
            ContextNotFoundError: no such context.
        """
        points = self._list_recovery_points(validate_context_name(name))
        return sorted(points, key=lambda point: point.point_id)

    def read_recovery_point(self, name: str, point_id: int) -> State:
        """The State kept in recovery point `point_id` of `name`.

        Raises:
            RecoveryPointNotFoundError: no such point (or no such context).
            CorruptSnapshotError: the point's snapshot is damaged.
        """
        name = validate_context_name(name)
        version, blob = self._read_recovery_point(name, point_id)
        return self.codec.decode(blob, context=name, version=version)

    def delete_recovery_point(self, name: str, point_id: int) -> None:
        """Delete recovery point `point_id` of `name`.

        Raises:
            RecoveryPointNotFoundError: no such point (or no such context).
        """
        self._delete_recovery_point(validate_context_name(name), point_id)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's connections; the store must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a backend implements: names are valid, blobs are opaque ---------------------

    @abc.abstractmethod
    def _create(self, name: str, version: int, blob: bytes) -> None: ...

    @abc.abstractmethod
    def _read_head(self, name: str) -> tuple[int, bytes]: ...

    @abc.abstractmethod
    def _head_version(self, name: str) -> int: ...

    @abc.abstractmethod
    def _compare_and_set(self, name: str, expected: int, version: int, blob: bytes) -> None: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def _exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def _list_contexts(self) -> list[str]: ...

    @abc.abstractmethod
    def _list_versions(self, name: str) -> list[int]: ...

    @abc.abstractmethod
    def _read_version(self, name: str, version: int) -> bytes: ...

    @abc.abstractmethod
    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int: ...

    @abc.abstractmethod
    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]: ...

    @abc.abstractmethod
    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]: ...

    @abc.abstractmethod
    def _delete_recovery_point(self, name: str, point_id: int) -> None: ...
