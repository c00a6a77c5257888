"""Leases in the runtime (`TrackerConfig.leases`): one owner per context across managers.

Two managers on one store stand for two processes here (each is its own lease owner); the
tests with real OS processes are in tests/reliability/test_lease_processes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from actors import (
    ConfigurationError,
    ContextError,
    ContextManager,
    LeasePolicy,
    NotOwner,
    ShutdownError,
    State,
    SyncPolicy,
    TrackerConfig,
    create_manager,
)
from actors.testing import ManualClock, crash
from storage import MemoryStore

from .conftest import WAIT, advance_when_scheduled, make_manager, run_threads

pytestmark = pytest.mark.timeout(60)

FAST = LeasePolicy(ttl=30.0, hold=0.01, wait=WAIT)


def _count(state: State) -> None:
    state.set("n", state.get("n") + 1)


def _holder(store: MemoryStore, name: str) -> str | None:
    lease = store.read_leases([name])[name]
    return lease.owner if lease.held else None


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def pair(store: MemoryStore) -> Iterator[tuple[ContextManager, ContextManager]]:
    """Two managers ("processes") on one store, leases on."""
    first = make_manager(store, leases=FAST)
    second = make_manager(store, leases=FAST)
    first.create_context("ctx", {"n": 0}).get()
    yield first, second
    first.shutdown().get()
    second.shutdown().get()


def test_the_first_write_takes_the_lease_and_reads_do_not(
    store: MemoryStore, pair: tuple[ContextManager, ContextManager]
) -> None:
    first, second = pair
    assert second.get_tracker("ctx").get().get("n").get() == 0
    assert _holder(store, "ctx") is None  # reading takes no lease
    first.get_tracker("ctx").get().modify(_count).get()
    owner = _holder(store, "ctx")
    assert owner is not None
    assert second.get_tracker("ctx").get().get("n").get() in (0, 1)  # its followed copy
    assert store.read_leases(["ctx"])["ctx"].epoch == 1


def test_a_write_elsewhere_waits_for_the_hand_over_and_goes_on_from_the_owner_s_state(
    store: MemoryStore, pair: tuple[ContextManager, ContextManager]
) -> None:
    first, second = pair
    first.get_tracker("ctx").get().modify(_count).get()
    owner_before = _holder(store, "ctx")
    state = second.get_tracker("ctx").get().modify(_count).get(timeout=WAIT)
    assert state.get("n") == 2  # caught up with the first owner's version before writing
    assert _holder(store, "ctx") not in (None, owner_before)
    assert store.read_leases(["ctx"])["ctx"].epoch == 2


def test_two_managers_hammering_one_context_end_exact_with_no_conflict(
    store: MemoryStore, pair: tuple[ContextManager, ContextManager]
) -> None:
    trackers = [manager.get_tracker("ctx").get() for manager in pair]
    rounds = 25

    def work(index: int) -> int:
        tracker = trackers[index % 2]
        for _ in range(rounds):
            tracker.modify(_count).get(timeout=WAIT)  # a VersionConflict would raise here
        return rounds

    done = sum(run_threads(8, work))
    assert done == 8 * rounds
    assert store.read_head("ctx").get("n") == 8 * rounds
    assert store.read_leases(["ctx"])["ctx"].epoch >= 2  # it changed hands


def test_wait_zero_refuses_at_once_with_not_owner_naming_the_holder(store: MemoryStore) -> None:
    store.create(State.new("ctx", {"n": 0}))
    store.acquire_lease("ctx", "the-other-process", 30)
    manager = make_manager(store, leases=LeasePolicy(ttl=30, hold=0.01, wait=0))
    try:
        tracker = manager.get_tracker("ctx").get()
        with pytest.raises(NotOwner) as caught:
            tracker.set("k", 1).get(timeout=WAIT)
        assert caught.value.owner == "the-other-process"

        async def through_await() -> Any:
            return await tracker.set("k", 1)

        with pytest.raises(NotOwner, match="the-other-process"):
            asyncio.run(through_await())
        assert tracker.get("k", None).get() is None  # nothing changed
        assert store.read_head("ctx").version == 0
        assert store.read_leases(["ctx"])["ctx"].wanted_by is not None  # the holder was asked
    finally:
        manager.shutdown().get()


def test_not_owner_names_the_owner_the_holder_configured_so_callers_can_route(
    store: MemoryStore,
) -> None:
    here = make_manager(store, leases=LeasePolicy(owner="10.0.0.7:8000"))
    there = make_manager(store, leases=LeasePolicy(wait=0))
    try:
        here.create_context("ctx", {"n": 0}).get()
        here.get_tracker("ctx").get().modify(_count).get()
        with pytest.raises(NotOwner) as caught:
            there.get_tracker("ctx").get().modify(_count).get(timeout=WAIT)
        assert caught.value.owner == "10.0.0.7:8000"
    finally:
        here.shutdown().get()
        there.shutdown().get()


def test_a_write_gets_not_owner_after_waiting_for_a_holder_that_never_hands_over(
    store: MemoryStore,
) -> None:
    store.create(State.new("ctx", {"n": 0}))
    store.acquire_lease("ctx", "a-stuck-process", 30)
    manager = make_manager(store, leases=LeasePolicy(ttl=30, hold=0.01, wait=0.2))
    try:
        tracker = manager.get_tracker("ctx").get()
        write = tracker.set("k", 1)
        read_after = tracker.get("n")  # queued behind the waiting write, in order
        with pytest.raises(NotOwner, match="a-stuck-process"):
            write.get(timeout=WAIT)
        assert read_after.get(timeout=WAIT) == 0
        assert store.read_head("ctx").version == 0
    finally:
        manager.shutdown().get()


def test_a_write_of_an_ended_lease_is_refused_by_the_store_and_rerun_under_a_new_one() -> None:
    store_clock = ManualClock()
    store = MemoryStore(clock=store_clock.now)
    store.create(State.new("ctx", {"n": 0}))
    # The keeper never looks during the test (hold), so the store's refusal is what tells.
    manager = make_manager(store, leases=LeasePolicy(ttl=60, hold=10, wait=WAIT))
    try:
        tracker = manager.get_tracker("ctx").get()
        tracker.modify(_count).get()
        store_clock.advance(61)  # we were paused past our lease; another process took over
        other = store.acquire_lease("ctx", "other", 60)
        head = store.read_head("ctx")
        head.set("n", 100)
        head.version += 1
        store.commit([store.prepare_snapshot(head, head.version - 1, lease=other.epoch)])
        store.release_lease("ctx", "other", other.epoch)
        # Our next write carries epoch 1: refused (LeaseLost), then rerun under epoch 3 on
        # the other process's State. Nothing of either is lost; no error reaches us.
        state = tracker.modify(_count).get(timeout=WAIT)
        assert state.get("n") == 101
        assert store.read_head("ctx").get("n") == 101
        assert store.read_leases(["ctx"])["ctx"].epoch == 3
    finally:
        manager.shutdown().get()


def test_a_former_owner_cannot_write_while_another_holds_the_lease() -> None:
    store_clock = ManualClock()
    store = MemoryStore(clock=store_clock.now)
    store.create(State.new("ctx", {"n": 0}))
    manager = make_manager(store, leases=LeasePolicy(ttl=60, hold=10, wait=0.2))
    try:
        tracker = manager.get_tracker("ctx").get()
        tracker.modify(_count).get()
        store_clock.advance(61)  # paused past our lease: another process takes it over,
        store.acquire_lease("ctx", "successor", 60)  # and has not written yet
        # Our State is the newest (version 1), so only fencing stops this write.
        with pytest.raises(NotOwner, match="successor"):
            tracker.modify(_count).get(timeout=WAIT)
        assert store.read_head("ctx").version == 1
        assert tracker.get("n").get() == 1  # the refused update was undone here too
    finally:
        manager.shutdown().get()


def test_stopping_and_shutdown_give_the_lease_up(store: MemoryStore) -> None:
    manager = make_manager(store, leases=FAST)
    manager.create_context("a", {"n": 0}).get()
    manager.create_context("b", {"n": 0}).get()
    manager.get_tracker("a").get().modify(_count).get()
    manager.get_tracker("b").get().modify(_count).get()
    assert _holder(store, "a") is not None
    manager.deactivate("a").get()
    assert _holder(store, "a") is None
    assert _holder(store, "b") is not None
    manager.shutdown().get()
    assert _holder(store, "b") is None


def test_the_keeper_renews_held_leases() -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock.now)
    config = TrackerConfig(leases=LeasePolicy(ttl=3, hold=0.5), passivate_after=None)
    manager = create_manager(store, config=config, clock=clock)
    try:
        manager.create_context("ctx", {"n": 0}).get()
        manager.get_tracker("ctx").get().modify(_count).get()
        for _ in range(24):  # 6 s, a look (hold / 2) at a time: twice the ttl
            advance_when_scheduled(clock, 0.25)  # the keeper's next look
            assert store.read_leases(["ctx"])["ctx"].held
        lease = store.read_leases(["ctx"])["ctx"]
        assert lease.epoch == 1
        assert lease.expires_in > 1.5  # renewed within the last ttl / 3
    finally:
        manager.shutdown().get()


def test_contexts_not_covered_take_no_lease(store: MemoryStore) -> None:
    policy = LeasePolicy(ttl=30, hold=0.01, contexts=lambda name: name.startswith("cart-"))
    manager = make_manager(store, leases=policy)
    try:
        for name in ("cart-1", "other"):
            manager.create_context(name, {"n": 0}).get()
            manager.get_tracker(name).get().modify(_count).get()
        assert _holder(store, "cart-1") is not None
        assert _holder(store, "other") is None
    finally:
        manager.shutdown().get()


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: LeasePolicy(ttl=1, hold=0.5), "hold"),
        (lambda: LeasePolicy(ttl=0), "ttl"),
        (lambda: LeasePolicy(wait=-1), "wait"),
        (lambda: LeasePolicy(contexts="cart-*"), "contexts"),
        (lambda: LeasePolicy(owner=""), "owner"),
        (lambda: LeasePolicy(owner=7), "owner"),
        (lambda: TrackerConfig(leases=LeasePolicy(), sync=SyncPolicy.batched(10)), "durable"),
        (lambda: TrackerConfig(leases=True), "leases"),
    ],
)
def test_bad_lease_configuration_is_refused_naming_it(build: Any, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        build()


def test_a_store_without_leases_is_refused_at_start(store: MemoryStore) -> None:
    from actors.testing import FaultyStore  # noqa: PLC0415

    class NoLeases(FaultyStore):
        supports_leases = False

    faulty = NoLeases(store)
    faulty.supports_leases = False
    with pytest.raises(ConfigurationError, match="keeps leases"):
        create_manager(faulty, leases=LeasePolicy())


def test_shutdown_while_a_write_waits_for_a_lease_answers_it_at_once(store: MemoryStore) -> None:
    store.create(State.new("ctx", {"n": 0}))
    store.acquire_lease("ctx", "elsewhere", 30)
    manager = make_manager(store, leases=LeasePolicy(ttl=30, hold=0.01, wait=WAIT * 2))
    tracker = manager.get_tracker("ctx").get()
    waiting = tracker.set("k", 1)
    behind = tracker.set("k", 2)
    manager.shutdown().get(timeout=WAIT)  # does not wait out the lease
    for future in (waiting, behind):
        with pytest.raises(ShutdownError):
            future.get(timeout=WAIT)
    assert store.read_head("ctx").version == 0


def test_deactivating_while_a_write_waits_for_a_lease_refuses_it_and_stops(
    store: MemoryStore,
) -> None:
    store.create(State.new("ctx", {"n": 0}))
    store.acquire_lease("ctx", "elsewhere", 30)
    manager = make_manager(store, leases=LeasePolicy(ttl=30, hold=0.01, wait=WAIT * 2))
    try:
        tracker = manager.get_tracker("ctx").get()
        waiting = tracker.set("k", 1)
        manager.deactivate("ctx").get(timeout=WAIT)
        with pytest.raises(ContextError):
            waiting.get(timeout=WAIT)
        assert store.read_head("ctx").version == 0
        assert _holder(store, "ctx") == "elsewhere"  # we never held it: nothing given up
    finally:
        manager.shutdown().get()


def test_a_tracker_restarted_after_a_crash_keeps_its_lease(store: MemoryStore) -> None:
    manager = make_manager(store, leases=FAST)
    try:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        tracker.modify(_count).get()
        crash(tracker).get(timeout=WAIT)
        assert tracker.modify(_count).get(timeout=WAIT).get("n") == 2
        assert store.read_leases(["ctx"])["ctx"].epoch == 1  # the same lease throughout
    finally:
        manager.shutdown().get()


def test_leases_taken_handed_over_and_lost_are_counted_and_stats_show_the_epoch() -> None:
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415

    from .test_metrics import collect  # noqa: PLC0415

    reader = InMemoryMetricReader()
    store_clock = ManualClock()
    store = MemoryStore(clock=store_clock.now)
    first = create_manager(
        store, leases=FAST, meter_provider=MeterProvider(metric_readers=[reader])
    )
    second = make_manager(store, leases=FAST)
    try:
        first.create_context("ctx", {"n": 0}).get()
        mine = first.get_tracker("ctx").get()
        mine.modify(_count).get()
        assert [s.lease_epoch for s in first.stats().get()] == [1]
        second.get_tracker("ctx").get().modify(_count).get(timeout=WAIT)  # we hand over
        mine.modify(_count).get(timeout=WAIT)  # and take it back (epoch 3)
        assert [s.lease_epoch for s in first.stats().get()] == [3]
        store_clock.advance(FAST.ttl + 1)  # ours ends: our next write is refused, rerun
        assert mine.modify(_count).get(timeout=WAIT).get("n") == 4
        values = collect(reader)
        assert values["context_runtime.leases.taken"] == 3
        assert values["context_runtime.leases.handed_over"] == 1
        assert values["context_runtime.leases.lost"] == 1
        assert values["context_runtime.leases.taken unit"] == "{lease}"
    finally:
        first.shutdown().get()
        second.shutdown().get()


def test_passivation_gives_the_lease_up_and_the_next_write_takes_it_again(tmp_path: Any) -> None:
    import pykka  # noqa: PLC0415

    from actors._tracker import TrackerActor  # noqa: PLC0415

    from .conftest import wait_until  # noqa: PLC0415

    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'p.db'}"
    config = TrackerConfig(passivate_after=60.0, leases=FAST, watch_interval=None)
    manager = create_manager(url, config=config, clock=clock)
    try:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        tracker.modify(_count).get()
        store = manager.store
        assert store.read_leases(["ctx"])["ctx"].held

        def passivated() -> bool:
            clock.advance(60.0)
            return not pykka.ActorRegistry.get_by_class(TrackerActor)

        assert wait_until(passivated)
        assert not store.read_leases(["ctx"])["ctx"].held  # given up as it stopped
        assert tracker.modify(_count).get(timeout=WAIT).get("n") == 2  # reactivated
        lease = store.read_leases(["ctx"])["ctx"]
        assert (lease.held, lease.epoch) == (True, 2)
    finally:
        manager.shutdown().get()
