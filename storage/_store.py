"""The store contract every backend fulfils, and the base class that does the shared half.

A store keeps, per context, the last `retain_heads` full snapshots, a journal of deltas
written since the oldest of them (on stores that keep one, `supports_journal`), and any
number of labelled recovery points. The *head* is the newest version: the newest snapshot
with the journal entries after it applied. Every write is atomic, and the only way to move
the head is compare-and-set on its version, so concurrent writers (threads or processes) can
never both install the same next version. Writes can be batched: `commit()` applies many in
one transaction (group commit) and reports the outcome of each. `export_context()` reads
everything kept of one context as of one moment, and `import_context()` writes such an export
in one transaction: what copying contexts between stores is made of (`storage/_copy.py`).

Backends subclass `Store` and implement the blob-level primitives (`_create`, `_read_head`,
...). The base class validates names, encodes and decodes States, and checks versions, so
those rules are written once for every backend.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Collection
from datetime import datetime
from types import TracebackType
from typing import Self

import attrs

from storage._codec import SnapshotCodec
from storage._delta import Delta
from storage._exceptions import (
    ConfigurationError,
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    InvalidArgumentError,
    NoIntactSnapshotError,
    NotOwner,
    StateError,
    UnsupportedFormatError,
    VersionConflict,
)
from storage._history import (
    EARLIEST,
    HistoryEntry,
    Kept,
    check_at,
    check_limit,
    check_since,
    check_version,
    select,
)
from storage._names import validate_context_name
from storage._state import State, utc_now

__all__ = [
    "DEFAULT_RETAIN_HEADS",
    "Changes",
    "ContextExport",
    "Damage",
    "Lease",
    "RecoveryPoint",
    "Store",
    "Write",
    "latest_parts",
    "recovery_point_id",
]

_DAMAGE = (CorruptSnapshotError, UnsupportedFormatError)

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


def recovery_point_id(name: str, point: object) -> int:
    """The id of recovery `point` of context `name`: a `RecoveryPoint` or an int id.

    Raises:
        InvalidArgumentError: `point` is neither, or is a `RecoveryPoint` of another context.
    """
    if isinstance(point, RecoveryPoint):
        if point.context != name:
            msg = (
                f"recovery point {point.point_id} belongs to context {point.context!r}, "
                f"not {name!r}"
            )
            raise InvalidArgumentError(msg)
        return point.point_id
    if isinstance(point, int) and not isinstance(point, bool):
        return point
    msg = f"a recovery point is a RecoveryPoint or its int id, got {type(point).__name__} {point!r}"
    raise InvalidArgumentError(msg)


@attrs.frozen
class Write:
    """One encoded write, made by `Store.prepare_snapshot()` or `Store.prepare_delta()`.

    Encoding happens where the write is prepared (the tracker's thread), so the thread that
    commits a batch only does I/O.
    """

    context: str
    expected: int
    """The head version the write requires; anything else is a `VersionConflict`."""
    version: int
    """The head version after the write."""
    blob: bytes
    journal: bool
    """True for a journal entry (a delta), False for a full snapshot."""
    lease: int | None = None
    """The epoch of the writer's lease on the context (`acquire_lease`), or None for an
    unfenced write. A fenced write is refused with `LeaseLost` unless that lease still holds
    by the store's clock."""
    create: bool = False
    """True for the first snapshot of a new context (`Store.prepare_create()`, `expected`
    -1): refused with `ContextExistsError` if a context of that name exists."""


@attrs.frozen
class Lease:
    """A context's lease as the store holds it (`Store.acquire_lease`): which process may
    write the context, until when by the store's clock, and who is waiting for it."""

    context: str
    owner: str | None
    """The holder; None if the lease was never taken or was released."""
    epoch: int
    """How often the lease has been taken (0: never). It only grows, so a write fenced with
    an older epoch is known to come from a former owner."""
    expires_in: float
    """Seconds until it ends unless renewed, by the store's clock (<= 0: ended)."""
    wanted_by: str | None = None
    """A process that asked for the lease while it was held: the holder should hand over."""

    @property
    def held(self) -> bool:
        """Whether someone holds it now."""
        return self.owner is not None and self.expires_in > 0

    def held_by(self, owner: str, epoch: int | None = None) -> bool:
        """Whether `owner` holds it now (with `epoch`, if given)."""
        return self.held and self.owner == owner and epoch in (None, self.epoch)


@attrs.frozen
class Changes:
    """What `Store.read_changes` found: the head, and each version on the way to it."""

    head: int
    steps: tuple[Delta | State, ...] | None
    """One per version after the one asked about, in order: its `Delta`, or its `State`
    where a snapshot was written instead; None if one of them is no longer kept."""


@attrs.frozen
class ContextExport:
    """Everything a store keeps of one context as of one moment, as stored (encoded blobs):
    what `Store.export_context` reads and `Store.import_context` writes.

    The head is the newest snapshot with the journal entries after it applied, as everywhere
    in a store; older snapshots and the entries between them are the history the store still
    keeps (`retain_heads`).
    """

    name: str
    head: int
    """The head version."""
    snapshots: tuple[tuple[int, bytes], ...]
    """The retained head snapshots, (version, blob), oldest first."""
    journal: tuple[tuple[int, bytes], ...]
    """The journal entries, (version, blob), oldest first."""
    recovery_points: tuple[tuple[RecoveryPoint, bytes], ...]
    """The recovery points with their snapshots, oldest (lowest id) first. Their ids are the
    exporting store's; `import_context` gives them new ones."""


@attrs.frozen
class Damage:
    """One stored record that could not be read."""

    kind: str
    """"snapshot", "journal entry" or "recovery point"."""
    ident: int
    """The record's version, or the recovery point's id."""
    error: str
    """What was wrong with it."""


class Store(abc.ABC):
    """A durable home for context snapshots; see the module docstring for the contract.

    Every method may raise `PersistenceError` (with the backend's error as `__cause__`) and
    `InvalidContextNameError`; the others it raises are listed per method.
    """

    def __init__(
        self, *, codec: SnapshotCodec | None = None, retain_heads: int = DEFAULT_RETAIN_HEADS
    ) -> None:
        if isinstance(retain_heads, bool) or not isinstance(retain_heads, int) or retain_heads < 1:
            msg = f"retain_heads must be a whole number of at least 1, got {retain_heads!r}"
            raise ConfigurationError(msg)
        self.codec = codec if codec is not None else SnapshotCodec()
        self.retain_heads = retain_heads

    supports_journal: bool = False
    """Whether the store keeps a journal of deltas (else only full snapshots can be written)."""

    shared_between_processes: bool = True
    """Whether other processes can write the same contexts (so it is worth watching)."""

    commits_in_batches: bool = False
    """Whether `commit()` of many writes costs about as much as of one (one transaction and
    one fsync; on Redis one round trip, which the server syncs once), so that funnelling
    every tracker's writes through one writer pays off."""

    commits_creates: bool = False
    """Whether `_commit()` applies creates (`Write.create`) itself, in the batch's one
    transaction; else `commit()` makes those contexts first, one `_create()` each."""

    # -- the contract ---------------------------------------------------------------------

    def create(self, state: State) -> None:
        """Store `state` as the first head of a new context named `state.context`.

        Raises:
            ContextExistsError: a context of that name exists.
        """
        name = validate_context_name(state.context)
        self._create(name, state.version, self.codec.encode(state))

    def read_head(self, name: str) -> State:
        """The newest version of `name`: its newest snapshot with later journal entries applied.

        Raises:
            ContextNotFoundError: no such context.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        return _intact(name, *self.read_latest(name))

    def read_latest(self, name: str) -> tuple[State, tuple[Damage, ...]]:
        """The newest version of `name` that can be read intact, and the damage met on the way.

        Tries the snapshots newest first; from the first intact one, applies the journal
        entries after it until one is damaged, missing or out of sequence. With no damage the
        result is the head.

        Raises:
            ContextNotFoundError: no such context.
            NoIntactSnapshotError: no snapshot is intact (its `damage` lists what was found).
        """
        name = validate_context_name(name)
        return self._latest(name, *self._read_latest_parts(name))

    def read_heads(self, names: Collection[str]) -> dict[str, State]:
        """The newest version of each of `names` that is stored: `read_head` of each, in one
        call, for reading many contexts at once (one read transaction on SQLite, one
        statement on PostgreSQL, one round trip on Redis). Names that are not stored are
        left out; a name given twice is read once; the result follows the order of `names`.

        Raises:
            InvalidContextNameError: a name is invalid (nothing is read).
            InvalidArgumentError: `names` is a str, not a collection of names.
            CorruptSnapshotError: a context's newest snapshot or a journal entry above it is
                damaged (`read_latest` of that context says what remains intact).
        """
        if isinstance(names, str | bytes):
            msg = f"read_heads() takes a collection of context names, not the string {names!r}"
            raise InvalidArgumentError(msg)
        wanted = list(dict.fromkeys(validate_context_name(name) for name in names))
        if not wanted:
            return {}
        parts = self._read_latest_parts_many(wanted)
        heads = {}
        for name in wanted:
            if name in parts:
                heads[name] = _intact(name, *self._latest(name, *parts[name]))
        return heads

    def _latest(
        self, name: str, head: int, newest: int, blob: bytes, journal: list[tuple[int, bytes]]
    ) -> tuple[State, tuple[Damage, ...]]:
        """`read_latest` from its parts (`_read_latest_parts`)."""
        damage: list[Damage] = []
        state = None
        try:
            state = self.codec.decode(blob, context=name, version=newest)
        except _DAMAGE as exc:
            damage.append(Damage("snapshot", newest, str(exc)))
            for version in sorted(self._list_versions(name), reverse=True):
                if version >= newest:
                    continue
                try:
                    state = self.read_version(name, version)
                    break
                except _DAMAGE as exc:
                    damage.append(Damage("snapshot", version, str(exc)))
        if state is None:
            details = "; ".join(f"{d.kind} {d.ident}: {d.error}" for d in damage)
            raise NoIntactSnapshotError(
                f"context {name!r} has no intact snapshot ({details})", tuple(damage)
            )
        entries = journal if state.version == newest else self._read_journal(name, state.version)
        # Replay the entries that follow on without a gap; a gap ends replay like damage.
        gap = next(
            (i for i, (version, _) in enumerate(entries) if version != state.version + 1 + i),
            None,
        )
        try:
            self.codec.replay(state, entries[:gap])
        except _DAMAGE as exc:
            damage.append(Damage("journal entry", state.version + 1, str(exc)))
        else:
            if gap is not None:
                missing = f"missing (next is {entries[gap][0]})"
                damage.append(Damage("journal entry", state.version + 1, missing))
        if state.version < head and not damage:
            damage.append(Damage("journal entry", state.version + 1, "missing"))
        return state, tuple(damage)

    def read_changes(self, name: str, after: int) -> Changes:
        """Every version of `name` after `after` up to the head, read as of one moment: how
        a tracker catches up with what other processes wrote.

        Each version comes as its journal entry (a `Delta`) or, where a full snapshot was
        written instead, as that `State`. If some version in between is kept neither way any
        more (retention dropped it), `steps` is None: read the whole head instead.

        Raises:
            ContextNotFoundError: no such context.
            CorruptSnapshotError: an entry or snapshot on the way is damaged.
        """
        name = validate_context_name(name)
        head, entries, snapshots = self._read_changes_parts(name, after)
        journal, heads = dict(entries), dict(snapshots)
        steps: list[Delta | State] = []
        for version in range(after + 1, head + 1):
            if version in journal:
                steps.append(
                    self.codec.decode_delta(journal[version], context=name, version=version)
                )
            elif version in heads:
                steps.append(self.codec.decode(heads[version], context=name, version=version))
            else:
                return Changes(head, None)
        return Changes(head, tuple(steps))

    def head_version(self, name: str) -> int:
        """The version of the head snapshot, without reading it.

        Raises:
            ContextNotFoundError: no such context.
        """
        return self._head_version(validate_context_name(name))

    def compare_and_set(
        self, state: State, expected_version: int, cause: str | None = None
    ) -> None:
        """Make `state` the head of its context if the head is still `expected_version`.

        `state.version` must be greater than `expected_version` (a tracker that batches
        writes skips the versions it never stored). It is written as a full snapshot; older
        snapshots beyond `retain_heads`, and journal entries no retained snapshot needs, are
        dropped in the same transaction. `cause` (what made the version: the runtime's
        `ChangeCause` value) is recorded in the snapshot, for `history()`.

        Raises:
            VersionConflict: the stored head is not `expected_version`; nothing was written.
            ContextNotFoundError: no such context.
            StateError: `state.version` is not greater than `expected_version`.
        """
        self._commit_one(self.prepare_snapshot(state, expected_version, cause))

    def append(self, delta: Delta, expected_version: int) -> None:
        """Journal `delta` as the new head if the head is still `expected_version`.

        Raises: as `compare_and_set`, and `StateError` if the store keeps no journal or
        `delta.version` does not follow `expected_version`.
        """
        self._commit_one(self.prepare_delta(delta, expected_version))

    def prepare_snapshot(
        self,
        state: State,
        expected_version: int,
        cause: str | None = None,
        *,
        lease: int | None = None,
    ) -> Write:
        """Validate and encode a full-snapshot write for `commit()`, fenced by the lease of
        epoch `lease` if given (see `Write.lease`).

        Raises:
            StateError: `state.version` is not greater than `expected_version`.
            StateTooLargeError: the State is over the codec's size limit.
        """
        name = validate_context_name(state.context)
        if state.version <= expected_version:
            raise StateError(
                f"context {name!r}: a write after version {expected_version} must carry a "
                f"greater version, not {state.version}"
            )
        blob = self.codec.encode(state, cause)
        return Write(name, expected_version, state.version, blob, journal=False, lease=lease)

    def prepare_create(self, state: State) -> Write:
        """Validate and encode, for `commit()`, the write that creates context
        `state.context` with `state` as its first head (what `create()` stores at once).
        Writes of the context chained after it in the same batch expect `state.version`.

        Raises:
            StateTooLargeError: the State is over the codec's size limit.
        """
        name = validate_context_name(state.context)
        return Write(name, -1, state.version, self.codec.encode(state), journal=False, create=True)

    def prepare_delta(
        self, delta: Delta, expected_version: int, *, lease: int | None = None
    ) -> Write:
        """Validate and encode a journal write for `commit()`, fenced by the lease of epoch
        `lease` if given (see `Write.lease`).

        Raises:
            StateError: the store keeps no journal, or the versions do not follow.
            StateTooLargeError: the delta is over the codec's size limit.
        """
        name = validate_context_name(delta.context)
        if not self.supports_journal:
            raise StateError(f"{type(self).__name__} keeps no journal; write snapshots")
        if delta.version != expected_version + 1:
            raise StateError(
                f"context {name!r}: the delta after version {expected_version} must carry "
                f"version {expected_version + 1}, not {delta.version}"
            )
        blob = self.codec.encode_delta(delta)
        return Write(name, expected_version, delta.version, blob, journal=True, lease=lease)

    def commit(self, writes: list[Write]) -> list[ContextError | None]:
        """Apply prepared writes, in order, and return the outcome of each: None, or the
        expected error (`VersionConflict`, `ContextNotFoundError`, `LeaseLost` for a fenced
        write whose lease has ended) that refused it alone.

        Memory, SQLite and PostgreSQL apply the batch in one transaction: group commit, one
        fsync for all. Redis applies each write atomically on its own (a context's chain of
        journal entries in one script), all in one round trip per server.

        Several writes of one context form a chain (versions v+1, v+2, ... each expecting the
        one before, prepared before any is stored): a write after a refused write of its
        context is refused too, with `VersionConflict`, even where the head it expects is
        there, since that head would be another writer's version.

        A chain may start with a create (`prepare_create()`): refused with
        `ContextExistsError` if the context exists (the rest of its chain then with
        `VersionConflict`). Stores whose `commits_creates` is true apply it in the batch's
        transaction; the others create such contexts first, each in its own call to the
        backend, then commit the rest (so a failure of the rest may follow stored creates).

        Raises:
            PersistenceError: the batch failed. On a batching store none of it was written;
                on another, any of its writes may have been (Redis sends them all in one
                round trip); read the head versions to know.
        """
        if self.commits_creates or not any(write.create for write in writes):
            return self._commit(writes)
        return self._commit_after_creates(writes)

    def _commit_after_creates(self, writes: list[Write]) -> list[ContextError | None]:
        """`commit()` on a store whose `_commit` takes no creates: each create through
        `_create()`, in order, then the other writes in one `_commit()` (less those chained
        after a refused create, refused too)."""
        results: list[ContextError | None] = [None] * len(writes)
        refused: dict[str, ContextError] = {}
        rest: list[int] = []
        for i, write in enumerate(writes):
            if write.context in refused:
                results[i] = VersionConflict(write.context, write.expected, -1)
            elif write.create:
                try:
                    self._create(write.context, write.version, write.blob)
                except ContextExistsError as exc:
                    results[i] = refused[write.context] = exc
            else:
                rest.append(i)
        for i, result in zip(rest, self._commit([writes[i] for i in rest]), strict=True):
            results[i] = result
        return results

    def _commit_one(self, write: Write) -> None:
        (error,) = self._commit([write])
        if error is not None:
            raise error

    def delete(self, name: str) -> None:
        """Delete context `name` with all its snapshots and recovery points.

        Raises:
            ContextNotFoundError: no such context.
        """
        self._delete(validate_context_name(name))

    def head_versions(self, names: list[str]) -> dict[str, int]:
        """The head versions of those of `names` that exist (one round trip where the
        backend can): how a process notices what other processes wrote."""
        valid = [validate_context_name(name) for name in names]
        return self._head_versions(valid) if valid else {}

    def change_token(self) -> object | None:
        """A value that changes whenever another connection may have written: comparing it
        with the last one is cheaper than reading head versions. None: unknown, poll.

        A store that listens per context (a Redis Cluster with sharded pub/sub) watches only
        the contexts last named to `follow()`, and returns None until `follow()` is called.
        """
        return None

    def follow(self, names: Collection[str]) -> None:
        """Say which contexts later `change_token()` calls are about: a store that can
        listen per context (a Redis Cluster with sharded pub/sub) listens to exactly these,
        from its next `change_token()` call on; every other store listens to all writes and
        ignores this. It does no I/O and never fails; each call replaces the last one's
        names."""
        del names  # stores that hear every write have nothing to narrow

    def _head_versions(self, names: list[str]) -> dict[str, int]:
        versions = {}
        for name in names:
            try:
                versions[name] = self._head_version(name)
            except ContextNotFoundError:
                continue
        return versions

    # -- leases: one owner per context across processes ------------------------------------

    supports_leases: bool = False
    """Whether the store keeps leases (`acquire_lease`) and fences writes with them."""

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        """Take the lease of context `name` for `owner` for `ttl` seconds of the store's
        clock, and return it: free or ended, it is taken with the next epoch; held by
        `owner` already, it is extended with its epoch. The context need not exist.

        Raises:
            NotOwner: another owner holds it; the store notes that `owner` wants it
                (`Lease.wanted_by`), so that the holder hands over.
            InvalidArgumentError: `owner` is not a non-empty string or `ttl` not positive.
        """
        return self._acquire_lease(validate_context_name(name), _owner(owner), _ttl(ttl))

    def renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        """Extend by `ttl` seconds each lease of `epochs` (context name -> epoch) that
        `owner` still holds with that epoch, in one round trip where the backend can, and
        return every named lease as it is now: one not `held_by(owner, epoch)` is lost."""
        names = {validate_context_name(name): epoch for name, epoch in epochs.items()}
        if not names:
            return {}
        return self._renew_leases(_owner(owner), names, _ttl(ttl))

    def read_leases(self, names: list[str]) -> dict[str, Lease]:
        """The leases of `names` as they are now (never taken: epoch 0), changing nothing."""
        valid = [validate_context_name(name) for name in names]
        return self._read_leases(valid) if valid else {}

    def release_lease(self, name: str, owner: str, epoch: int) -> None:
        """End the lease of `name` now if `owner` holds it with `epoch` (else nothing): a
        write fenced with it is refused from now on, and the next taker gets `epoch + 1`."""
        self._release_lease(validate_context_name(name), _owner(owner), epoch)

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        raise ConfigurationError(f"{type(self).__name__} keeps no leases")

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        raise ConfigurationError(f"{type(self).__name__} keeps no leases")

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        raise ConfigurationError(f"{type(self).__name__} keeps no leases")

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        raise ConfigurationError(f"{type(self).__name__} keeps no leases")

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

    def read_recovery_point(self, name: str, point: RecoveryPoint | int) -> State:
        """The State kept in recovery point `point` (a `RecoveryPoint` or its id) of `name`.

        Raises:
            InvalidArgumentError: `point` is neither, or is a point of another context.
            RecoveryPointNotFoundError: no such point (or no such context).
            CorruptSnapshotError: the point's snapshot is damaged.
        """
        name = validate_context_name(name)
        version, blob = self._read_recovery_point(name, recovery_point_id(name, point))
        return self.codec.decode(blob, context=name, version=version)

    def delete_recovery_point(self, name: str, point: RecoveryPoint | int) -> None:
        """Delete recovery point `point` (a `RecoveryPoint` or its id) of `name`.

        Raises:
            InvalidArgumentError: `point` is neither, or is a point of another context.
            RecoveryPointNotFoundError: no such point (or no such context).
        """
        name = validate_context_name(name)
        self._delete_recovery_point(name, recovery_point_id(name, point))

    def export_context(self, name: str) -> ContextExport:
        """Everything stored of context `name`: its head version, retained snapshots, journal
        entries and recovery points, as encoded blobs, read as of one moment.

        Another connection's write, retention or compaction meanwhile is wholly in the
        export or not at all, so the export is one consistent state of the context (what
        `copy_store` copies). Nothing above the head is included.

        Raises:
            ContextNotFoundError: no such context.
        """
        name = validate_context_name(name)
        export = self._export_context(name)
        # Sorted and cut at the head here, once, whatever order a backend reads them in.
        return ContextExport(
            name,
            export.head,
            tuple(sorted(e for e in export.snapshots if e[0] <= export.head)),
            tuple(sorted(e for e in export.journal if e[0] <= export.head)),
            tuple(sorted(export.recovery_points, key=lambda p: p[0].point_id)),
        )

    def import_context(
        self, export: ContextExport, *, replace: bool = False
    ) -> list[RecoveryPoint]:
        """Store `export` (from `export_context` of this or any store) as context
        `export.name`, in one transaction: the same head, snapshots and journal entries,
        byte for byte, and its recovery points with new ids of this store.

        Every blob is decoded first, with this store's codec, so nothing this store could
        not read is written. The store's `retain_heads` applies from its next write on: an
        export of a store that keeps more snapshots arrives with all of them.

        With `replace`, a context of that name is replaced whole (its snapshots, journal and
        recovery points deleted) in the same transaction; without, it is refused. On Redis,
        which does not roll a script back, a server failing half way leaves the context
        missing or complete, never a mix.

        Returns:
            The new recovery points, in the order of `export.recovery_points`.

        Raises:
            ContextExistsError: the context exists and `replace` is false; nothing written.
            InvalidArgumentError: `export` is not one consistent context: no snapshot, a
                version above the head or twice, journal entries that do not lead from the
                newest snapshot to the head, or a recovery point of another context.
            CorruptSnapshotError: a blob is damaged or holds another record; nothing written.
            UnsupportedFormatError: a blob is of a format this store's codec cannot read.
            StateError: the export holds journal entries and this store keeps no journal.
        """
        export = self._checked_export(export)
        point_ids = self._import_context(export, replace=bool(replace))
        return [
            RecoveryPoint(export.name, point_id, point.version, point.label, point.created_at)
            for point_id, (point, _) in zip(point_ids, export.recovery_points, strict=True)
        ]

    def _checked_export(self, export: ContextExport) -> ContextExport:
        """`export` sorted, once its shape is checked and every blob decoded."""
        if not isinstance(export, ContextExport):  # callers may be untyped
            msg = f"import_context takes a ContextExport, not {type(export).__name__}"  # type: ignore[unreachable]
            raise InvalidArgumentError(msg)
        name = validate_context_name(export.name)
        snapshots = sorted(export.snapshots)
        journal = sorted(export.journal)
        points = sorted(export.recovery_points, key=lambda p: p[0].point_id)

        def refuse(problem: str) -> InvalidArgumentError:
            return InvalidArgumentError(
                f"export of context {name!r} (head {export.head}): {problem}"
            )

        if not snapshots:
            raise refuse("it holds no snapshot")
        for kind, records in (("snapshot", snapshots), ("journal entry", journal)):
            versions = [v for v, _ in records]  # sorted: a repeated version is adjacent
            repeated = [a for a, b in itertools.pairwise(versions) if a == b]
            if repeated:
                raise refuse(f"it holds {kind} version {repeated[0]} more than once")
        above = [v for v, _ in (*snapshots, *journal) if v > export.head]
        if above:
            raise refuse(f"version {above[0]} is above the head")
        newest = snapshots[-1][0]
        tail = [v for v, _ in journal if v > newest]
        if tail != list(range(newest + 1, export.head + 1)):
            raise refuse(
                f"the journal entries after the newest snapshot ({newest}) are {tail}, "
                f"not every version up to the head"
            )
        if journal and not self.supports_journal:
            raise StateError(f"{type(self).__name__} keeps no journal; {name!r} has one")
        for point, _ in points:
            if point.context != name:
                raise refuse(f"recovery point {point.point_id} is of context {point.context!r}")
        for version, blob in snapshots:
            self.codec.decode(blob, context=name, version=version)
        for version, blob in journal:
            self.codec.decode_delta(blob, context=name, version=version)
        for point, blob in points:
            self.codec.decode(blob, context=name, version=point.version)
        return ContextExport(name, export.head, tuple(snapshots), tuple(journal), tuple(points))

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
    def _read_head(self, name: str) -> tuple[int, bytes]:
        """The newest snapshot of `name`: its version and blob."""

    @abc.abstractmethod
    def _head_version(self, name: str) -> int: ...

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        """Apply writes in order; backends that can batch (and journal) override this. The
        default writes snapshots one by one through `_compare_and_set`."""
        results: list[ContextError | None] = []
        refused: dict[str, ContextError] = {}  # a write after a refused one of its context
        for write in writes:
            if write.journal:
                raise StateError(f"{type(self).__name__} keeps no journal")
            if write.context in refused:
                results.append(refused[write.context])
                continue
            try:
                self._compare_and_set(write.context, write.expected, write.version, write.blob)
            except (VersionConflict, ContextNotFoundError) as exc:
                refused[write.context] = exc
                results.append(exc)
            else:
                results.append(None)
        return results

    def _compare_and_set(self, name: str, expected: int, version: int, blob: bytes) -> None:
        """Write one snapshot blob if the head is `expected`: the primitive of backends that
        do not override `_commit`."""
        raise NotImplementedError

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        """The journal entries of `name` with versions above `after`, in version order."""
        return []

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """What `read_changes` starts from: the head version, and the journal entries and
        the snapshots (version, blob) above `after` and at or below the head.

        Backends read them as of one moment; this default reads them one by one, for
        backends that cannot do better.
        """
        head = self._head_version(name)
        entries = [(v, blob) for v, blob in self._read_journal(name, after) if v <= head]
        versions = [v for v in self._list_versions(name) if after < v <= head]
        return head, entries, [(v, self._read_version(name, v)) for v in sorted(versions)]

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        """What `read_latest` starts from: the head version, the newest snapshot's version
        and blob, and the journal entries above that snapshot.

        Backends read the three as of one moment (a transaction, a script, a lock): read one
        by one, another process could snapshot and compact between the reads, and entries
        that were intact would look missing. This default reads them one by one, for
        backends that cannot do better.
        """
        head = self._head_version(name)
        newest, blob = self._read_head(name)
        return head, newest, blob, self._read_journal(name, newest)

    def _read_latest_parts_many(
        self, names: list[str]
    ) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
        """`_read_latest_parts` of each of `names` (valid, distinct) that is stored.

        Backends read them in one transaction, statement or round trip where they can (each
        context's parts as of one moment, as `_read_latest_parts` does); this default reads
        them one context at a time.
        """
        parts = {}
        for name in names:
            try:
                parts[name] = self._read_latest_parts(name)
            except ContextNotFoundError:
                continue
        return parts

    @abc.abstractmethod
    def _export_context(self, name: str) -> ContextExport:
        """Everything of `name` as of one moment (a transaction, a script, a lock); in any
        order, and may include what lies above the head: `export_context` sorts and cuts."""

    @abc.abstractmethod
    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        """Write a checked, sorted `export` in one transaction (refusing an existing context
        unless `replace`) and return the new ids of its recovery points, in order."""

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

    # -- history: the versions kept, and the State of each (storage/_history.py) -------------

    def history(
        self, name: str, since: int | None = None, limit: int | None = None
    ) -> list[HistoryEntry]:
        """The versions of `name` the store still keeps, oldest first, read as of one
        moment: each with its time, how it is stored and the keys it changed (see
        `HistoryEntry`). Only versions `since` and above; at most `limit` of them.

        What is kept: the last `retain_heads` snapshots and the journal since the oldest.

        Raises:
            InvalidArgumentError: `since` is not an int >= 0 or None, `limit` not an int
                >= 1 or None.
            ContextNotFoundError: no such context.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        since, limit = check_since(since), check_limit(limit)
        return select(self._kept(name).entries(), since, limit)

    def read_at(self, name: str, version: int) -> State:
        """The State of `name` as of `version`, rebuilt from what is kept (the newest
        snapshot at or below it, and the journal entries up to it), read as of one moment.

        Raises:
            InvalidArgumentError: `version` is not an int >= 0.
            VersionNotKeptError: that version cannot be rebuilt (its `kept` says which can).
            ContextNotFoundError: no such context.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        version = check_version(version)
        return self._kept(name).state_at(version)

    def read_as_of(self, name: str, at: datetime) -> State:
        """The State of `name` as of moment `at`: its newest kept version made at or before
        `at` (by `updated_at`), as `read_at` rebuilds it.

        Raises:
            InvalidArgumentError: `at` is not a timezone-aware datetime.
            VersionNotKeptError: every kept version was made after `at`.
            ContextNotFoundError: no such context.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        at = check_at(at)
        kept = self._kept(name)
        return kept.state_at(kept.version_at(at))

    def _kept(self, name: str) -> Kept:
        """Everything kept of `name`, read as of one moment (every backend's
        `_read_changes_parts` is such a read)."""
        name = validate_context_name(name)
        _, entries, snapshots = self._read_changes_parts(name, EARLIEST)
        return Kept(self.codec, name, entries, snapshots)


def latest_parts(
    heads: dict[str, int],
    newest: dict[str, tuple[int, bytes]],
    journal: dict[str, list[tuple[int, bytes]]],
) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
    """What a backend's `_read_latest_parts_many` returns, from what it read: each stored
    context's head version, its newest snapshot (version, blob) and the journal entries
    above that snapshot, by context.

    Raises:
        CorruptSnapshotError: a context has a head but no snapshot.
    """
    parts = {}
    for name, head in heads.items():
        if name not in newest:
            raise CorruptSnapshotError(
                f"context {name!r}: no snapshot at or below head version {head}"
            )
        version, blob = newest[name]
        parts[name] = (head, version, blob, sorted(journal.get(name, [])))
    return parts


def _intact(name: str, state: State, damage: tuple[Damage, ...]) -> State:
    """`state` if nothing was damaged on the way to it, else the error that says what was."""
    if damage:
        details = "; ".join(f"{d.kind} {d.ident}: {d.error}" for d in damage)
        raise CorruptSnapshotError(f"context {name!r}: {details}")
    return state


def _owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner or len(owner) > 200:
        msg = f"a lease owner is a non-empty string of at most 200 characters, not {owner!r}"
        raise InvalidArgumentError(msg)
    return owner


def _ttl(ttl: object) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < 86_400:
        msg = f"a lease lasts a positive number of seconds under a day, not {ttl!r}"
        raise InvalidArgumentError(msg)
    return float(ttl)


def take_lease(lease: Lease | None, name: str, owner: str, ttl: float) -> Lease:
    """The lease `owner` gets from `lease` (the record as stored, None if never taken), or
    `NotOwner`: the rule of `Store.acquire_lease` for backends that hold the record in
    memory or read it in a transaction. The result's `expires_in` is `ttl`."""
    if lease is None:
        return Lease(name, owner, 1, ttl)
    if lease.held_by(owner):
        return Lease(name, owner, lease.epoch, ttl, lease.wanted_by)
    if lease.held:
        assert lease.owner is not None
        raise NotOwner(name, lease.owner, lease.expires_in)
    return Lease(name, owner, lease.epoch + 1, ttl)
