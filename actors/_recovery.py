"""Loading a context for a tracker, falling back past damaged snapshots and journal entries.

The store's `read_latest()` gives the newest version it can read intact: the newest intact
snapshot with the journal replayed until an entry is damaged or missing. If that is not the
head, or no snapshot is intact and a recovery point is (newest first), the data recovered is
written back as a new full snapshot *above* the damaged head: versions never go backwards,
and the next write has a sound base. A `RecoveryReport` says what was damaged and which
versions were lost. With nothing intact, `RecoveryError` names the context and every damage
found. Damage is never decoded into data.
"""

from __future__ import annotations

import logging

import attrs

from actors._changes import ChangeCause
from actors._logs import context_fields
from storage import (
    ContextFailedError,
    CorruptSnapshotError,
    Damage,
    NoIntactSnapshotError,
    State,
    Store,
    UnsupportedFormatError,
)

__all__ = ["RecoveryReport", "load_context"]

logger = logging.getLogger("actors.recovery")


@attrs.frozen
class RecoveryReport:
    """How a context was last loaded, when that needed a fallback past damaged records."""

    context: str
    damaged_version: int
    """The head version, which could not be read."""
    source: str
    """Where the data came from: "snapshots and journal" or "recovery point 3"."""
    source_version: int
    """The version of the data that was restored."""
    version: int
    """The version written over the damaged head, holding the restored data."""
    damage: tuple[Damage, ...]
    """Every damaged record met on the way, newest first."""

    @property
    def lost_versions(self) -> range:
        """The versions whose updates are gone: after the source, up to the damaged head."""
        return range(self.source_version + 1, self.damaged_version + 1)


def load_context(store: Store, name: str) -> tuple[State, RecoveryReport | None]:
    """The newest intact State of `name`, and a report if it was not the head.

    Raises:
        ContextFailedError: no snapshot and no recovery point of `name` is intact.
        ContextNotFoundError, PersistenceError: from the store, as they are.
    """
    try:
        state, damage = store.read_latest(name)
    except NoIntactSnapshotError as exc:
        found = [d for d in exc.damage if isinstance(d, Damage)]
        return _from_recovery_point(store, name, found)
    if not damage:
        return state, None
    return _rebase(store, state, list(damage), "snapshots and journal")


def _from_recovery_point(
    store: Store, name: str, damage: list[Damage]
) -> tuple[State, RecoveryReport]:
    for point in reversed(store.list_recovery_points(name)):
        try:
            source = store.read_recovery_point(name, point.point_id)
        except (CorruptSnapshotError, UnsupportedFormatError) as exc:
            damage.append(Damage("recovery point", point.point_id, str(exc)))
            continue
        return _rebase(store, source, damage, f"recovery point {point.point_id}")
    details = "; ".join(f"{d.kind} {d.ident}: {d.error}" for d in damage)
    raise ContextFailedError(
        f"context {name!r} has no intact snapshot or recovery point to recover from ({details})"
    )


def _rebase(
    store: Store, source: State, damage: list[Damage], where: str
) -> tuple[State, RecoveryReport]:
    head_version = store.head_version(source.context)
    damaged = State(
        context=source.context,
        version=head_version,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )
    repaired = damaged.successor(source)
    store.compare_and_set(repaired, head_version, ChangeCause.RECOVERY.value)
    report = RecoveryReport(
        context=source.context,
        damaged_version=head_version,
        source=where,
        source_version=source.version,
        version=repaired.version,
        damage=tuple(damage),
    )
    logger.error(
        "context %r: head version %d is damaged; recovered version %d from %s and wrote it as "
        "version %d; versions %d..%d are lost; damage: %s",
        source.context,
        head_version,
        source.version,
        where,
        repaired.version,
        source.version + 1,
        head_version,
        damage,
        extra=context_fields(source.context, repaired.version),
    )
    return repaired, report
