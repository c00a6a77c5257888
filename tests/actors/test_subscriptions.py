"""Change subscriptions: every accepted change, in version order, once per subscriber; slow
subscribers never slow the tracker; subscriptions outlive tracker incarnations and end on
unsubscribe, deletion and shutdown; adapters report switches of their current context."""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import sqlite3
import threading
from contextlib import closing

import attrs
import pykka
import pytest

from actors import (
    Change,
    ChangeCause,
    ContextNotFoundError,
    CurrentContextChange,
    Overflow,
    ShutdownError,
    State,
    Subscription,
    SubscriptionConfig,
    SynchronizationError,
    SyncPolicy,
    create_adapter,
)
from actors._changes import Publish, Topic
from actors._future import new_reply
from actors._subscription_hub import SubscriptionHub
from actors._subscription_messages import CloseHub, Register
from actors._tracker import TrackerActor
from actors.testing import ManualClock, crash

from .conftest import WAIT, make_manager, make_tracker, run_threads, wait_until


class Collector:
    """A subscription callback that keeps what it receives and lets the test wait for it.
    With `hold` set, the first call blocks until `release` is set."""

    def __init__(self, *, hold: bool = False) -> None:
        self.seen: list[Change] = []
        self._arrived: queue.Queue[Change] = queue.Queue()
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, change: Change) -> None:
        self.entered.set()
        if not self.release.wait(WAIT):
            raise AssertionError("never released")
        self.seen.append(change)
        self._arrived.put(change)

    def next(self) -> Change:
        return self._arrived.get(timeout=WAIT)

    def until(self, version: int) -> list[Change]:
        """Wait for the change to `version`; return everything received so far."""
        while self.next().new_version != version:
            pass
        return list(self.seen)


def versions(changes) -> list[int]:
    return [change.new_version for change in changes]


def replay(state: State, changes) -> tuple[dict, dict]:
    data, metadata = dict(state.data), dict(state.metadata)
    for change in changes:
        if change.reset:
            data, metadata = {}, {}
        data.update(change.changed)
        metadata.update(change.metadata_changed)
        for key in change.removed:
            del data[key]
        for key in change.metadata_removed:
            del metadata[key]
    return data, metadata


# -- order, content, causes -------------------------------------------------------------------

FLUSH_DELAY = 1.0

STORES = {
    "sqlite-group-commit": lambda db, clock: make_manager(f"sqlite:///{db}", clock=clock),
    "memory": lambda db, clock: make_manager(clock=clock),
    "sqlite-batched": lambda db, clock: make_manager(
        f"sqlite:///{db}",
        sync=SyncPolicy.batched(max_updates=7, max_delay=FLUSH_DELAY),
        clock=clock,
    ),
}


@pytest.mark.parametrize("store", sorted(STORES))
def test_every_change_arrives_once_in_version_order_under_8_writer_threads(store, db_path):
    clock = ManualClock()  # moved on by one writer: batched flushes come between updates
    manager = STORES[store](db_path, clock)
    tracker = make_tracker(manager, data={"start": True})
    first, second = Collector(), Collector()
    big = SubscriptionConfig(buffer_size=10_000)
    tracker.subscribe(first, big).get(timeout=WAIT)
    tracker.subscribe(second, big).get(timeout=WAIT)
    before = tracker.get_state().get(timeout=WAIT)

    def work(thread: int) -> None:
        for i in range(40):
            tracker.set(f"t{thread}", i).get(timeout=WAIT)
            if thread == 0:
                clock.advance(FLUSH_DELAY)
        tracker.delete(f"t{thread}").get(timeout=WAIT)

    run_threads(8, work)
    last = 8 * 41
    for collector in (first, second):
        changes = collector.until(last)
        assert versions(changes) == list(range(1, last + 1))
        assert all(c.old_version == c.new_version - 1 for c in changes)
        assert all(c.cause is ChangeCause.UPDATE and not c.missed for c in changes)
        # Each thread's own updates arrive in the order it made them.
        for thread in range(8):
            mine = [c for c in changes if f"t{thread}" in c.changed or f"t{thread}" in c.removed]
            assert [c.changed.get(f"t{thread}") for c in mine] == [*range(40), None]
    after = tracker.get_state().get(timeout=WAIT)
    assert replay(before, first.seen) == (after.data, after.metadata) == ({"start": True}, {})
    assert first.seen == second.seen
    manager.shutdown().get(timeout=WAIT)


