"""Supervision: a failed tracker is restarted from its last snapshot, a limited number of
times with backoff, while the manager keeps answering; handles and queued calls survive.

Backoffs are waited out on a `ManualClock` the test advances, never in real time; tests of
anything else restart without backoff."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from actors import (
    ContextError,
    ContextFailedError,
    ContextInactiveError,
    ContextStatus,
    PersistenceError,
    RecoveryError,
    SupervisorConfig,
    SyncPolicy,
)
from actors.testing import FaultyStore, InjectedCrash, ManualClock, crash
from storage import MemoryStore, PostgresStore, RedisStore, SqliteStore, Store

from .conftest import (
    WAIT,
    Hold,
    WatchedStore,
    advance_when_scheduled,
    hold_manager,
    make_manager,
    make_tracker,
)

DISK_ERROR = sqlite3.OperationalError("disk I/O error")

FAST_LIMIT = SupervisorConfig(max_restarts=2, within_seconds=30.0, backoff_initial=0.0)
"""Restarts without backoff, for tests of what the limit does rather than of time."""


def _on_clock(store, config):
    """A manager on a `ManualClock` whose only timers are restart backoffs."""
    clock = ManualClock()
    manager = make_manager(
        store, supervisor=config, clock=clock, passivate_after=None, watch_interval=None
    )
    return manager, clock


def test_crash_restarts_the_tracker_from_the_latest_snapshot(watched):
    manager = make_manager(watched)
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    reads = watched.completed["read_latest"]
    assert crash(tracker).get(timeout=WAIT) is None
    assert watched.completed["read_latest"] == reads + 1  # reloaded from the store
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert tracker.get("n").get(timeout=WAIT) == 1
    manager.shutdown().get(timeout=WAIT)


def test_crash_loses_batched_updates_not_yet_written(watched):
    manager = make_manager(watched, sync=SyncPolicy.batched(100, 3600.0))
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    tracker.save().get(timeout=WAIT)
    tracker.set("n", 2).get(timeout=WAIT)  # acknowledged, not yet written
    crash(tracker).get(timeout=WAIT)
    state = tracker.get_state().get(timeout=WAIT)
    assert (state.version, state.get("n")) == (1, 1)
    manager.shutdown().get(timeout=WAIT)


def test_only_the_call_that_hit_the_fault_fails(watched):
    manager = make_manager(watched)
    tracker = make_tracker(manager, data={"n": 0})
    watched.fail("commit", InjectedCrash("write blew up"))
    failing = tracker.set("n", 1)
    queued = [tracker.set(f"k{i}", i) for i in range(5)]
    with pytest.raises(RecoveryError) as info:
        failing.get(timeout=WAIT)
    assert isinstance(info.value.__cause__, InjectedCrash)
    assert [future.get(timeout=WAIT) for future in queued] == [1, 2, 3, 4, 5]
    state = tracker.get_state().get(timeout=WAIT)
    assert "n" in state
    assert state.get("n") == 0  # the failed update was not applied
    assert watched.read_head("ctx") == state
    manager.shutdown().get(timeout=WAIT)


def test_calls_queued_behind_a_crash_reach_the_restarted_tracker(tracker):
    restarted = crash(tracker)
    sets = [tracker.set(f"k{i}", i) for i in range(10)]
    restarted.get(timeout=WAIT)
    assert sorted(future.get(timeout=WAIT) for future in sets) == list(range(1, 11))
    assert tracker.get_state().get(timeout=WAIT).data == {"n": 0} | {f"k{i}": i for i in range(10)}


def test_handle_obtained_before_a_crash_keeps_working(manager, tracker):
    tracker.set("n", 1).get(timeout=WAIT)
    crash(tracker).get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 1
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    assert manager.get_tracker("ctx").get(timeout=WAIT) == tracker


def test_unexpected_store_error_while_loading_is_retried(watched):
    manager = make_manager(watched)
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("read_latest", DISK_ERROR, times=2)  # fewer failures than the limit
    crash(tracker).get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 1
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    manager.shutdown().get(timeout=WAIT)


def _fail_for_good(watched, config):
    """A tracker whose every reload fails, crashed: it exhausts the restart limit."""
    manager = make_manager(watched, supervisor=config)
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("read_latest", DISK_ERROR, times=1000)
    return manager, tracker


def test_restart_limit_marks_the_context_failed(watched):
    config = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=0.0)
    manager, tracker = _fail_for_good(watched, config)
    reads = watched.completed["read_latest"]

    with pytest.raises(ContextFailedError, match="will not be restarted"):
        crash(tracker).get(timeout=WAIT)

    assert watched.completed["read_latest"] - reads == config.max_restarts
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.FAILED
    with pytest.raises(RecoveryError):
        tracker.get("n").get(timeout=WAIT)
    with pytest.raises(RecoveryError):
        tracker.set("n", 2).get(timeout=WAIT)
    with pytest.raises(RecoveryError):
        manager.get_tracker("ctx").get(timeout=WAIT)
    assert "ctx" not in manager.active_contexts().get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)


def test_zero_max_restarts_fails_at_the_first_crash(watched):
    manager = make_manager(watched, supervisor=SupervisorConfig(max_restarts=0))
    tracker = make_tracker(manager)
    with pytest.raises(RecoveryError):
        crash(tracker).get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.FAILED
    manager.shutdown().get(timeout=WAIT)


def test_restarts_back_off(watched):
    config = SupervisorConfig(
        max_restarts=3, within_seconds=300.0, backoff_initial=10.0, backoff_max=100.0
    )
    manager, clock = _on_clock(watched, config)
    tracker = make_tracker(manager, data={"n": 0})
    watched.fail("read_latest", DISK_ERROR, times=1000)  # every restart fails
    reads = watched.completed["read_latest"]
    crashed = crash(tracker)
    assert watched.wait_for("read_latest", reads + 1)  # the first restart waits none
    for restart in (1, 2):  # the second waits 10 s, the third 20 s
        backoff = config.backoff(restart)
        advance_when_scheduled(clock, backoff - 0.001)
        assert clock.pending == 1  # not due yet
        assert watched.completed["read_latest"] == reads + restart
        clock.advance(0.001)
        assert watched.wait_for("read_latest", reads + restart + 1)
    with pytest.raises(RecoveryError):  # the third restart failed too: the limit
        crashed.get(timeout=WAIT)
    assert clock.now() == 30.0
    manager.shutdown().get(timeout=WAIT)


def test_failed_context_comes_back_after_deactivate_and_activate(watched):
    manager, tracker = _fail_for_good(watched, FAST_LIMIT)
    with pytest.raises(RecoveryError):
        crash(tracker).get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.FAILED

    watched.heal()
    manager.deactivate("ctx").get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    again = manager.get_tracker("ctx").get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert again == tracker
    assert tracker.get("n").get(timeout=WAIT) == 1  # the handle works again too
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    # The restart budget starts afresh.
    crash(tracker).get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 2
    manager.shutdown().get(timeout=WAIT)


class _SignallingStore(WatchedStore):
    """Releases `read_failed` each time a read of a head fails."""

    def __init__(self, inner):
        super().__init__(inner)
        self.read_failed = threading.Semaphore(0)

    def _read_latest_parts(self, name):
        try:
            return super()._read_latest_parts(name)
        except PersistenceError:
            self.read_failed.release()
            raise


def test_manager_answers_while_a_tracker_waits_out_a_backoff(sqlite_store):
    store = _SignallingStore(sqlite_store)
    backoff = 10.0
    config = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=backoff)
    manager, clock = _on_clock(store, config)
    tracker = make_tracker(manager, data={"n": 0})
    manager.create_context("other").get(timeout=WAIT)
    store.fail("read_latest", DISK_ERROR, times=1)

    restarted = crash(tracker)  # restart 1 (at once) fails; restart 2 waits `backoff`
    assert store.read_failed.acquire(timeout=WAIT)
    # The clock stands still: all of this happens within the backoff.
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert manager.list_contexts().get(timeout=WAIT) == ["ctx", "other"]
    assert manager.active_contexts().get(timeout=WAIT) == ["ctx"]
    other = manager.get_tracker("other").get(timeout=WAIT)
    assert other.set("x", 1).get(timeout=WAIT) == 1
    assert not restarted.done()

    advance_when_scheduled(clock, backoff)
    restarted.get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 0
    manager.shutdown().get(timeout=WAIT)


def test_calls_during_a_backoff_are_served_after_the_restart(watched):
    backoff = 10.0
    config = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=backoff)
    manager, clock = _on_clock(watched, config)
    tracker = make_tracker(manager, data={"n": 0})
    watched.fail("read_latest", DISK_ERROR, times=1)
    reads = watched.completed["read_latest"]
    restarted = crash(tracker)
    assert watched.wait_for("read_latest", reads + 1)  # the first restart failed
    sets = [tracker.set("n", n) for n in range(1, 6)]
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert not any(future.done() for future in [restarted, *sets])  # held during the backoff
    advance_when_scheduled(clock, backoff)
    assert [future.get(timeout=WAIT) for future in sets] == [1, 2, 3, 4, 5]
    restarted.get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)


def test_crash_of_one_tracker_leaves_the_others_alone(manager):
    first = make_tracker(manager, "first", {"n": 1})
    second = make_tracker(manager, "second", {"n": 2})
    crash(first).get(timeout=WAIT)
    assert second.get_state().get(timeout=WAIT).version == 0
    assert (first.get("n").get(timeout=WAIT), second.get("n").get(timeout=WAIT)) == (1, 2)


def test_faulty_store_rejects_unknown_operations(sqlite_store):
    with pytest.raises(ValueError, match="unknown store operation"):
        FaultyStore(sqlite_store).fail("no_such_op", DISK_ERROR)


def test_faulty_store_forwards_every_primitive_a_backend_implements():
    # A primitive FaultyStore does not forward would run the base class's default instead
    # of the wrapped store's: fault tests would take another path than production.
    contract = {name for name in vars(Store) if name.startswith("_") and not name.startswith("__")}
    contract |= {"change_token", "follow"}
    implemented = {
        name
        for backend in (MemoryStore, SqliteStore, RedisStore, PostgresStore)
        for name in vars(backend)
        if name in contract
    }
    assert implemented - set(vars(FaultyStore)) == set()


def test_deactivate_during_a_restart_backoff_stops_the_tracker_at_once(watched):
    config = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=10.0)
    manager, _ = _on_clock(watched, config)  # never advanced: the backoff never ends
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("read_latest", DISK_ERROR, times=1)
    reads = watched.completed["read_latest"]
    restarted = crash(tracker)  # the first restart fails; the next waits for the clock
    assert watched.wait_for("read_latest", reads + 1)

    manager.deactivate("ctx").get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    with pytest.raises(ContextError):
        restarted.get(timeout=WAIT)
    manager.get_tracker("ctx").get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 1
    manager.shutdown().get(timeout=WAIT)


def test_crash_of_a_failed_tracker_fails_with_recovery_error(watched):
    manager, tracker = _fail_for_good(watched, FAST_LIMIT)
    with pytest.raises(RecoveryError):
        crash(tracker).get(timeout=WAIT)
    with pytest.raises(RecoveryError):
        crash(tracker).get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)


def test_crash_stashed_behind_a_failing_restart_fails_when_the_supervisor_gives_up(watched):
    manager, tracker = _fail_for_good(watched, FAST_LIMIT)
    first = crash(tracker)
    second = crash(tracker)  # stashed while the first waits for a restart that never comes
    with pytest.raises(RecoveryError):
        first.get(timeout=WAIT)
    with pytest.raises(RecoveryError):
        second.get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)


def test_tracker_failing_while_it_is_deactivated_leaves_the_manager_alive(manager, tracker):
    # The failure report reaches the manager after the tracker stopped: restarting it must
    # not kill the manager.
    busy_tracker, busy_manager = Hold(), Hold()
    tracker.modify(busy_tracker)
    assert busy_tracker.entered.wait(WAIT)
    deactivated = manager.deactivate("ctx")
    manager.status("ctx").get(timeout=WAIT)  # the manager has sent Stop by now
    crashed = crash(tracker)  # handled after Stop, before the tracker's own stop
    hold_manager(manager, busy_manager)
    assert busy_manager.entered.wait(WAIT)
    busy_tracker.release.set()
    with pytest.raises(ContextInactiveError):
        crashed.get(timeout=WAIT)  # answered as the tracker stopped
    busy_manager.release.set()  # now the manager reads the failure report

    deactivated.get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.get_tracker("ctx").get(timeout=WAIT) == tracker
    assert tracker.get("n").get(timeout=WAIT) == 0
