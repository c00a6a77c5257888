"""Sync policies: durable writes before acknowledging; batched writes on count, timer, save,
deactivation and shutdown. The flush timer runs on a `ManualClock` the test advances."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

from actors import PersistenceError, SyncPolicy, VersionConflict
from actors.testing import ManualClock
from storage import SqliteStore

from .conftest import WAIT, WatchedStore, make_manager, make_tracker

NO_TIMER = 3600.0
"""A max_delay no test waits out, so only the trigger under test writes."""


def test_durable_policy_stores_every_update_before_acknowledging(db_path):
    manager = make_manager(f"sqlite:///{db_path}")
    tracker = make_tracker(manager, data={"n": 0})
    with SqliteStore(db_path) as observer:  # a second connection to the same file
        for n in range(1, 21):
            version = tracker.set("n", n).get(timeout=WAIT)
            assert observer.head_version("ctx") == version == n
            assert observer.read_head("ctx").get("n") == n
        version = tracker.delete("n").get(timeout=WAIT)
        assert observer.head_version("ctx") == version
        version = tracker.set_metadata("m", "x").get(timeout=WAIT)
        assert observer.head_version("ctx") == version
        state = tracker.modify(lambda s: s.set("k", 1)).get(timeout=WAIT)
        assert observer.read_head("ctx") == state
        state = tracker.update_state(state).get(timeout=WAIT)
        assert observer.read_head("ctx") == state
    manager.shutdown().get(timeout=WAIT)


def _batched(watched, max_updates, max_delay=NO_TIMER, clock=None):
    manager = make_manager(watched, sync=SyncPolicy.batched(max_updates, max_delay), clock=clock)
    return manager, make_tracker(manager, data={"n": 0})


def test_batched_policy_acknowledges_at_once_and_writes_after_max_updates(watched):
    manager, tracker = _batched(watched, max_updates=3)
    assert tracker.set("n", 1).get(timeout=WAIT) == 1
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    assert watched.head_version("ctx") == 0
    assert tracker.set("n", 3).get(timeout=WAIT) == 3
    assert watched.head_version("ctx") == 3
    assert watched.read_head("ctx").get("n") == 3
    for n in range(4, 7):
        tracker.set("n", n).get(timeout=WAIT)
    assert watched.head_version("ctx") == 6
    manager.shutdown().get(timeout=WAIT)


def test_batched_policy_writes_after_max_delay(watched):
    clock = ManualClock()
    manager, tracker = _batched(watched, max_updates=1000, max_delay=5.0, clock=clock)
    writes = watched.completed["commit"]
    tracker.set("n", 1).get(timeout=WAIT)  # arms the timer before it is answered
    tracker.set("n", 2).get(timeout=WAIT)
    clock.advance(4.99)
    tracker.get("n").get(timeout=WAIT)  # handled after anything the clock told the tracker
    assert watched.completed["commit"] == writes  # not yet
    assert watched.head_version("ctx") == 0
    clock.advance(0.01)  # max_delay after the first update
    assert watched.wait_for("commit", writes + 1)
    assert watched.head_version("ctx") == 2
    assert watched.read_head("ctx").get("n") == 2
    manager.shutdown().get(timeout=WAIT)


def test_batched_policy_writes_on_save(watched):
    manager, tracker = _batched(watched, max_updates=100)
    tracker.set("n", 1).get(timeout=WAIT)
    tracker.set("n", 2).get(timeout=WAIT)
    assert watched.head_version("ctx") == 0
    assert tracker.save().get(timeout=WAIT) == 2
    assert watched.head_version("ctx") == 2
    tracker.set("n", 3).get(timeout=WAIT)
    assert manager.save("ctx").get(timeout=WAIT) == 3
    assert watched.head_version("ctx") == 3
    manager.shutdown().get(timeout=WAIT)


def test_save_without_unsaved_updates_writes_nothing(watched):
    manager, tracker = _batched(watched, max_updates=100)
    writes = watched.completed["commit"]
    assert tracker.save().get(timeout=WAIT) == 0
    assert watched.completed["commit"] == writes
    manager.shutdown().get(timeout=WAIT)


def test_batched_policy_writes_on_deactivate(watched):
    manager, tracker = _batched(watched, max_updates=100)
    tracker.set("n", 1).get(timeout=WAIT)
    assert watched.head_version("ctx") == 0
    manager.deactivate("ctx").get(timeout=WAIT)
    assert watched.head_version("ctx") == 1
    assert watched.read_head("ctx").get("n") == 1
    manager.shutdown().get(timeout=WAIT)


def test_batched_policy_writes_on_shutdown(watched):
    manager, tracker = _batched(watched, max_updates=100)
    tracker.set("n", 1).get(timeout=WAIT)
    tracker.set("m", 2).get(timeout=WAIT)
    assert watched.head_version("ctx") == 0
    manager.shutdown().get(timeout=WAIT)
    assert watched.head_version("ctx") == 2
    assert watched.read_head("ctx").data == {"n": 1, "m": 2}


def test_batched_policy_writes_before_a_recovery_point(watched):
    manager, tracker = _batched(watched, max_updates=100)
    tracker.set("n", 1).get(timeout=WAIT)
    point = tracker.create_recovery_point().get(timeout=WAIT)
    assert point.version == 1
    assert watched.head_version("ctx") == 1
    manager.shutdown().get(timeout=WAIT)


class _ErrorRecords(logging.Handler):
    """Sets `seen` when a record at ERROR or above is logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.seen.set()


