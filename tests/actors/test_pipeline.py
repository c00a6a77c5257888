"""Pipelined durable writes end to end, on a real SQLite store: while one batch of a hot
context's writes is being stored, the updates queued behind it are applied in memory and go
to the writer together, one transaction for all of them."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

from actors import ContextError, ContextTimeoutError, PersistenceError
from actors._tracker import TrackerActor
from storage import SqliteStore, State, Store
from storage._store import Write

from .conftest import WAIT, WatchedStore, make_manager, make_tracker, run_threads, wait_until

THREADS, UPDATES = 16, 50


def _increment(state: State) -> None:
    state.data["n"] += 1


def test_a_hot_context_ends_exact_with_far_fewer_transactions_than_updates(watched):
    manager = make_manager(watched, passivate_after=None)
    tracker = make_tracker(manager, "hot", {"n": 0})
    versions: queue.Queue[int] = queue.Queue()
    tracker.subscribe(lambda change: versions.put(change.new_version)).get()
    before = watched.calls.get("commit", 0)

    def work(_: int) -> list[int]:
        return [tracker.modify(_increment).get().version for _ in range(UPDATES)]

    seen = run_threads(THREADS, work)
    updates = THREADS * UPDATES
    commits = watched.calls["commit"] - before
    assert tracker.get("n").get() == updates
    assert watched.inner.read_head("hot").data == {"n": updates}
    # Every caller got its own version, and each thread saw its versions rise.
    assert sorted(v for versions_of in seen for v in versions_of) == list(range(1, updates + 1))
    assert all(versions_of == sorted(versions_of) for versions_of in seen)
    # A transaction carries a batch of the updates queued behind the one before it.
    assert commits <= updates // 3, f"{commits} transactions for {updates} updates"
    # Subscribers saw every version once, in order.
    published = [versions.get(timeout=WAIT) for _ in range(updates)]
    assert published == list(range(1, updates + 1))
    manager.shutdown().get()


class GatedStore(WatchedStore):
    """Holds the first commit from `hold` on until `release` is set."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.holding = False
        self.batches: list[list[int]] = []

    def _commit(self, writes: list[Write]) -> list[Any]:
        self.batches.append([write.version for write in writes])
        results = super()._commit(writes)
        if self.holding:
            self.holding = False
            self.entered.set()
            assert self.release.wait(WAIT), "never released"
        return results


@pytest.fixture
def gated(sqlite_store: SqliteStore) -> GatedStore:
    return GatedStore(sqlite_store)


def _queue_behind_a_held_commit(gated: GatedStore) -> tuple[Any, Any, list[Any]]:
    manager = make_manager(gated, passivate_after=None, watch_interval=None)
    tracker = make_tracker(manager, "ctx", {"n": 0})
    entered, go = threading.Event(), threading.Event()

    def set_a_when_told(state: State) -> None:
        entered.set()
        assert go.wait(WAIT), "never told"
        state.set("a", 1)

    # The first write is made while the calls below wait behind it: so it goes to the
    # writer's thread (a lone write would be committed in the tracker's own), and the
    # tracker applies them while its commit is held.
    gated.holding = True
    first = tracker.modify(set_a_when_told).map(lambda state: state.version)
    assert entered.wait(WAIT)
    queued = [tracker.set(f"k{i}", i) for i in range(3)]
    read = tracker.get("k2")  # handled after the three: applied then, in memory only
    go.set()
    assert gated.entered.wait(WAIT)
    (ref,) = pykka.ActorRegistry.get_by_class(TrackerActor)
    # Nothing reports the tracker having taken them: bound the wait on its pipeline.
    actor = ref._actor_weakref()
    assert wait_until(lambda: len(actor.writes.next.items) == 4)
    return manager, first, [*queued, read]


def test_updates_queued_behind_a_commit_share_the_next_transaction(gated, sqlite_store):
    manager, first, (*queued, read) = _queue_behind_a_held_commit(gated)
    assert not read.done()  # k2 is not stored yet: its value is not shown
    gated.release.set()
    assert first.get() == 1
    assert [future.get() for future in queued] == [2, 3, 4]
    assert read.get() == 2
    assert gated.batches[-2:] == [[1], [2, 3, 4]]  # one transaction for the three
    assert sqlite_store.read_head("ctx").data == {"n": 0, "a": 1, "k0": 0, "k1": 1, "k2": 2}
    manager.shutdown().get()


def test_a_failed_transaction_fails_its_updates_and_the_read_behind_them_runs_again(
    gated, sqlite_store
):
    manager, first, (*queued, read) = _queue_behind_a_held_commit(gated)
    gated.fail("commit", OSError("disk full"))  # the next transaction: the three updates
    gated.release.set()
    assert first.get() == 1
    for future in queued:
        with pytest.raises(PersistenceError, match="disk full"):
            future.get()
    assert read.get() is None  # ran again on the stored State: k2 was never stored
    assert sqlite_store.read_head("ctx").data == {"n": 0, "a": 1}
    manager.shutdown().get()


def test_a_shutdown_answers_every_queued_caller_and_loses_nothing_acknowledged(sqlite_store):
    manager = make_manager(sqlite_store, passivate_after=None)
    tracker = make_tracker(manager, "ctx", {"n": 0})
    futures = [tracker.modify(_increment) for _ in range(200)]
    manager.shutdown().get()
    acknowledged = []
    for future in futures:
        try:
            acknowledged.append(future.get(timeout=WAIT).data["n"])
        except ContextTimeoutError:
            raise  # silence: a caller left waiting
        except ContextError:
            continue  # refused once the tracker stopped: not applied
    assert acknowledged == list(range(1, len(acknowledged) + 1))
    assert sqlite_store.read_head("ctx").data["n"] >= len(acknowledged)


def test_two_writers_pipelining_on_one_context_lose_no_increment(db_path):
    # Two managers on one SQLite file write one context as two processes would: each one's
    # chains lose races to the other's (a dozen or so a run), are refused whole, catch up and
    # run again.
    stores = [SqliteStore(db_path) for _ in range(2)]
    managers = [make_manager(store, passivate_after=None) for store in stores]
    managers[0].create_context("hot", {"n": 0}).get()
    trackers = [manager.get_tracker("hot").get() for manager in managers]

    def work(index: int) -> None:
        for _ in range(30):
            trackers[index % 2].modify(_increment).get()

    run_threads(THREADS, work)
    for manager in managers:
        manager.shutdown().get()
    assert stores[0].read_head("hot").data == {"n": THREADS * 30}
    for store in stores:
        store.close()