def test_changes_describe_keys_set_and_deleted_in_data_and_metadata(tracker):
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)
    tracker.set("a", [1, 2]).get(timeout=WAIT)
    tracker.set_metadata("owner", "me").get(timeout=WAIT)
    tracker.delete("a").get(timeout=WAIT)

    def set_b_delete_n(state):
        state.set("b", {"x": 1})
        state.delete("n")

    tracker.modify(set_b_delete_n).get(timeout=WAIT)
    state = tracker.get_state().get(timeout=WAIT)
    state.metadata.clear()
    state.set("c", 3)
    tracker.update_state(state).get(timeout=WAIT)

    changes = collector.until(5)
    described = [(c.changed, c.removed, c.metadata_changed, c.metadata_removed) for c in changes]
    assert described == [
        ({"a": [1, 2]}, (), {}, ()),
        ({}, (), {"owner": "me"}, ()),
        ({}, ("a",), {}, ()),
        ({"b": {"x": 1}}, ("n",), {}, ()),
        ({"c": 3}, (), {}, ("owner",)),
    ]
    assert {(c.context, c.cause, c.reset) for c in changes} == {("ctx", ChangeCause.UPDATE, False)}
    assert changes[-1].updated_at == tracker.get_state().get(timeout=WAIT).updated_at
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        changes[0].new_version = 9  # type: ignore[misc]


def test_restore_publishes_a_change_caused_by_restore(manager, tracker):
    point = tracker.create_recovery_point("one").get(timeout=WAIT)  # {"n": 0}
    tracker.set("n", 5).get(timeout=WAIT)
    tracker.set("m", 1).get(timeout=WAIT)
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)

    manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)

    change = collector.next()
    assert (change.cause, change.old_version, change.new_version) == (ChangeCause.RESTORE, 2, 3)
    assert (change.changed, change.removed, change.reset) == ({"n": 0}, ("m",), False)


def _damage(path, name, version) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        (blob,) = conn.execute(
            "SELECT blob FROM snapshots WHERE context = ? AND version = ?", (name, version)
        ).fetchone()
        blob = bytearray(blob)
        blob[len(blob) // 2] ^= 0x55
        conn.execute(
            "UPDATE snapshots SET blob = ? WHERE context = ? AND version = ?",
            (bytes(blob), name, version),
        )


def test_a_fallback_past_a_damaged_head_publishes_a_reset_caused_by_recovery(sqlite_store, caplog):
    caplog.set_level(logging.CRITICAL, logger="actors.recovery")  # the damage is on purpose
    manager = make_manager(sqlite_store, snapshot_every=1)
    tracker = make_tracker(manager, data={"n": 0})
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)
    for n in (1, 2, 3):
        tracker.set("n", n).get(timeout=WAIT)
    tracker.set_metadata("m", "x").get(timeout=WAIT)
    _damage(sqlite_store.path, "ctx", 4)

    crash(tracker).get(timeout=WAIT)  # the restart finds version 4 damaged, falls back to 3

    assert versions(collector.until(5)) == [1, 2, 3, 4, 5]
    change = collector.seen[-1]
    assert (change.cause, change.old_version, change.reset) == (ChangeCause.RECOVERY, 4, True)
    assert (change.changed, change.metadata_changed) == ({"n": 3}, {})
    assert manager.recovery_report("ctx").get(timeout=WAIT).version == 5
    manager.shutdown().get(timeout=WAIT)


def test_a_crash_that_loses_batched_updates_publishes_a_reset_back_to_the_stored_version():
    manager = make_manager(sync=SyncPolicy.batched(max_updates=100, max_delay=60.0))
    tracker = make_tracker(manager, data={"n": 0})
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)  # accepted (and published), not yet written
    tracker.set("k", "v").get(timeout=WAIT)

    crash(tracker).get(timeout=WAIT)

    assert versions(collector.until(0)) == [1, 2, 0]
    change = collector.seen[-1]
    assert (change.cause, change.old_version, change.reset) == (ChangeCause.RECOVERY, 2, True)
    assert change.changed == {"n": 0}
    manager.shutdown().get(timeout=WAIT)


def test_each_subscriber_gets_its_own_copies_of_the_values(tracker):
    mutator, other = Collector(), Collector()
    tracker.subscribe(mutator).get(timeout=WAIT)
    tracker.subscribe(other).get(timeout=WAIT)
    value = {"list": [1]}
    tracker.set("v", value).get(timeout=WAIT)
    value["list"].append("caller")

    mine = mutator.next()
    mine.changed["v"]["list"].append("subscriber")

    assert other.next().changed == {"v": {"list": [1]}}
    assert tracker.get("v").get(timeout=WAIT) == {"list": [1]}


