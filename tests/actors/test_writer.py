"""The writer actor: group commit of every tracker's durable writes, and its failures."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

from actors import (
    Change,
    ContextFuture,
    ContextTracker,
    OutcomeUnknownError,
    PersistenceError,
    RecoveryError,
)
from actors._dispatch import Dispatcher, post
from actors._future import Reply, new_reply
from actors._stats import Describe, TrackerFigures
from actors._writer import WriteBatch, WriterActor, WriteRequest, Written, answer_batch
from storage import MemoryStore, ShutdownError, SqliteStore, Store, VersionConflict
from storage._store import Write

from .conftest import WAIT, WatchedStore, make_manager, make_tracker


class GatedStore(WatchedStore):
    """Holds the first commit's answer (it is stored) until `release` is set, and records
    every batch's size."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def _commit(self, writes: list[Write]) -> list[Any]:
        self.batches.append(len(writes))
        results = super()._commit(writes)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(WAIT), "never released"
        return results


def _queue_behind_a_commit(
    gated: GatedStore, trackers: list[ContextTracker]
) -> tuple[ContextFuture[int], list[ContextFuture[int]]]:
    """Set n=1 through the first tracker and hold its commit; then set n=1 through the
    others and return once all their writes wait in the writer's inbox."""
    first = trackers[0].set("n", 1)
    assert gated.entered.wait(WAIT)
    queued = [tracker.set("n", 1) for tracker in trackers[1:]]
    # Each tracker handles a Describe after its set: by then it has told the writer.
    for tracker in trackers[1:]:
        described: Reply[TrackerFigures] = new_reply()
        ref = tracker._cell.ref
        assert ref is not None
        ref.tell(Describe(described))
        assert described.result(WAIT).phase == "Persisting"
    return first, queued


@pytest.fixture
def gated(sqlite_store: SqliteStore) -> GatedStore:
    return GatedStore(sqlite_store)


def test_writes_queued_behind_a_commit_go_into_one_transaction(gated, sqlite_store):
    manager = make_manager(gated)
    trackers = [make_tracker(manager, f"c{i}", {"n": 0}) for i in range(8)]
    first, queued = _queue_behind_a_commit(gated, trackers)
    gated.release.set()
    assert [future.get() for future in [first, *queued]] == [1] * 8  # the new versions
    assert gated.batches[-2:] == [1, 7]  # one transaction, one fsync, for seven trackers
    assert all(sqlite_store.read_head(f"c{i}").data == {"n": 1} for i in range(8))
    manager.shutdown().get()


def test_a_failed_transaction_fails_exactly_its_writes(gated, sqlite_store):
    manager = make_manager(gated)
    trackers = [make_tracker(manager, f"c{i}", {"n": 0}) for i in range(4)]
    first, queued = _queue_behind_a_commit(gated, trackers)
    gated.fail("commit", OSError("disk full"))  # the next transaction, the queued batch
    gated.release.set()
    assert first.get() == 1
    for future in queued:
        with pytest.raises(PersistenceError, match="disk full"):
            future.get()
    # Memory was not left ahead of the store, and the next write of each works.
    for i, tracker in enumerate(trackers):
        expected = 1 if i == 0 else 0
        assert tracker.get("n").get() == expected
        assert sqlite_store.read_head(f"c{i}").data == {"n": expected}
        tracker.set("n", 2).get()
        assert sqlite_store.read_head(f"c{i}").data == {"n": 2}
    manager.shutdown().get()


def _writer_bug(times: int) -> Any:
    """A `WriterActor._commit` that fails its actor (a bug of ours) the first `times` calls."""
    original = WriterActor._commit
    failed: list[object] = []

    def commit(self: WriterActor, batch: list[Any]) -> None:
        if len(failed) < times:
            failed.append(self.actor_ref)
            raise RuntimeError("a bug in the writer")
        original(self, batch)

    return commit


