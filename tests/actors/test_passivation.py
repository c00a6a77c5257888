"""Passivation: idle trackers stop to free their threads and come back on the next call."""

from __future__ import annotations

import threading
import time

import pykka
import pytest

from actors import ContextStatus, ContextTracker, SyncPolicy, TrackerConfig, create_manager
from actors._future import new_reply
from actors._messages import ListStopping, Passivate
from actors._tracker import TrackerActor
from storage import SqliteStore

from .conftest import Hold, wait_until

WAIT = 10.0


def live_trackers() -> int:
    return len(pykka.ActorRegistry.get_by_class(TrackerActor))


def _manager(db, **config):
    return create_manager(f"sqlite:///{db}", config=TrackerConfig(passivate_after=0.1, **config))


def test_idle_trackers_are_passivated_and_stay_active(tmp_path):
    with _manager(tmp_path / "p.db") as manager:
        for i in range(20):
            manager.create_context(f"c{i}", {"n": i}).get()
            manager.get_tracker(f"c{i}").get().set("n", -i).get()
        assert wait_until(lambda: live_trackers() == 0)
        assert manager.status("c3").get() is ContextStatus.ACTIVE
        assert manager.active_contexts().get() == sorted(f"c{i}" for i in range(20))


def test_a_call_through_an_old_handle_reactivates_transparently(tmp_path):
    with _manager(tmp_path / "p.db") as manager:
        manager.create_context("ctx", {"n": 1}).get()
        tracker: ContextTracker = manager.get_tracker("ctx").get()
        tracker.set("n", 2).get()
        assert wait_until(lambda: live_trackers() == 0)
        assert tracker.get("n").get() == 2
        assert live_trackers() == 1
        assert tracker.set("n", 3).get() == 2  # versions go on from the store


def test_calls_racing_passivation_are_all_answered_in_order(tmp_path):
    with _manager(tmp_path / "p.db") as manager:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        versions = []
        deadline = time.monotonic() + 1.5
        # Bursts with idle gaps around the passivation period: some calls land while the
        # tracker is stopping or stopped and must be handed to a new one, in order.
        while time.monotonic() < deadline:
            futures = [tracker.set("n", i) for i in range(5)]
            versions.extend(future.get() for future in futures)
            threading.Event().wait(0.09)
        assert versions == list(range(1, len(versions) + 1))
        assert tracker.get("n").get() == 4


def test_batched_updates_are_written_before_passivation(tmp_path):
    db = tmp_path / "p.db"
    with _manager(db, sync=SyncPolicy.batched(max_updates=1000, max_delay=60.0)) as manager:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        tracker.set("n", 7).get()
        assert wait_until(lambda: live_trackers() == 0)
        with SqliteStore(db) as store:
            assert store.read_head("ctx").get("n") == 7


def test_deactivating_a_passivated_context_makes_it_inactive(tmp_path):
    with _manager(tmp_path / "p.db") as manager:
        manager.create_context("ctx").get()
        tracker = manager.get_tracker("ctx").get()
        assert wait_until(lambda: live_trackers() == 0)
        manager.deactivate("ctx").get()
        assert manager.status("ctx").get() is ContextStatus.INACTIVE
        with pytest.raises(Exception, match="inactive"):
            tracker.get("n").get()


def test_thousand_contexts_used_once_leave_no_tracker_thread(tmp_path):
    with _manager(tmp_path / "p.db") as manager:
        for i in range(1000):
            manager.create_context(f"c{i}").get()
            manager.get_tracker(f"c{i}").get().set("k", i).get()
        assert wait_until(lambda: live_trackers() == 0, timeout=30)
        # Manager and writer, plus timer threads: no thread per context is left.
        assert threading.active_count() < 10


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
