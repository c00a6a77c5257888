"""MemoryStore: the store contract in a dict, for tests and ephemeral contexts.

It keeps encoded blobs, not State objects, so it exercises the same codec, size limits and
corruption checks as the durable stores; only durability is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import attrs

from storage._codec import SnapshotCodec
from storage._exceptions import (
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    LeaseLost,
    NotOwner,
    PersistenceError,
    RecoveryPointNotFoundError,
    SnapshotNotFoundError,
    VersionConflict,
)
from storage._store import (
    DEFAULT_RETAIN_HEADS,
    ContextExport,
    Lease,
    RecoveryPoint,
    Store,
    Write,
    take_lease,
)

__all__ = ["MemoryStore"]


@attrs.define
class _Context:
    version: int
    heads: dict[int, bytes]
    journal: dict[int, bytes] = attrs.field(factory=dict)
    points: dict[int, tuple[RecoveryPoint, bytes]] = attrs.field(factory=dict)


@attrs.frozen
class _LeaseRecord:
    owner: str | None
    epoch: int
    expires_at: float  # on the store's clock
    wanted_by: str | None = None

    def admits(self, epoch: int, now: float) -> bool:
        """Whether a write fenced with `epoch` may go in: its lease still holds."""
        return self.owner is not None and self.epoch == epoch and self.expires_at > now

    def lease(self, name: str, now: float) -> Lease:
        return Lease(name, self.owner, self.epoch, self.expires_at - now, self.wanted_by)


class MemoryStore(Store):
    """A thread-safe in-process store; everything is gone when the process ends.

    `clock` (seconds, monotonic) is the store's clock for leases; tests pass their own.
    """

    def __init__(
        self,
        *,
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(codec=codec, retain_heads=retain_heads)
        self._clock = clock
        self._leases: dict[str, _LeaseRecord] = {}
        # storage/ is plain library code shared by threads; a lock is the right tool here
        # (the no-locks rule is for actors/, whose state belongs to one actor each).
        self._lock = threading.Lock()
        self._contexts: dict[str, _Context] = {}
        self._next_point_id = 1
        self._closed = False

    def close(self) -> None:
        """Forget everything; later calls raise `PersistenceError`."""
        with self._lock:
            self._closed = True
            self._contexts.clear()

    def corrupt(self, name: str, version: int, blob: bytes) -> None:
        """Replace a stored head blob as is, for tests that plant damage."""
        with self._lock:
            self._get(name).heads[version] = blob

    def _get(self, name: str) -> _Context:
        if self._closed:
            raise PersistenceError("memory store is closed")
        context = self._contexts.get(name)
        if context is None:
            raise ContextNotFoundError(name)
        return context

    def _create(self, name: str, version: int, blob: bytes) -> None:
        with self._lock:
            if self._closed:
                raise PersistenceError("memory store is closed")
            if name in self._contexts:
                raise ContextExistsError(name)
            self._contexts[name] = _Context(version, {version: blob})

    def _read_head(self, name: str) -> tuple[int, bytes]:
        with self._lock:
            heads = self._get(name).heads
            newest = max(heads)
            return newest, heads[newest]

    def _head_version(self, name: str) -> int:
        with self._lock:
            return self._get(name).version

    supports_journal = True
    supports_leases = True
    shared_between_processes = False
    commits_creates = True

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        results: list[ContextError | None] = []
        with self._lock:
            if self._closed:
                raise PersistenceError("memory store is closed")
            refused: set[str] = set()  # a write after a refused one of its context is too
            now = self._clock()
            for write in writes:
                context = self._contexts.get(write.context)
                if write.create:
                    results.append(self._create_in_commit(write, refused))
                    continue
                if context is None:
                    results.append(ContextNotFoundError(write.context))
                    continue
                if write.lease is not None and write.context not in refused:
                    record = self._leases.get(write.context)
                    if record is None or not record.admits(write.lease, now):
                        current = 0 if record is None else record.epoch
                        refused.add(write.context)
                        results.append(LeaseLost(write.context, write.lease, current))
                        continue
                if context.version != write.expected or write.context in refused:
                    refused.add(write.context)
                    results.append(VersionConflict(write.context, write.expected, context.version))
                    continue
                if write.journal:
                    context.journal[write.version] = write.blob
                else:
                    context.heads[write.version] = write.blob
                    for old in sorted(context.heads)[: -self.retain_heads]:
                        del context.heads[old]
                    oldest = min(context.heads)
                    for old in [v for v in context.journal if v <= oldest]:
                        del context.journal[old]
                context.version = write.version
                results.append(None)
        return results

    def _create_in_commit(self, write: Write, refused: set[str]) -> ContextError | None:
        """A create of `_commit`'s batch (the lock held): refused if the context exists."""
        if write.context in self._contexts or write.context in refused:
            refused.add(write.context)
            return ContextExistsError(write.context)
        self._contexts[write.context] = _Context(write.version, {write.version: write.blob})
        return None

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        with self._lock:
            self._check_open()
            now = self._clock()
            record = self._leases.get(name)
            try:
                lease = take_lease(
                    None if record is None else record.lease(name, now), name, owner, ttl
                )
            except NotOwner:
                if record is not None and record.wanted_by is None:
                    self._leases[name] = attrs.evolve(record, wanted_by=owner)
                raise
            self._leases[name] = _LeaseRecord(owner, lease.epoch, now + ttl, lease.wanted_by)
            return lease

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        with self._lock:
            self._check_open()
            now = self._clock()
            leases = {}
            for name, epoch in epochs.items():
                record = self._leases.get(name)
                if record is not None and record.admits(epoch, now) and record.owner == owner:
                    record = self._leases[name] = attrs.evolve(record, expires_at=now + ttl)
                leases[name] = _read_record(record, name, now)
            return leases

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        with self._lock:
            self._check_open()
            now = self._clock()
            return {name: _read_record(self._leases.get(name), name, now) for name in names}

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        with self._lock:
            self._check_open()
            record = self._leases.get(name)
            now = self._clock()
            if record is not None and record.admits(epoch, now) and record.owner == owner:
                self._leases[name] = _LeaseRecord(None, epoch, now)

    def _check_open(self) -> None:
        if self._closed:
            raise PersistenceError("memory store is closed")

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        with self._lock:
            journal = self._get(name).journal
            return sorted((v, blob) for v, blob in journal.items() if v > after)

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        with self._lock:  # one moment: no write of another thread in between
            context = self._get(name)
            head = context.version
            entries = sorted((v, b) for v, b in context.journal.items() if after < v <= head)
            heads = sorted((v, b) for v, b in context.heads.items() if after < v <= head)
            return head, entries, heads

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        with self._lock:  # one moment: no write of another thread in between
            context = self._get(name)
            newest = max(context.heads)
            entries = sorted((v, blob) for v, blob in context.journal.items() if v > newest)
            return context.version, newest, context.heads[newest], entries

    def _export_context(self, name: str) -> ContextExport:
        with self._lock:  # one moment: no write of another thread in between
            context = self._get(name)
            return ContextExport(
                name,
                context.version,
                tuple(context.heads.items()),
                tuple(context.journal.items()),
                tuple(context.points.values()),
            )

    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        with self._lock:
            if self._closed:
                raise PersistenceError("memory store is closed")
            if export.name in self._contexts and not replace:
                raise ContextExistsError(export.name)
            point_ids = list(
                range(self._next_point_id, self._next_point_id + len(export.recovery_points))
            )
            self._next_point_id += len(point_ids)
            points = {
                point_id: (attrs.evolve(point, point_id=point_id), blob)
                for point_id, (point, blob) in zip(point_ids, export.recovery_points, strict=True)
            }
            self._contexts[export.name] = _Context(
                export.head, dict(export.snapshots), dict(export.journal), points
            )
            return point_ids

    def _delete(self, name: str) -> None:
        with self._lock:
            self._get(name)
            del self._contexts[name]

    def _exists(self, name: str) -> bool:
        with self._lock:
            if self._closed:
                raise PersistenceError("memory store is closed")
            return name in self._contexts

    def _list_contexts(self) -> list[str]:
        with self._lock:
            if self._closed:
                raise PersistenceError("memory store is closed")
            return list(self._contexts)

    def _list_versions(self, name: str) -> list[int]:
        with self._lock:
            return list(self._get(name).heads)

    def _read_version(self, name: str, version: int) -> bytes:
        with self._lock:
            blob = self._get(name).heads.get(version)
            if blob is None:
                raise SnapshotNotFoundError(name, version)
            return blob

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        with self._lock:
            context = self._get(name)
            point_id = self._next_point_id
            self._next_point_id += 1
            context.points[point_id] = (
                RecoveryPoint(name, point_id, version, label, created_at),
                blob,
            )
            return point_id

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        with self._lock:
            return [point for point, _ in self._get(name).points.values()]

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        with self._lock:
            entry = self._point(name, point_id)
            return entry[0].version, entry[1]

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        with self._lock:
            self._point(name, point_id)
            del self._contexts[name].points[point_id]

    def _point(self, name: str, point_id: int) -> tuple[RecoveryPoint, bytes]:
        try:
            return self._get(name).points[point_id]
        except (ContextNotFoundError, KeyError):
            raise RecoveryPointNotFoundError(name, point_id) from None


def _read_record(record: _LeaseRecord | None, name: str, now: float) -> Lease:
    return Lease(name, None, 0, 0.0) if record is None else record.lease(name, now)
