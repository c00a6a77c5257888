"""The acceptance tests the runtime's issue names, one per criterion."""

from __future__ import annotations

import threading
import time

import pykka
import pytest

from actors import (
    ContextError,
    ContextStatus,
    ContextTimeoutError,
    ShutdownError,
    VersionConflict,
    create_adapter,
    create_manager,
)
from actors._supervisor import ManagerActor
from actors._tracker import TrackerActor
from actors.testing import crash
from storage import SqliteStore

from .conftest import WAIT, make_manager, make_tracker, run_threads

THREADS = 8
INCREMENTS = 500


def _increment(state):
    state.set("counter", state.get("counter") + 1)


def test_acceptance_8_threads_x_500_modify_increments_end_at_exactly_4000(db_path):
    manager = make_manager(f"sqlite:///{db_path}")
    tracker = make_tracker(manager, "counter", {"counter": 0})

    def work(_):
        for _ in range(INCREMENTS):
            tracker.modify(_increment).get(timeout=WAIT)

    run_threads(THREADS, work)
    state = tracker.get_state().get(timeout=WAIT)
    assert state.get("counter") == THREADS * INCREMENTS == 4000
    assert state.version == 4000
    manager.shutdown().get(timeout=WAIT)
    with SqliteStore(db_path) as store:
        assert store.read_head("counter").get("counter") == 4000


def test_acceptance_8_threads_x_500_update_state_retrying_on_conflict_end_at_exactly_4000():
    manager = make_manager()
    tracker = make_tracker(manager, "counter", {"counter": 0})

    def work(_):
        conflicts = 0
        done = 0
        while done < INCREMENTS:
            state = tracker.get_state().get(timeout=WAIT)
            _increment(state)
            try:
                tracker.update_state(state).get(timeout=WAIT)
            except VersionConflict:
                conflicts += 1
                continue
            done += 1
        return conflicts

    conflicts = run_threads(THREADS, work)
    state = tracker.get_state().get(timeout=WAIT)
    assert state.get("counter") == THREADS * INCREMENTS == 4000
    assert state.version == 4000
    assert sum(conflicts) > 0  # the threads did contend
    manager.shutdown().get(timeout=WAIT)


def test_acceptance_acknowledged_updates_survive_a_crash_on_sqlite(db_path):
    manager = make_manager(f"sqlite:///{db_path}")
    tracker = make_tracker(manager, data={"n": 0})
    acknowledged = {f"k{i}": tracker.set(f"k{i}", i).get(timeout=WAIT) for i in range(10)}
    before = tracker.get_state().get(timeout=WAIT)

    crash(tracker).get(timeout=WAIT)

    after = tracker.get_state().get(timeout=WAIT)
    assert after == before
    assert after.version == max(acknowledged.values()) == 10
    assert all(after.get(f"k{i}") == i for i in range(10))
    manager.shutdown().get(timeout=WAIT)
    with SqliteStore(db_path) as store:
        assert store.read_head("ctx") == before


def test_acceptance_handle_held_across_a_crash_keeps_working(manager):
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    crash(tracker).get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 1
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    assert tracker.modify(_increment_n).get(timeout=WAIT).get("n") == 3


def _increment_n(state):
    state.set("n", state.get("n") + 1)


def test_acceptance_status_transitions_nonexistent_active_inactive_nonexistent(manager):
    def status():
        return manager.status("ctx").get(timeout=WAIT)

    assert status() is ContextStatus.NONEXISTENT
    manager.create_context("ctx").get(timeout=WAIT)
    assert status() is ContextStatus.INACTIVE  # created, not yet activated
    manager.get_tracker("ctx").get(timeout=WAIT)
    assert status() is ContextStatus.ACTIVE
    manager.deactivate("ctx").get(timeout=WAIT)
    assert status() is ContextStatus.INACTIVE
    manager.delete_context("ctx").get(timeout=WAIT)
    assert status() is ContextStatus.NONEXISTENT


def test_acceptance_status_transitions_through_the_adapter(manager):
    adapter = create_adapter(manager)
    assert adapter.get_status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT
    adapter.create_and_activate_context("ctx").get(timeout=WAIT)
    assert adapter.get_status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    adapter.deactivate_context("ctx").get(timeout=WAIT)
    assert adapter.get_status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    manager.delete_context("ctx").get(timeout=WAIT)
    assert adapter.get_status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT


def test_acceptance_recovery_point_restore(manager):
    tracker = make_tracker(manager, data={"n": 1})
    tracker.set_metadata("stage", "good").get(timeout=WAIT)
    point = tracker.create_recovery_point("good").get(timeout=WAIT)
    tracker.set("n", 666).get(timeout=WAIT)
    tracker.set_metadata("stage", "bad").get(timeout=WAIT)
    current = tracker.get_state().get(timeout=WAIT)

    restored = manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)

    assert restored.version == current.version + 1  # versions never go backwards
    assert (restored.data, restored.metadata) == ({"n": 1}, {"stage": "good"})
    assert tracker.get_state().get(timeout=WAIT) == restored
    assert manager.load("ctx").get(timeout=WAIT) == restored


