"""Passivation: idle trackers stop to free their memory and come back on the next call.

Time is a `ManualClock`: `idle()` moves it on by a passivation period at a time until every
tracker has passivated, so no test waits through a real idle gap."""

from __future__ import annotations

import threading
import time

import pykka
import pytest

from actors import ContextStatus, ContextTracker, SyncPolicy, TrackerConfig, create_manager
from actors._future import new_reply
from actors._messages import ListStopping, Passivate
from actors._tracker import TrackerActor
from actors.testing import ManualClock
from storage import SqliteStore

from .conftest import Hold, wait_until

WAIT = 10.0
PERIOD = 60.0


def live_trackers() -> int:
    return len(pykka.ActorRegistry.get_by_class(TrackerActor))


def _manager(db, clock, **config):
    return create_manager(
        f"sqlite:///{db}", config=TrackerConfig(passivate_after=PERIOD, **config), clock=clock
    )


def idle(clock: ManualClock, timeout: float = WAIT) -> bool:
    """Let time pass, a passivation period at a time, until no tracker runs."""

    def passivated() -> bool:
        clock.advance(PERIOD)
        return live_trackers() == 0

    return wait_until(passivated, timeout)


@pytest.fixture
def clock():
    return ManualClock()


def test_idle_trackers_are_passivated_and_stay_active(tmp_path, clock):
    with _manager(tmp_path / "p.db", clock) as manager:
        for i in range(20):
            manager.create_context(f"c{i}", {"n": i}).get()
            manager.get_tracker(f"c{i}").get().set("n", -i).get()
        assert idle(clock)
        assert manager.status("c3").get() is ContextStatus.ACTIVE
        assert manager.active_contexts().get() == sorted(f"c{i}" for i in range(20))


def test_a_call_through_an_old_handle_reactivates_transparently(tmp_path, clock):
    with _manager(tmp_path / "p.db", clock) as manager:
        manager.create_context("ctx", {"n": 1}).get()
        tracker: ContextTracker = manager.get_tracker("ctx").get()
        tracker.set("n", 2).get()
        assert idle(clock)
        assert tracker.get("n").get() == 2
        assert live_trackers() == 1
        assert tracker.set("n", 3).get() == 2  # versions go on from the store


def test_calls_racing_passivation_are_all_answered_in_order(tmp_path, clock):
    with _manager(tmp_path / "p.db", clock) as manager:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        versions = []
        # Bursts with idle periods between them, the clock moved while calls are still
        # queued: some land while the tracker is stopping or stopped and must be handed to a
        # new one, in order.
        for _ in range(40):
            futures = [tracker.set("n", i) for i in range(5)]
            clock.advance(PERIOD)
            versions.extend(future.get() for future in futures)
        assert versions == list(range(1, len(versions) + 1))
        assert tracker.get("n").get() == 4


def test_batched_updates_are_written_before_passivation(tmp_path, clock):
    db = tmp_path / "p.db"
    batched = SyncPolicy.batched(max_updates=1000, max_delay=10 * PERIOD)
    with _manager(db, clock, sync=batched) as manager:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        tracker.set("n", 7).get()
        assert idle(clock)
        with SqliteStore(db) as store:
            assert store.read_head("ctx").get("n") == 7


def test_deactivating_a_passivated_context_makes_it_inactive(tmp_path, clock):
    with _manager(tmp_path / "p.db", clock) as manager:
        manager.create_context("ctx").get()
        tracker = manager.get_tracker("ctx").get()
        assert idle(clock)
        manager.deactivate("ctx").get()
        assert manager.status("ctx").get() is ContextStatus.INACTIVE
        with pytest.raises(Exception, match="inactive"):
            tracker.get("n").get()


def test_thousand_contexts_share_the_pool_threads_and_passivate(tmp_path, clock):
    before = threading.active_count()
    with _manager(tmp_path / "p.db", clock) as manager:
        for i in range(1000):
            manager.create_context(f"c{i}").get()
            manager.get_tracker(f"c{i}").get().set("k", i).get()
        # No thread per context: the manager, its writer, hub, store worker and watcher,
        # and at most the dispatcher's threads.
        assert threading.active_count() - before <= 5 + manager.config.tracker_threads
        assert idle(clock, timeout=30)
    assert wait_until(lambda: threading.active_count() <= before)  # the clock thread ends


def _stopping(manager):
    reply = new_reply()
    manager._ref.tell(ListStopping(reply))
    return reply.result(WAIT)


@pytest.mark.parametrize("how", ["deactivate", "delete", "shutdown"])
def test_a_stop_that_reaches_a_tracker_deciding_to_passivate_is_answered(how):
    # The tracker decides to passivate with the manager's Stop already behind it in its
    # inbox: the stop must win and be answered, or deactivate, delete and shutdown would
    # wait forever (and every later call naming the context behind them).
    manager = create_manager(config=TrackerConfig(passivate_after=None))  # no ticks of its own
    manager.create_context("ctx", {"n": 0}).get()
    tracker = manager.get_tracker("ctx").get()
    hold = Hold()
    tracker.modify(hold)
    assert hold.entered.wait(WAIT)
    tracker._cell.ref.tell(Passivate(time.monotonic() + 1000))  # idle "since" the future
    stopped = {
        "deactivate": lambda: manager.deactivate("ctx"),
        "delete": lambda: manager.delete_context("ctx"),
        "shutdown": manager.shutdown,
    }[how]()
    assert wait_until(lambda: _stopping(manager) == ["ctx"])  # its Stop is in the inbox
    hold.release.set()
    assert stopped.get(timeout=WAIT) is None
    if how != "shutdown":
        expected = ContextStatus.INACTIVE if how == "deactivate" else ContextStatus.NONEXISTENT
        assert manager.status("ctx").get(timeout=WAIT) is expected
        manager.shutdown().get(timeout=WAIT)