# -- slow and failing subscribers -------------------------------------------------------------


def test_a_slow_subscriber_drops_the_oldest_reports_the_gap_and_never_slows_the_tracker(
    tracker,
):
    slow = Collector(hold=True)
    config = SubscriptionConfig(buffer_size=4, overflow=Overflow.DROP_OLDEST)
    subscription = tracker.subscribe(slow, config).get(timeout=WAIT)
    try:
        tracker.set("n", 1).get(timeout=WAIT)
        assert slow.entered.wait(WAIT)  # the callback now blocks on version 1
        # The tracker answers every call while its subscriber is stuck.
        for n in range(2, 51):
            assert tracker.set("n", n).get(timeout=WAIT) == n
        assert wait_until(lambda: subscription.dropped == 45)
    finally:
        slow.release.set()

    changes = slow.until(50)
    assert versions(changes) == [1, 47, 48, 49, 50]
    assert changes[1].missed == range(2, 47)
    assert [bool(c.missed) for c in changes] == [False, True, False, False, False]
    assert subscription.active
    assert subscription.error is None


def test_overflow_policy_unsubscribe_delivers_what_was_buffered_then_ends_with_an_error(
    tracker, caplog
):
    slow = Collector(hold=True)
    config = SubscriptionConfig(buffer_size=2, overflow=Overflow.UNSUBSCRIBE)
    subscription = tracker.subscribe(slow, config).get(timeout=WAIT)
    try:
        tracker.set("n", 1).get(timeout=WAIT)
        assert slow.entered.wait(WAIT)
        for n in range(2, 6):
            tracker.set("n", n).get(timeout=WAIT)  # 2 and 3 are buffered; 4 overflows
        assert wait_until(lambda: subscription.error is not None)
    finally:
        slow.release.set()

    subscription.ended().get(timeout=WAIT)
    assert versions(slow.seen) == [1, 2, 3]
    assert isinstance(subscription.error, SynchronizationError)
    assert "fell 2 changes behind" in str(subscription.error)
    assert "fell 2 changes behind" in caplog.text
    assert not subscription.active
    assert tracker.set("n", 6).get(timeout=WAIT) == 6  # the tracker is unharmed


def test_a_raising_callback_is_reported_and_delivery_and_the_tracker_go_on(tracker, caplog):
    seen = queue.Queue()

    def callback(change: Change) -> None:
        seen.put(change.new_version)
        if change.new_version % 2:
            raise ValueError(f"odd version {change.new_version}")

    subscription = tracker.subscribe(callback).get(timeout=WAIT)
    for n in range(1, 5):
        assert tracker.set("n", n).get(timeout=WAIT) == n

    assert [seen.get(timeout=WAIT) for _ in range(4)] == [1, 2, 3, 4]
    assert wait_until(lambda: subscription.failures == 2)  # counted after the call returns
    assert str(subscription.last_failure) == "odd version 3"
    assert "callback failed" in caplog.text
    assert "odd version 1" in caplog.text
    assert subscription.active
    assert tracker.get("n").get(timeout=WAIT) == 4


# -- asyncio ----------------------------------------------------------------------------------


def test_async_iteration_delivers_changes_without_blocking_the_loop(tracker):
    async def main() -> tuple[list[int], int]:
        async with tracker.changes() as changes:
            received: list[int] = []

            async def consume() -> None:
                async for change in changes:
                    received.append(change.new_version)
                    if change.new_version == 3:
                        return

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(0)  # the consumer now waits for a change
            # The loop stays free while it waits: these awaits complete.
            for n in (1, 2, 3):
                assert await tracker.set("n", n) == n
            await asyncio.wait_for(consumer, WAIT)
            return received, len(changes._items)

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == ([1, 2, 3], 0)


def test_async_iteration_raises_after_the_buffer_under_overflow_unsubscribe(tracker):
    config = SubscriptionConfig(buffer_size=2, overflow=Overflow.UNSUBSCRIBE)

    async def main() -> list[int]:
        async with tracker.changes(config) as changes:
            for n in range(1, 6):
                await tracker.set("n", n)
            await changes.subscription.ended()  # 1 handed over, 2 and 3 buffered, 4 overflowed
            received = [(await anext(changes)).new_version for _ in range(3)]
            with pytest.raises(SynchronizationError):
                await anext(changes)
            with pytest.raises(StopAsyncIteration):
                await changes.__anext__()
            return received

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [1, 2, 3]


