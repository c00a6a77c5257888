"""Loading a context for a tracker, falling back past damaged snapshots.

The head snapshot is tried first. If it is damaged, the retained older heads are tried newest
first, then the recovery points newest first. The first intact one is written back as a new
head *above* the damaged one (versions never go backwards, and the next write has a sound
base), and a `RecoveryReport` says what was skipped and what was lost. With nothing intact,
`RecoveryError` names the context and every damage found. Damage is never decoded into data.
"""

from __future__ import annotations

import logging

import attrs

from storage import (
    CorruptSnapshotError,
    RecoveryError,
    State,
    Store,
    UnsupportedFormatError,
)

__all__ = ["Damage", "RecoveryReport", "load_context"]

logger = logging.getLogger("actors.recovery")

_DAMAGE = (CorruptSnapshotError, UnsupportedFormatError)


@attrs.frozen
class Damage:
    """One stored snapshot that could not be read."""

    kind: str
    """"head", "snapshot" or "recovery point"."""
    ident: int
    """The snapshot's version, or the recovery point's id."""
    error: str
    """What was wrong with it."""


@attrs.frozen
class RecoveryReport:
    """How a context was last loaded, when that needed a fallback past damaged snapshots."""

    context: str
    damaged_version: int
    """The version of the damaged head."""
    source: str
    """Where the data came from: "snapshot 7" or "recovery point 3"."""
    source_version: int
    """The version of the data that was restored."""
    version: int
    """The version written over the damaged head, holding the restored data."""
    damage: tuple[Damage, ...]
    """Every damaged snapshot met on the way, newest first."""

    @property
    def lost_versions(self) -> range:
        """The versions whose updates are gone: after the source, up to the damaged head."""
        return range(self.source_version + 1, self.damaged_version + 1)


def load_context(store: Store, name: str) -> tuple[State, RecoveryReport | None]:
    """The newest intact State of `name`, and a report if it was not the head.

    Raises:
        RecoveryError: no snapshot and no recovery point of `name` is intact.
        ContextNotFoundError, PersistenceError: from the store, as they are.
    """
    try:
        return store.read_head(name), None
    except _DAMAGE as exc:
        head_version = store.head_version(name)
        damage = [Damage("head", head_version, str(exc))]

    for version in store.list_versions(name):
        if version >= head_version:
            continue
        try:
            source = store.read_version(name, version)
        except _DAMAGE as exc:
            damage.append(Damage("snapshot", version, str(exc)))
            continue
        return _rebase(store, head_version, source, damage, f"snapshot {version}")

    for point in reversed(store.list_recovery_points(name)):
        try:
            source = store.read_recovery_point(name, point.point_id)
        except _DAMAGE as exc:
            damage.append(Damage("recovery point", point.point_id, str(exc)))
            continue
        return _rebase(store, head_version, source, damage, f"recovery point {point.point_id}")

    details = "; ".join(f"{d.kind} {d.ident}: {d.error}" for d in damage)
    raise RecoveryError(
        f"context {name!r} has no intact snapshot or recovery point to recover from ({details})"
    )


def _rebase(
    store: Store, head_version: int, source: State, damage: list[Damage], where: str
) -> tuple[State, RecoveryReport]:
    damaged = State(
        context=source.context,
        version=head_version,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )
    repaired = damaged.successor(source)
    store.compare_and_set(repaired, head_version)
    report = RecoveryReport(
        context=source.context,
        damaged_version=head_version,
        source=where,
        source_version=source.version,
        version=repaired.version,
        damage=tuple(damage),
    )
    logger.error(
        "context %r: head version %d is damaged; recovered from %s (version %d) as version %d; "
        "versions %d..%d are lost; damage: %s",
        source.context,
        head_version,
        where,
        source.version,
        repaired.version,
        source.version + 1,
        head_version,
        damage,
    )
    return repaired, report
