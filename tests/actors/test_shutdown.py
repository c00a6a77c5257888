"""Shutdown and stopping: everything stops, every call is answered, nothing hangs, including
when pykka's own `stop()` / `ActorRegistry.stop_all()` races an actor stopping itself."""

from __future__ import annotations

import sqlite3

import pykka
import pytest

from actors import (
    ContextStatus,
    PersistenceError,
    RecoveryError,
    ShutdownError,
    SupervisorConfig,
    SyncPolicy,
)
from actors._messages import GiveUp
from actors._tracker import TrackerActor
from actors.testing import FaultyStore, ManualClock, crash
from storage import MemoryStore

from .conftest import WAIT, Hold, hold_manager, make_manager, make_tracker

DISK_ERROR = sqlite3.OperationalError("disk I/O error")


def _only_tracker_ref():
    (ref,) = pykka.ActorRegistry.get_by_class(TrackerActor)
    return ref


def test_shutdown_answers_every_call_queued_behind_it(manager, tracker):
    hold = Hold()
    held = tracker.modify(hold)
    assert hold.entered.wait(WAIT)
    queued = [tracker.set("n", n) for n in range(1, 6)]
    shutdown = manager.shutdown()
    late = [tracker.set("late", n) for n in range(5)]
    hold.release.set()

    shutdown.get(timeout=WAIT)
    assert held.get(timeout=WAIT).version == 1
    # Queued before the tracker was told to stop: served.
    assert [future.get(timeout=WAIT) for future in queued] == [2, 3, 4, 5, 6]
    outcomes = []
    for future in late:  # served or refused, but answered
        try:
            outcomes.append(future.get(timeout=WAIT))
        except ShutdownError as exc:
            outcomes.append(exc)
    assert all(isinstance(outcome, int | ShutdownError) for outcome in outcomes)


def test_shutdown_of_a_failed_tracker(watched):
    config = SupervisorConfig(max_restarts=1, within_seconds=30.0, backoff_initial=0.0)
    manager = make_manager(watched, supervisor=config)
    tracker = make_tracker(manager)
    watched.fail("read_latest", DISK_ERROR, times=100)
    with pytest.raises(RecoveryError):
        crash(tracker).get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.FAILED
    manager.shutdown().get(timeout=WAIT)
    assert pykka.ActorRegistry.get_by_class(TrackerActor) == []


def test_shutdown_does_not_wait_out_a_restart_backoff(watched):
    config = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=10.0)
    # Time stands still: a shutdown that waited for the backoff would never end.
    manager = make_manager(watched, supervisor=config, clock=ManualClock())
    tracker = make_tracker(manager)
    watched.fail("read_latest", DISK_ERROR, times=1)
    reads = watched.completed["read_latest"]
    restarted = crash(tracker)  # the first restart fails; the next waits for the clock
    assert watched.wait_for("read_latest", reads + 1)
    queued = tracker.get("n")
    manager.shutdown().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        restarted.get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        queued.get(timeout=WAIT)


def test_shutdown_whose_final_write_fails_reports_it_and_still_stops(watched):
    manager = make_manager(watched, sync=SyncPolicy.batched(100, 3600.0))
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("commit", DISK_ERROR)
    with pytest.raises(PersistenceError):
        manager.shutdown().get(timeout=WAIT)
    assert pykka.ActorRegistry.get_by_class(TrackerActor) == []
    with pytest.raises(ShutdownError):
        tracker.get("n").get(timeout=WAIT)
    assert manager.shutdown().get(timeout=WAIT) is None