def test_a_failed_writer_answers_its_writes_and_is_replaced(gated, sqlite_store, monkeypatch):
    manager = make_manager(gated, ask_timeout=3 * WAIT)
    trackers = [make_tracker(manager, f"c{i}", {"n": 0}) for i in range(4)]
    (failing,) = pykka.ActorRegistry.get_by_class(WriterActor)
    monkeypatch.setattr(WriterActor, "_commit", _writer_bug(times=1))
    # Answered at once with RecoveryError, not left to time out; memory is not ahead.
    with pytest.raises(OutcomeUnknownError, match="writer actor failed"):
        trackers[0].set("n", 9).get(timeout=WAIT)
    assert trackers[0].get("n").get() == 0
    manager.list_contexts().get()  # handled after the writer's report: a new writer is in
    (writer,) = pykka.ActorRegistry.get_by_class(WriterActor)
    assert writer is not failing
    # Every tracker was pointed at it: group commit is back.
    first, queued = _queue_behind_a_commit(gated, trackers)
    gated.release.set()
    assert [future.get() for future in [first, *queued]] == [1] * 4
    assert gated.batches == [1, 3]
    assert all(sqlite_store.read_head(f"c{i}").data == {"n": 1} for i in range(4))
    manager.shutdown().get(timeout=WAIT)
    assert pykka.ActorRegistry.get_all() == []


def test_past_its_restart_limit_the_writer_is_given_up_and_trackers_write_alone(
    watched, sqlite_store, monkeypatch, caplog
):
    manager = make_manager(watched, ask_timeout=3 * WAIT)  # at most 3 restarts in 30 s
    tracker = make_tracker(manager, "ctx", {"n": 0})
    monkeypatch.setattr(WriterActor, "_commit", _writer_bug(times=1_000))
    for _ in range(4):  # the first writer and its three replacements
        with pytest.raises(RecoveryError, match="writer actor failed"):
            tracker.set("n", 1).get(timeout=WAIT)
        manager.list_contexts().get()
    assert pykka.ActorRegistry.get_by_class(WriterActor) == []
    assert "trackers commit their own writes" in caplog.text
    # Acknowledged = stored still holds, for running trackers and new ones.
    assert tracker.set("n", 2).get(timeout=WAIT) == 1
    assert sqlite_store.read_head("ctx").data == {"n": 2}
    other = make_tracker(manager, "other", {"n": 0})
    assert other.modify(lambda s: s.set("n", 5)).get(timeout=WAIT).data == {"n": 5}
    assert sqlite_store.read_head("other").data == {"n": 5}
    manager.shutdown().get(timeout=WAIT)
    assert pykka.ActorRegistry.get_all() == []


def test_a_stored_write_reaches_a_subscriber_who_came_while_it_was_in_flight(gated):
    # The writer answers a stored write to its caller only; the tracker settles it when its
    # next message comes. A subscriber registered meanwhile must not wait for that message
    # (and no watcher tick may stand in for it here).
    manager = make_manager(gated, watch_interval=None, passivate_after=None)
    tracker = make_tracker(manager, "ctx", {"n": 0})
    written = tracker.set("n", 1)
    assert gated.entered.wait(WAIT)
    arrived: queue.Queue[Change] = queue.Queue()
    tracker.subscribe(arrived.put).get()
    gated.release.set()
    assert written.get() == 1
    change = arrived.get(timeout=WAIT)
    assert (change.new_version, change.changed) == (1, {"n": 1})
    manager.shutdown().get()


def _batch(count: int) -> WriteBatch:
    def write(version: int) -> Write:
        return Write("ctx", version - 1, version, b"", journal=True)

    tracker: Any = None  # answer_batch is given where to tell
    requests = tuple(WriteRequest(write(v), new_reply(), v) for v in range(1, count + 1))
    return WriteBatch(tracker, requests)


def test_a_batch_is_answered_in_order_up_to_its_first_write_not_stored():
    batch = _batch(4)
    told: list[Any] = []
    conflict = VersionConflict("ctx", 2, 7)
    answer_batch(batch, [None, conflict, conflict, conflict], told.append)
    assert batch.requests[0].reply.result(timeout=0) == 1
    assert told == [Written(2, conflict)]  # once, for the first write not stored
    assert not any(request.reply.done() for request in batch.requests[1:])  # the tracker's


