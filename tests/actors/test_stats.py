"""manager.stats(): each context's status, version, unsaved updates, queue, restarts, error."""

from __future__ import annotations

import pytest

from actors import ContextStats, ContextStatus, SyncPolicy, create_manager
from actors.testing import FaultyStore, ManualClock, crash
from storage import MemoryStore, PersistenceError

from .conftest import FAST_RESTARTS, WAIT, Hold, wait_until


@pytest.fixture
def clock():
    return ManualClock()


def by_name(stats: list[ContextStats]) -> dict[str, ContextStats]:
    return {entry.name: entry for entry in stats}


def test_stats_of_a_running_and_an_inactive_context(wait, clock):
    manager = create_manager(clock=clock, sync=SyncPolicy.batched(100, max_delay=None))
    manager.create_context("busy", {"n": 0}).get(timeout=WAIT)
    manager.create_context("idle", {"n": 0}).get(timeout=WAIT)
    tracker = manager.get_tracker("busy").get(timeout=WAIT)
    for i in range(3):
        tracker.set("n", i).get(timeout=WAIT)
    manager.status("idle").get(timeout=WAIT)  # known to the manager, never activated

    stats = by_name(wait(manager.stats()))

    busy = stats["busy"]
    assert busy.status is ContextStatus.ACTIVE
    assert (busy.running, busy.answered, busy.phase) == (True, True, "Running")
    assert (busy.version, busy.stored_version, busy.unsaved) == (3, 0, 3)
    assert busy.waiting == 0
    assert (busy.restarts, busy.last_error) == (0, None)
    assert list(stats) == sorted(stats)
    manager.shutdown().get(timeout=WAIT)


def test_a_tracker_that_does_not_answer_is_reported_without_figures(clock):
    manager = create_manager(clock=clock)
    manager.create_context("stuck", {"n": 0}).get(timeout=WAIT)
    tracker = manager.get_tracker("stuck").get(timeout=WAIT)
    hold = Hold()
    tracker.modify(hold)
    assert hold.entered.wait(WAIT)
    queued = [tracker.set("n", i) for i in range(5)]
    pending = manager.stats()

    def answered() -> bool:
        clock.advance(2)  # past the second stats() waits for a tracker (once it asked)
        return pending.done()

    assert wait_until(answered)
    (stuck,) = pending.get(timeout=WAIT)
    assert (stuck.running, stuck.answered, stuck.version, stuck.waiting) == (
        True,
        False,
        None,
        None,
    )
    hold.release.set()
    for future in queued:
        future.get(timeout=WAIT)
    (stuck,) = manager.stats().get(timeout=WAIT)
    assert stuck.answered
    assert stuck.version == 6
    manager.shutdown().get(timeout=WAIT)


def test_restarts_and_the_last_error_are_reported(clock):
    store = FaultyStore(MemoryStore())
    manager = create_manager(store, clock=clock, supervisor=FAST_RESTARTS)
    manager.create_context("flaky", {"n": 0}).get(timeout=WAIT)
    tracker = manager.get_tracker("flaky").get(timeout=WAIT)
    crash(tracker).get(timeout=WAIT)
    (flaky,) = manager.stats().get(timeout=WAIT)
    assert flaky.restarts == 1
    assert "InjectedCrash" in (flaky.last_error or "")
    store.fail("commit", PersistenceError("disk full"))
    with pytest.raises(PersistenceError):
        tracker.set("n", 1).get(timeout=WAIT)
    (flaky,) = manager.stats().get(timeout=WAIT)
    assert flaky.answered  # an expected error is no restart
    assert flaky.version == 0
    assert flaky.restarts == 1
    manager.shutdown().get(timeout=WAIT)
    store.close()


def test_stats_of_a_manager_with_no_context_is_empty(wait):
    with create_manager() as manager:
        assert wait(manager.stats()) == []
