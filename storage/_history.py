"""History and point-in-time reads: the versions a store still keeps, and the State of each.

What a store keeps of a context (see storage/_store.py): its newest `retain_heads` full
snapshots, and the journal entries written since the oldest of them. So every version from
the oldest retained snapshot up to the head that was stored at all can be rebuilt: a
snapshot is one, and a journal entry is the snapshot at or below it with the entries up to it
applied. Nothing older is kept; versions a batching tracker never stored (it wrote a later
snapshot instead) were never kept.

Everything here works on what one read returned (`Store._read_changes_parts`, which every
backend implements as of one moment), so a history or a point-in-time read never mixes two
moments, and reads never write.

What a stored version records: its version, its `updated_at`, whether it is a journal entry
or a full snapshot, for a journal entry the keys it set and removed, and what made it, as the
runtime's `ChangeCause` value ("update", "restore", "recovery"), in journal entries of format
3 and in snapshots written since (None where not recorded: older writes, a context's first
version, a batching tracker's flush). For a snapshot, the keys changed are found by
comparing it with the kept version before it; the oldest kept version has nothing to compare
with and is reported as a full snapshot (`changed` None).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Literal, TypeGuard

import attrs

from storage._codec import SnapshotCodec
from storage._delta import Delta
from storage._exceptions import ContextError, InvalidArgumentError
from storage._state import State

__all__ = [
    "HistoryEntry",
    "VersionNotKeptError",
    "check_at",
    "check_limit",
    "check_since",
    "check_version",
    "kept_ranges",
]

EARLIEST = -1
"""Below every version (versions start at 0): what `_read_changes_parts` reads after to get
everything kept."""


@attrs.frozen
class HistoryEntry:
    """One version of a context that the store still keeps."""

    context: str
    version: int
    updated_at: datetime
    """When that version was made (its `State.updated_at`)."""
    kind: Literal["journal", "snapshot"]
    """How it is stored: "journal" (an update's journal entry) or "snapshot" (a full
    snapshot: the first version, an update written whole every `snapshot_every` writes, a
    restore or the write of a batching tracker). What made it is `cause`."""
    previous: int | None
    """The version its changes are relative to: `version - 1` for a journal entry, the kept
    version before it for a snapshot (lower by more than one where a batching tracker wrote
    several updates as one snapshot), None for the oldest kept version."""
    changed: tuple[str, ...] | None
    """The data keys it set, sorted; None for a full snapshot with no kept version before it
    to compare with (the keys changed are unknown)."""
    removed: tuple[str, ...] = ()
    """The data keys it removed, sorted."""
    metadata_changed: tuple[str, ...] | None = ()
    """The metadata keys it set, sorted (None as for `changed`)."""
    metadata_removed: tuple[str, ...] = ()
    """The metadata keys it removed, sorted."""
    cause: str | None = None
    """What made it, as stored: the runtime's `ChangeCause` value ("update" for a tracker's
    update, "restore" for a restored recovery point, "recovery" for a State recovered past
    damage and written back); None where not recorded (the first version, a batching
    tracker's flush, and versions written before causes were stored)."""

    @property
    def full(self) -> bool:
        """Whether the keys it changed are unknown (a full snapshot, the oldest kept)."""
        return self.changed is None

    @property
    def keys(self) -> tuple[str, ...] | None:
        """Every data key it set or removed, sorted; None if unknown."""
        if self.changed is None:
            return None
        return tuple(sorted((*self.changed, *self.removed)))


class VersionNotKeptError(ContextError, LookupError):
    """The version asked for (or a version at or before the time asked for) can no longer be
    rebuilt from what the store keeps; `kept` lists the versions that can."""

    def __init__(
        self,
        name: str,
        kept: Iterable[int],
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.at = at
        self.kept = tuple(kept)
        wanted = f"version {version}" if at is None else f"version made at or before {at}"
        ranges = ", ".join(
            str(low) if low == high else f"{low}-{high}" for low, high in kept_ranges(self.kept)
        )
        where = f"versions kept: {ranges}" if ranges else "it keeps no version"
        super().__init__(f"context {name!r} keeps no {wanted} ({where})")


def kept_ranges(versions: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted versions as runs of consecutive ones: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for version in sorted(versions):
        if runs and runs[-1][1] == version - 1:
            runs[-1] = (runs[-1][0], version)
        else:
            runs.append((version, version))
    return runs


# -- arguments --------------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_since(since: object) -> int | None:
    """`since` as history's lowest version, or raise `InvalidArgumentError`."""
    if since is None or (_is_int(since) and since >= 0):
        return since
    msg = f"since_version must be a version (an int >= 0) or None, not {since!r}"
    raise InvalidArgumentError(msg)


def check_limit(limit: object) -> int | None:
    """`limit` as history's largest count, or raise `InvalidArgumentError`."""
    if limit is None or (_is_int(limit) and limit >= 1):
        return limit
    msg = f"limit must be a whole number of at least 1 or None, not {limit!r}"
    raise InvalidArgumentError(msg)


def check_version(version: object) -> int:
    """`version` as a version to read, or raise `InvalidArgumentError`."""
    if _is_int(version) and version >= 0:
        return version
    msg = f"version must be an int >= 0, not {version!r}"
    raise InvalidArgumentError(msg)


def check_at(at: object) -> datetime:
    """`at` as a moment to read as of, or raise `InvalidArgumentError`."""
    if isinstance(at, datetime) and at.tzinfo is not None and at.utcoffset() is not None:
        return at
    msg = f"at must be a timezone-aware datetime, not {at!r}"
    raise InvalidArgumentError(msg)


# -- what one read returned -------------------------------------------------------------------


class Kept:
    """What a store keeps of one context, as one read returned it: the journal entries and
    the snapshots (version, blob) at or below the head."""

    def __init__(
        self,
        codec: SnapshotCodec,
        name: str,
        entries: list[tuple[int, bytes]],
        snapshots: list[tuple[int, bytes]],
    ) -> None:
        self.codec = codec
        self.name = name
        self.journal = dict(entries)
        self.snapshots = dict(snapshots)
        self.versions = self._chain()
        """The versions that can be rebuilt, oldest first."""

    def _chain(self) -> list[int]:
        """Every snapshot, and every journal entry that follows on without a gap from a
        snapshot (entries left below the oldest snapshot, or after a gap, cannot be rebuilt:
        only a failure or damage leaves them)."""
        versions: list[int] = []
        last: int | None = None
        for version in sorted(self.journal.keys() | self.snapshots.keys()):
            if version in self.snapshots or (last is not None and version == last + 1):
                versions.append(version)
                last = version
        return versions

    def state_at(self, version: int) -> State:
        """The State of `version`, rebuilt from the newest snapshot at or below it.

        Raises:
            VersionNotKeptError: `version` cannot be rebuilt.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        if version not in self.versions:  # a short list: retention bounds it
            raise VersionNotKeptError(self.name, self.versions, version=version)
        base = max(v for v in self.snapshots if v <= version)
        state = self.codec.decode(self.snapshots[base], context=self.name, version=base)
        self.codec.replay(state, [(v, self.journal[v]) for v in range(base + 1, version + 1)])
        return state

    def version_at(self, at: datetime) -> int:
        """The newest kept version made at or before `at`.

        Raises:
            VersionNotKeptError: every kept version was made after `at`.
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        made = [entry.version for entry in self.entries() if entry.updated_at <= at]
        if not made:
            raise VersionNotKeptError(self.name, self.versions, at=at)
        return max(made)

    def entries(self) -> Iterator[HistoryEntry]:
        """A `HistoryEntry` for every kept version, oldest first.

        Raises:
            CorruptSnapshotError: a snapshot or journal entry on the way is damaged.
        """
        state: State | None = None  # the State of the kept version before
        for version in self.versions:
            if version in self.snapshots:
                snapshot, cause = self.codec.decode_recorded(
                    self.snapshots[version], context=self.name, version=version
                )
                if state is None:
                    yield HistoryEntry(
                        self.name, version, snapshot.updated_at, "snapshot", None, None,
                        metadata_changed=None, cause=cause,
                    )  # fmt: skip
                else:
                    compared = Delta.between(state, snapshot)
                    yield _entry(compared, "snapshot", state.version, cause)
                state = snapshot
            else:
                delta = self.codec.decode_delta(
                    self.journal[version], context=self.name, version=version
                )
                yield _entry(delta, "journal", version - 1, delta.cause)
                assert state is not None  # the chain starts with a snapshot
                delta.apply(state)


def _entry(
    delta: Delta, kind: Literal["journal", "snapshot"], previous: int, cause: str | None
) -> HistoryEntry:
    """The history entry of `delta`."""
    return HistoryEntry(
        delta.context,
        delta.version,
        delta.updated_at,
        kind,
        previous,
        tuple(sorted(delta.keys_set)),
        tuple(sorted(delta.removed)),
        tuple(sorted(delta.metadata_changed)),
        tuple(sorted(delta.metadata_removed)),
        cause,
    )


def select(
    entries: Iterable[HistoryEntry], since: int | None, limit: int | None
) -> list[HistoryEntry]:
    """The entries of versions `since` and above, at most `limit` of them, oldest first."""
    chosen = (entry for entry in entries if since is None or entry.version >= since)
    return list(itertools.islice(chosen, limit))