def test_an_iterator_dropped_without_closing_unsubscribes(tracker):
    async def main() -> None:
        changes = tracker.changes()
        await changes.__aenter__()  # in place; no `async with`, which would close it
        await tracker.set("n", 1)
        async for change in changes:
            assert change.new_version == 1
            break

    asyncio.run(asyncio.wait_for(main(), WAIT))
    topic = tracker._cell.changes
    assert wait_until(lambda: gc.collect() is not None and not topic.live)


# -- when subscriptions end -------------------------------------------------------------------


def test_unsubscribe_is_explicit_and_stops_every_call(tracker):
    stopped, control = Collector(), Collector()
    subscription = tracker.subscribe(stopped).get(timeout=WAIT)
    tracker.subscribe(control).get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    assert stopped.next().new_version == 1

    subscription.unsubscribe().get(timeout=WAIT)
    tracker.set("n", 2).get(timeout=WAIT)
    tracker.set("n", 3).get(timeout=WAIT)

    assert versions(control.until(3)) == [1, 2, 3]  # the hub has handled 2 and 3
    assert versions(stopped.seen) == [1]
    assert not subscription.active
    assert subscription.error is None
    subscription.unsubscribe().get(timeout=WAIT)  # idempotent


def test_unsubscribing_from_inside_the_callback_stops_at_once(tracker):
    calls = []
    holder: list[Subscription[Change]] = []
    subscribed = threading.Event()

    def callback(change: Change) -> None:
        calls.append(change.new_version)
        assert subscribed.wait(WAIT)
        holder[0].unsubscribe()  # not waited on: it resolves once this call returns

    holder.append(tracker.subscribe(callback, SubscriptionConfig(buffer_size=50)).get(WAIT))
    subscribed.set()
    for n in range(1, 6):
        tracker.set("n", n).get(timeout=WAIT)
    holder[0].ended().get(timeout=WAIT)
    assert calls == [1]


def test_deleting_the_context_ends_callbacks_and_iterators_after_what_they_buffered(manager):
    tracker = make_tracker(manager, data={"n": 0})
    collector = Collector()
    subscription = tracker.subscribe(collector).get(timeout=WAIT)

    async def main() -> list[int]:
        async with tracker.changes() as changes:
            await tracker.set("n", 1)
            await tracker.set("n", 2)
            await manager.delete_context("ctx")
            return [change.new_version async for change in changes]  # ends by itself

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [1, 2]
    subscription.ended().get(timeout=WAIT)
    assert versions(collector.seen) == [1, 2]
    with pytest.raises(ContextNotFoundError):
        tracker.subscribe(Collector()).get(timeout=WAIT)

    # A context created again under the name is a new one: new subscriptions, new changes.
    again = make_tracker(manager, data={"n": 0})
    fresh = Collector()
    again.subscribe(fresh).get(timeout=WAIT)
    again.set("n", 1).get(timeout=WAIT)
    assert fresh.next().new_version == 1
    assert versions(collector.seen) == [1, 2]


def test_shutdown_ends_every_subscription_and_iterator(db_path):
    manager = make_manager(f"sqlite:///{db_path}")
    tracker = make_tracker(manager, data={"n": 0})
    adapter = create_adapter(manager)
    collector, switches = Collector(), Collector()
    subscription = tracker.subscribe(collector).get(timeout=WAIT)
    current = adapter.subscribe_current(switches).get(timeout=WAIT)

    async def main() -> list[int]:
        async with tracker.changes() as changes:
            await tracker.set("n", 1)
            await manager.shutdown()
            return [change.new_version async for change in changes]

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [1]
    subscription.ended().get(timeout=WAIT)
    current.ended().get(timeout=WAIT)
    assert versions(collector.seen) == [1]
    with pytest.raises(ShutdownError):
        tracker.subscribe(Collector()).get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        adapter.subscribe_current(Collector()).get(timeout=WAIT)
    assert wait_until(lambda: pykka.ActorRegistry.get_all() == [])


