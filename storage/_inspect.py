"""Checking and listing a store from outside the runtime: what `python -m storage` runs."""

from __future__ import annotations

from datetime import datetime

import attrs

from storage._exceptions import CorruptSnapshotError, UnsupportedFormatError
from storage._names import validate_context_name
from storage._store import Store

__all__ = ["ContextSummary", "Finding", "summarize", "verify"]

_DAMAGE = (CorruptSnapshotError, UnsupportedFormatError)


@attrs.frozen
class Finding:
    """One damaged record found by `verify`."""

    context: str
    kind: str
    """One of "snapshot", "journal entry" or "recovery point"."""
    ident: int
    """The snapshot's version or the recovery point's id."""
    version: int
    """The version the record claims to hold."""
    error: str
    """The kind of damage, as the decoder reported it."""

    def __str__(self) -> str:
        what = f"id {self.ident}" if self.kind == "recovery point" else f"version {self.ident}"
        return f"{self.context}: {self.kind} {what} (version {self.version}): {self.error}"


@attrs.frozen
class ContextSummary:
    """What `python -m storage ls` shows of one context."""

    name: str
    version: int
    """The head version: the newest snapshot's with the journal entries after it applied."""
    snapshot_version: int
    """The version of the newest snapshot."""
    journal_entries: int
    """Journal entries after the newest snapshot (the head is this many versions past it)."""
    size: int
    """Bytes the head takes as stored: the newest snapshot and the journal entries after it."""
    updated_at: datetime | None
    """When the head version was written; None when something on the way to it is damaged."""
    recovery_points: int


def verify(store: Store) -> list[Finding]:
    """Decode every retained snapshot, journal entry and recovery point of every context.

    Returns the damaged ones; an empty list means the store is intact.
    """
    findings: list[Finding] = []
    for name in store.list_contexts():
        for version in store.list_versions(name):
            try:
                store.read_version(name, version)
            except _DAMAGE as exc:
                findings.append(Finding(name, "snapshot", version, version, str(exc)))
        for version, blob in store._read_journal(name, -1):
            try:
                store.codec.decode_delta(blob, context=name, version=version)
            except _DAMAGE as exc:
                findings.append(Finding(name, "journal entry", version, version, str(exc)))
        for point in store.list_recovery_points(name):
            try:
                store.read_recovery_point(name, point.point_id)
            except _DAMAGE as exc:
                findings.append(
                    Finding(name, "recovery point", point.point_id, point.version, str(exc))
                )
    return findings


def summarize(store: Store, name: str) -> ContextSummary:
    """Head version, size, last update and recovery-point count of context `name`.

    Raises:
        ContextNotFoundError: no such context.
    """
    name = validate_context_name(name)
    # The sizes need the raw blobs, which only the backend primitive hands out; it reads
    # them as of one moment, as recovery does.
    head, snapshot_version, blob, journal = store._read_latest_parts(name)
    try:
        state, damage = store.read_latest(name)
    except _DAMAGE:
        updated_at: datetime | None = None
    else:
        updated_at = None if damage else state.updated_at
    return ContextSummary(
        name,
        head,
        snapshot_version,
        len(journal),
        len(blob) + sum(len(entry) for _, entry in journal),
        updated_at,
        len(store.list_recovery_points(name)),
    )