def test_a_batch_whose_tracker_is_gone_fails_its_callers_from_the_first_write_not_stored():
    batch = _batch(3)

    def gone(_: Any) -> None:
        raise pykka.ActorDeadError("stopped")

    error = PersistenceError("disk full")
    answer_batch(batch, [None, error, error], gone)
    assert batch.requests[0].reply.result(timeout=0) == 1
    for request in batch.requests[1:]:
        with pytest.raises(PersistenceError):
            request.reply.result(timeout=0)


class ThreadRecordingStore(WatchedStore):
    """Records the thread of every commit."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.threads: list[threading.Thread] = []

    def _commit(self, writes: list[Write]) -> list[Any]:
        self.threads.append(threading.current_thread())
        return super()._commit(writes)


def test_a_lone_write_is_committed_in_its_trackers_thread_while_the_writer_is_idle(
    sqlite_store,
):
    # No hand-off to another thread for a single caller's update: the tracker's thread runs
    # the idle writer itself (tell_here), and the caller is answered from there.
    store = ThreadRecordingStore(sqlite_store)
    manager = make_manager(store)
    tracker = make_tracker(manager, "ctx", {"n": 0})
    applied_in: list[threading.Thread] = []

    def bump(state: Any) -> None:
        applied_in.append(threading.current_thread())
        state.set("n", state.get("n") + 1)

    for _ in range(3):
        tracker.modify(bump).get(timeout=WAIT)
    assert store.threads[-3:] == applied_in
    assert sqlite_store.read_head("ctx").data == {"n": 3}
    manager.shutdown().get(timeout=WAIT)


def test_a_batch_told_to_a_writer_that_has_stopped_fails_its_callers_and_tells_its_tracker():
    class Recorder:
        def __init__(self) -> None:
            self.told: list[Any] = []

        def tell(self, message: Any) -> None:
            self.told.append(message)

    dispatcher = Dispatcher(1)
    tracker = Recorder()
    writer = WriterActor.start(dispatcher, MemoryStore(), Recorder())
    writer.stop()
    batch = _batch(2)
    # It passed the "is it alive" check just before the stop: it reaches the mailbox.
    post(writer, WriteBatch(tracker, batch.requests))  # type: ignore[arg-type]
    for request in batch.requests:
        with pytest.raises(ShutdownError):
            request.reply.result(timeout=WAIT)
    assert tracker.told == [Written(1, batch.requests[0].reply.exception())]
    dispatcher.close(timeout=WAIT)


def test_a_write_joins_a_batch_until_the_writer_takes_it_and_never_after():
    batch = _batch(2)
    late = _batch(4).requests[2:]  # versions 3 and 4
    assert batch.join(late[0])
    assert [r.value for r in batch.seal()] == [1, 2, 3]  # the writer takes it with the join
    assert not batch.join(late[1])  # taken: the tracker keeps it for its next batch
    assert [r.value for r in batch.requests] == [1, 2, 3]


def test_a_join_and_a_seal_racing_agree_on_whether_the_write_is_in():
    # Each round, a tracker thread joins while the writer's thread seals: whatever the
    # interleaving, the join says True exactly when the sealed batch holds the write.
    for _ in range(300):
        batch = _batch(1)
        extra = _batch(2).requests[1]
        joined: list[bool] = []
        start = threading.Barrier(2, timeout=WAIT)

        thread = threading.Thread(target=_join_after, args=(start, batch, extra, joined))
        thread.start()
        start.wait()
        sealed = batch.seal()
        thread.join(WAIT)
        assert joined == [extra in sealed]


def _join_after(
    start: threading.Barrier, batch: WriteBatch, extra: WriteRequest, joined: list[bool]
) -> None:
    start.wait()
    joined.append(batch.join(extra))
