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
    size: int
    """Bytes of the head snapshot as stored (header and zstd frame)."""
    updated_at: datetime | None
    """None when the head snapshot is damaged."""
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
    """Version, size, last update and recovery-point count of context `name`."""
    # The size needs the raw blob, which only the backend primitive hands out.
    version, blob = store._read_head(validate_context_name(name))
    try:
        updated_at: datetime | None = store.codec.decode(
            blob, context=name, version=version
        ).updated_at
    except _DAMAGE:
        updated_at = None
    return ContextSummary(
        name, version, len(blob), updated_at, len(store.list_recovery_points(name))
    )