class _HeldCommitStore(FaultyStore):
    """Holds its next commit in `hold` once `hold_next_commit()` was called."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.hold: Hold | None = None

    def hold_next_commit(self) -> Hold:
        self.hold = Hold()
        return self.hold

    def _commit(self, writes):
        hold, self.hold = self.hold, None
        if hold is not None:
            hold(None)
        return super()._commit(writes)


@pytest.mark.parametrize("stop", ["deactivate", "shutdown"])
def test_batched_update_queued_behind_the_final_write_is_written_too(stop):
    """A stopping tracker writes what is unsaved, then stops; requests that arrived during
    that write are still handled before the stop. Under a batched policy each of them is
    written at once: acknowledged, it must not be left unsaved by a tracker that stops."""
    store = _HeldCommitStore()
    manager = make_manager(store, sync=SyncPolicy.batched(100, 3600.0))
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    hold = store.hold_next_commit()
    stopped = manager.deactivate("ctx") if stop == "deactivate" else manager.shutdown()
    assert hold.entered.wait(WAIT)  # the final write is under way, in the tracker's thread
    late = tracker.set("n", 2)  # queued ahead of the stop that follows the write
    hold.release.set()
    assert late.get(timeout=WAIT) == 2
    stopped.get(timeout=WAIT)
    assert store.read_head("ctx").get("n") == 2
    manager.shutdown().get(timeout=WAIT)


def test_pykka_stop_racing_a_deactivation_does_not_hang(manager, tracker):
    # The tracker stops itself after Stop; a pykka stop() that arrives meanwhile (as from
    # ActorRegistry.stop_all()) must still be answered.
    first, second = Hold(), Hold()
    tracker.modify(first)
    assert first.entered.wait(WAIT)
    deactivated = manager.deactivate("ctx")
    manager.status("ctx").get(timeout=WAIT)  # the manager has sent Stop by now
    tracker.modify(second)  # queued behind Stop
    first.release.set()
    assert second.entered.wait(WAIT)  # Stop was handled: the tracker's own stop is queued
    stopping = _only_tracker_ref().stop(block=False)
    second.release.set()

    assert stopping.get(timeout=WAIT) is True
    deactivated.get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE


def test_pykka_stop_racing_a_manager_shutdown_does_not_hang():
    manager = make_manager()
    first, second = Hold(), Hold()
    hold_manager(manager, first)
    assert first.entered.wait(WAIT)
    shutdown = manager.shutdown()
    hold_manager(manager, second)  # refused after the shutdown, which queues its own stop
    first.release.set()
    assert second.entered.wait(WAIT)
    stopping = manager._ref.stop(block=False)  # as from ActorRegistry.stop_all()
    second.release.set()

    assert shutdown.get(timeout=WAIT) is None
    assert stopping.get(timeout=WAIT) is True


def test_supervisor_giving_up_during_a_deactivation_still_stops_the_tracker(manager, tracker):
    hold = Hold()
    tracker.modify(hold)
    assert hold.entered.wait(WAIT)
    deactivated = manager.deactivate("ctx")
    manager.status("ctx").get(timeout=WAIT)  # the manager has sent Stop by now
    _only_tracker_ref().tell(GiveUp(RecoveryError("restart limit")))  # as a late supervisor
    hold.release.set()

    deactivated.get(timeout=WAIT)
    assert pykka.ActorRegistry.get_by_class(TrackerActor) == []
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE


@pytest.mark.parametrize("how", ["shutdown", "deactivate"])
def test_stopping_a_tracker_that_already_stopped_itself_does_not_hang(how):
    # As a passivated tracker does before its Passivated reaches the manager: the manager's
    # cell still points at an actor that is gone. Stopping it must just count it stopped.
    manager = make_manager()
    tracker = make_tracker(manager, data={"n": 1})
    _only_tracker_ref().stop()  # gone behind the manager's back
    if how == "shutdown":
        manager.shutdown().get(timeout=WAIT)
        assert pykka.ActorRegistry.get_all() == []
    else:
        manager.deactivate("ctx").get(timeout=WAIT)
        assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
        assert manager.get_tracker("ctx").get(timeout=WAIT).get("n").get(timeout=WAIT) == 1
        manager.shutdown().get(timeout=WAIT)
    del tracker