def _join_other_threads(timeout):
    deadline = time.monotonic() + timeout
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threading.enumerate() if thread is not main]


def test_acceptance_shutdown_stops_every_actor_thread(db_path):
    manager = make_manager(f"sqlite:///{db_path}")
    adapter = create_adapter(manager)
    adapter.initialize().get(timeout=WAIT)
    trackers = [make_tracker(manager, f"ctx{i}", {"n": i}) for i in range(5)]
    for tracker in trackers:
        tracker.set("n", 100).get(timeout=WAIT)
    assert len(pykka.ActorRegistry.get_by_class(TrackerActor)) == 6
    assert len(pykka.ActorRegistry.get_by_class(ManagerActor)) == 1

    manager.shutdown().get(timeout=WAIT)

    assert _join_other_threads(WAIT) == []
    assert pykka.ActorRegistry.get_all() == []


def test_acceptance_persistence_across_a_restart_of_the_manager_on_the_same_sqlite_file(db_path):
    url = f"sqlite:///{db_path}"
    with create_manager(url) as manager:
        tracker = make_tracker(manager, data={"n": 0})
        tracker.set("n", 41).get(timeout=WAIT)
        tracker.set_metadata("owner", "me").get(timeout=WAIT)
        point = tracker.create_recovery_point("kept").get(timeout=WAIT)
        manager.create_context("cold", {"x": [1, 2]}).get(timeout=WAIT)
        before = tracker.get_state().get(timeout=WAIT)

    with create_manager(url) as manager:
        assert manager.list_contexts().get(timeout=WAIT) == ["cold", "ctx"]
        assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
        tracker = manager.get_tracker("ctx").get(timeout=WAIT)
        assert tracker.get_state().get(timeout=WAIT) == before
        assert tracker.set("n", 42).get(timeout=WAIT) == before.version + 1
        assert manager.list_recovery_points("ctx").get(timeout=WAIT) == [point]
        assert manager.load("cold").get(timeout=WAIT).get("x") == [1, 2]


def test_acceptance_calls_after_shutdown_raise_shutdown_error(manager):
    adapter = create_adapter(manager)
    tracker = adapter.initialize().get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)

    calls = [
        lambda: manager.create_context("new"),
        lambda: manager.get_tracker("default"),
        lambda: manager.status("default"),
        manager.list_contexts,
        manager.active_contexts,
        lambda: manager.save("default"),
        lambda: manager.load("default"),
        lambda: manager.deactivate("default"),
        lambda: manager.delete_context("default"),
        lambda: manager.create_recovery_point("default"),
        lambda: manager.list_recovery_points("default"),
        lambda: manager.restore_recovery_point("default", 1),
        lambda: manager.delete_recovery_point("default", 1),
        adapter.initialize,
        adapter.get_current_tracker,
        adapter.current_context,
        lambda: adapter.switch_context("default"),
        lambda: adapter.activate_context("default"),
        tracker.get_state,
        lambda: tracker.get("n"),
        lambda: tracker.set("n", 1),
        lambda: tracker.delete("n"),
        lambda: tracker.modify(_increment_n),
        tracker.save,
        tracker.create_recovery_point,
    ]
    for call in calls:
        with pytest.raises(ShutdownError):
            call().get(timeout=WAIT)


def test_acceptance_shutdown_is_idempotent(manager):
    tracker = make_tracker(manager)
    first = manager.shutdown()
    second = manager.shutdown()  # while the first is under way
    assert first.get(timeout=WAIT) is None
    assert second.get(timeout=WAIT) is None
    assert manager.shutdown().get(timeout=WAIT) is None  # after it finished
    assert manager.shutdown().get(timeout=WAIT) is None
    with pytest.raises(ShutdownError):
        tracker.get("n").get(timeout=WAIT)


def test_acceptance_shutdown_while_8_threads_update_keeps_every_acknowledged_update(db_path):
    manager = make_manager(f"sqlite:///{db_path}", ask_timeout=WAIT)
    tracker = make_tracker(manager, "shared", {})
    warmed_up = threading.Barrier(THREADS + 1)

    def work(index):
        key = f"t{index}"
        last = None  # (value, version) of the last acknowledged update
        value = 0
        while True:
            value += 1
            try:
                version = tracker.set(key, value).get(timeout=WAIT)
            except ContextError as exc:
                return last, exc
            last = value, version
            if value == 20:
                warmed_up.wait(timeout=WAIT)

    results = []
    runner = threading.Thread(target=lambda: results.extend(run_threads(THREADS, work)))
    runner.start()
    warmed_up.wait(timeout=WAIT)  # every thread is mid-update
    manager.shutdown().get(timeout=WAIT)
    runner.join(WAIT * 3)
    assert not runner.is_alive()

    assert len(results) == THREADS
    for last, error in results:
        assert last is not None
        assert not isinstance(error, ContextTimeoutError), "a call hung until its timeout"
        assert isinstance(error, ContextError)
    with SqliteStore(db_path) as store:
        stored = store.read_head("shared")
    for index, (last, _) in enumerate(results):
        value, version = last
        assert stored.get(f"t{index}") == value
        assert stored.version >= version
    assert stored.version == max(last[1] for last, _ in results)