class _BlockingOutlet:
    """A subscriber whose first delivery holds the hub until `release` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def offer(self, items, *, end):
        self.entered.set()
        assert self.release.wait(WAIT)
        return True


def test_a_stopped_hub_answers_what_is_left_in_its_mailbox():
    hub = SubscriptionHub.start(WAIT)
    topic = Topic("ctx", hub)
    busy = Subscription("ctx", SubscriptionConfig(), WAIT)
    busy._outlet = outlet = _BlockingOutlet()
    registered = new_reply()
    hub.tell(Register(topic, busy, registered))
    assert registered.result(WAIT) is busy
    hub.tell(Publish(topic, "change"))
    assert outlet.entered.wait(WAIT)  # the hub is busy: what follows stays in its mailbox
    hub.stop(block=False)
    late = Subscription("ctx", SubscriptionConfig(), WAIT)
    late_registered, closed = new_reply(), new_reply()
    hub.tell(Register(topic, late, late_registered))
    hub.tell(CloseHub(closed))
    outlet.release.set()

    with pytest.raises(ShutdownError):
        late_registered.result(WAIT)
    assert closed.result(WAIT) is None
    assert not topic.live  # the busy subscription was ended too


# -- across tracker incarnations --------------------------------------------------------------


def test_subscriptions_survive_a_crash_and_restart(manager, tracker):
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    crash(tracker).get(timeout=WAIT)
    tracker.set("n", 2).get(timeout=WAIT)
    crash(tracker).get(timeout=WAIT)
    tracker.set("n", 3).get(timeout=WAIT)

    changes = collector.until(3)
    assert versions(changes) == [1, 2, 3]  # durable: a restart loses nothing, so no reset
    assert {c.cause for c in changes} == {ChangeCause.UPDATE}


def test_subscriptions_survive_passivation_and_deactivation(db_path):
    clock, period = ManualClock(), 60.0
    manager = make_manager(f"sqlite:///{db_path}", passivate_after=period, clock=clock)
    tracker = make_tracker(manager, data={"n": 0})
    collector = Collector()
    tracker.subscribe(collector).get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)

    def live_trackers() -> int:
        return len(pykka.ActorRegistry.get_by_class(TrackerActor))

    def passivated() -> bool:  # idle for a period at a time, until the tracker has stopped
        clock.advance(period)
        return live_trackers() == 0

    assert wait_until(passivated)
    tracker.set("n", 2).get(timeout=WAIT)  # a new tracker incarnation
    assert live_trackers() == 1
    manager.deactivate("ctx").get(timeout=WAIT)
    manager.get_tracker("ctx").get(timeout=WAIT).set("n", 3).get(timeout=WAIT)

    changes = collector.until(3)
    assert versions(changes) == [1, 2, 3]
    assert [c.changed for c in changes] == [{"n": 1}, {"n": 2}, {"n": 3}]
    manager.shutdown().get(timeout=WAIT)


# -- adapters ---------------------------------------------------------------------------------


def test_an_adapter_reports_each_change_of_its_current_context(manager):
    adapter, other = create_adapter(manager), create_adapter(manager)
    for name in ("a", "b"):
        manager.create_context(name).get(timeout=WAIT)
    switches: queue.Queue[CurrentContextChange] = queue.Queue()
    subscription = adapter.subscribe_current(switches.put).get(timeout=WAIT)

    adapter.switch_context("a").get(timeout=WAIT)
    adapter.switch_context("b").get(timeout=WAIT)
    adapter.switch_context("b").get(timeout=WAIT)  # no change: not reported
    other.switch_context("a").get(timeout=WAIT)  # another adapter: not reported
    adapter.deactivate_context("b").get(timeout=WAIT)
    adapter.create_and_activate_context("c").get(timeout=WAIT)
    manager.delete_context("c").get(timeout=WAIT)

    reported = [switches.get(timeout=WAIT) for _ in range(5)]
    assert [(s.old, s.new) for s in reported] == [
        (None, "a"),
        ("a", "b"),
        ("b", None),
        (None, "c"),
        ("c", None),
    ]
    subscription.unsubscribe().get(timeout=WAIT)
    adapter.switch_context("a").get(timeout=WAIT)
    assert switches.empty()


def test_an_adapter_reports_switches_to_an_async_iterator(manager):
    adapter = create_adapter(manager)
    manager.create_context("a").get(timeout=WAIT)

    async def main() -> list[tuple[str | None, str | None]]:
        async with adapter.current_changes() as switches:
            await adapter.initialize()
            await adapter.switch_context("a")
            return [(s.old, s.new) for s in [await anext(switches), await anext(switches)]]

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [(None, "default"), ("default", "a")]


def test_subscription_config_is_validated():
    with pytest.raises(ValueError, match="buffer_size"):
        SubscriptionConfig(buffer_size=0)
    assert SubscriptionConfig().overflow is Overflow.DROP_OLDEST
