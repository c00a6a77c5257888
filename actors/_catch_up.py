"""What a tracker tells its subscribers, and how it catches up with other processes' writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors._changes import Change, ChangeCause, Topic
from actors._recovery import RecoveryReport
from storage import ContextError, State
from storage._delta import Delta

if TYPE_CHECKING:
    from actors._tracker import TrackerActor

__all__ = ["Publisher", "refresh"]


class Publisher:
    """Where a tracker's changes go, and the version its subscribers last heard of. A
    tracker is started with its cell's topic, so every incarnation publishes to the same
    subscriptions."""

    def __init__(self, changes: Topic | None) -> None:
        self._changes = changes
        self._published: int | None = None

    @property
    def listened(self) -> bool:
        """Whether anyone subscribes now (else a change is not even built)."""
        return self._changes is not None and self._changes.live

    def publish(self, delta: Delta, cause: ChangeCause) -> None:
        """Tell subscribers about an update now stored (batched policy: now accepted)."""
        self._published = delta.version
        changes = self._changes
        if changes is not None and changes.live:  # else nobody listens: copy nothing
            changes.publish(Change.from_delta(delta, cause))

    def announce(self, state: State, report: RecoveryReport | None, *, running: bool) -> None:
        """Before `state` is loaded: tell subscribers if it is not what they last heard of
        (a fallback past damage, batched updates a crash lost, or another writer's State
        found after a version conflict), with a change that replaces the whole State."""
        previous, self._published = self._published, state.version
        if report is not None:
            cause = ChangeCause.RECOVERY
        elif running:  # a version conflict made us reload
            cause = ChangeCause.EXTERNAL
        elif previous is not None and previous != state.version:
            cause = ChangeCause.RECOVERY
        else:
            return
        if previous is None:
            previous = report.damaged_version if report is not None else state.version
        changes = self._changes
        if changes is not None and changes.live:
            changes.publish(Change.replacing(previous, state, cause))


def refresh(t: TrackerActor) -> None:
    """Bring the tracker's State up to the store's head, which other processes moved on.

    Each version they wrote is applied and published on its own, in order: from its journal
    entry, or from its snapshot where one was written instead. Where neither is kept any
    more (or the tracker holds unsaved batched updates, which the store's head replaces),
    the whole State is reloaded and published as one change.
    """
    state = t.current
    if t.writes.unsaved:
        t.load()
        return
    try:
        _catch_up(t, state)
    except ContextError:
        # Moved on again while we read (retention dropped a snapshot, say): reload.
        t.load()


def _catch_up(t: TrackerActor, state: State) -> None:
    changes = t.store.read_changes(t.name, state.version)  # as of one moment
    if changes.steps is None:  # some version in between is no longer kept
        t.load()
        return
    for step in changes.steps:
        if isinstance(step, Delta):
            delta = step
            delta.apply(state)
        else:  # a snapshot was written instead of a journal entry
            delta = Delta.between(state, step)
            t.state = state = step
        t.writes.caught_up(delta.version)
        t.publish(delta, ChangeCause.EXTERNAL)
    t.writes.forget_journal()