@pytest.mark.parametrize("trigger", ["count", "save"])
def test_batched_flush_timer_does_not_fire_after_the_updates_were_written(watched, trigger):
    # After a write by count or save(), the timer armed by the batch's first update has
    # nothing left to write: it must not try to write (and fail, and log, and re-arm).
    handler = _ErrorRecords()
    logger = logging.getLogger("actors")
    logger.addHandler(handler)
    try:
        clock = ManualClock()
        manager, tracker = _batched(watched, max_updates=2, max_delay=5.0, clock=clock)
        tracker.set("n", 1).get(timeout=WAIT)  # arms the timer
        if trigger == "count":
            tracker.set("n", 2).get(timeout=WAIT)
        else:
            tracker.save().get(timeout=WAIT)
        writes = watched.completed["commit"]
        clock.advance(50.0)  # well past the timer's time: it would fire now
        # Handled after the timer's Flush, had it fired; and after anything it re-armed.
        assert tracker.get("n").get(timeout=WAIT) == (2 if trigger == "count" else 1)
        clock.advance(50.0)
        assert tracker.save().get(timeout=WAIT) == watched.head_version("ctx")
        assert watched.completed["commit"] == writes
        assert not handler.seen.is_set(), [r.getMessage() for r in handler.records]
        manager.shutdown().get(timeout=WAIT)
    finally:
        logger.removeHandler(handler)
    assert handler.records == []


def test_failed_durable_write_leaves_nothing_unsaved(watched):
    # A write that failed was undone: save() and deactivate() must not try to write again.
    manager = make_manager(watched)
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("commit", sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(PersistenceError):
        tracker.set("n", 2).get(timeout=WAIT)
    assert tracker.save().get(timeout=WAIT) == 1
    manager.deactivate("ctx").get(timeout=WAIT)
    assert watched.read_head("ctx").get("n") == 1
    manager.shutdown().get(timeout=WAIT)


def test_failed_batched_write_keeps_earlier_updates_unsaved(watched):
    manager, tracker = _batched(watched, max_updates=2)
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("commit", sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(PersistenceError):
        tracker.set("n", 2).get(timeout=WAIT)  # the write of the batch fails: undone
    assert tracker.get_state().get(timeout=WAIT).version == 1
    assert watched.head_version("ctx") == 0
    assert tracker.save().get(timeout=WAIT) == 1  # the earlier update is written now
    assert watched.read_head("ctx").get("n") == 1
    manager.shutdown().get(timeout=WAIT)


def test_deactivate_whose_write_fails_keeps_the_tracker_running(watched):
    manager, tracker = _batched(watched, max_updates=100)
    tracker.set("n", 1).get(timeout=WAIT)
    watched.fail("commit", sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(PersistenceError):
        manager.deactivate("ctx").get(timeout=WAIT)
    # Nothing acknowledged is lost: the tracker still holds it and writes it next time.
    assert tracker.get("n").get(timeout=WAIT) == 1
    manager.deactivate("ctx").get(timeout=WAIT)
    assert watched.read_head("ctx").get("n") == 1
    manager.shutdown().get(timeout=WAIT)


def test_watched_store_counts_operations(sqlite_store):
    store = WatchedStore(sqlite_store)
    assert store.wait_for("exists", 0, timeout=0)
    store.exists("x")
    assert store.wait_for("exists", 1, timeout=0)


@pytest.mark.parametrize("how", ["set", "modify"])
def test_write_after_another_writer_reloads_and_runs_again(db_path, how):
    # Two managers on one file stand for two processes: the store is the truth. A blind
    # set and a modify lose the write race, reload, and run again on the fresh State.
    first = make_manager(f"sqlite:///{db_path}")
    mine = make_tracker(first, data={"n": 0, "m": 0})
    second = make_manager(f"sqlite:///{db_path}")
    theirs = second.get_tracker("ctx").get(timeout=WAIT)
    theirs.set("m", 1).get(timeout=WAIT)

    attempts = {
        "set": lambda: mine.set("n", 2),
        "modify": lambda: mine.modify(lambda s: s.set("n", 2)),
    }
    attempts[how]().get(timeout=WAIT)

    state = mine.get_state().get(timeout=WAIT)
    assert (state.version, state.get("n"), state.get("m")) == (2, 2, 1)
    assert mine.set("n", 3).get(timeout=WAIT) == 3
    second.shutdown().get(timeout=WAIT)
    first.shutdown().get(timeout=WAIT)


def test_stale_update_state_after_another_writer_reloads_it(db_path):
    first = make_manager(f"sqlite:///{db_path}")
    mine = make_tracker(first, data={"n": 0})
    second = make_manager(f"sqlite:///{db_path}")
    theirs = second.get_tracker("ctx").get(timeout=WAIT)
    theirs.set("n", 1).get(timeout=WAIT)

    stale = mine.get_state().get(timeout=WAIT)
    stale.set("n", 2)
    with pytest.raises(VersionConflict):
        mine.update_state(stale).get(timeout=WAIT)

    state = mine.get_state().get(timeout=WAIT)
    assert (state.version, state.get("n")) == (1, 1)
    assert mine.set("n", 3).get(timeout=WAIT) == 2
    second.shutdown().get(timeout=WAIT)
    first.shutdown().get(timeout=WAIT)
