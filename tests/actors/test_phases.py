"""The tracker's phases, driven message by message from the test's thread: the actor is
built but never started, so each `on_receive` runs here, in order, with no timing."""

from __future__ import annotations

from typing import Any

import pytest

from actors import TrackerConfig
from actors._dispatch import Dispatcher
from actors._future import new_reply
from actors._messages import (
    Crash,
    DeleteValue,
    GetState,
    GetValue,
    GiveUp,
    Keys,
    Modify,
    Restart,
    Save,
    SetValue,
    Stop,
    Wake,
)
from actors._phases import Failed, Persisting, Running, Suspended
from actors._tracker import TrackerActor
from actors._writer import WriteBatch, Written, answer_batch
from actors.testing import ManualClock
from storage import (
    ContextBusyError,
    ContextFailedError,
    ContextInactiveError,
    KeyNotFoundError,
    MemoryStore,
    OutcomeUnknownError,
    PersistenceError,
    State,
    VersionConflict,
    WriteOutcomeUnknownError,
)

WAIT = 0  # every reply asserted on is answered by the time it is read


class Recorder:
    """Stands for an actor ref: keeps what it is told."""

    actor_inbox = None  # not a pooled actor's: tell_here() tells it

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.create(State.new("ctx", {"n": 0}))
    return store


def _tracker(
    store: MemoryStore, writer: Recorder | None = None, config: TrackerConfig | None = None
) -> TrackerActor:
    ready = new_reply()
    tracker = TrackerActor(
        "ctx",
        store,
        config or TrackerConfig(),
        Recorder(),
        ready,
        writer=writer,
        clock=ManualClock(),
        dispatcher=Dispatcher(1),  # starts no thread: the test is the thread
    )
    tracker.on_start()
    assert ready.result(WAIT) is None
    assert isinstance(tracker.phase, Running)
    return tracker


def _commit(store: MemoryStore, writer: Recorder, tracker: TrackerActor) -> list[Any]:
    """Do what the writer actor does with the oldest batch it was told: commit it as one
    transaction, answer each stored write's caller, tell the tracker of the first that is
    not stored; then deliver what the tracker is told (`Written`, or the reply's `Wake`)."""
    batch = writer.told.pop(0)
    assert isinstance(batch, WriteBatch)
    results = store.commit([request.write for request in batch.requests])
    told: list[Any] = []
    answer_batch(batch, list(results), told.append)
    for message in told or [Wake()]:
        tracker.on_receive(message)
    return results


def _versions(writer: Recorder) -> list[list[int]]:
    """The versions of each batch the writer was told and holds, in order."""
    return [[request.write.version for request in batch.requests] for batch in writer.told]


def _pending(*messages: Any) -> bool:
    return not any(message.reply.done() for message in messages)


def test_updates_queued_behind_a_write_in_flight_go_to_the_writer_as_one_batch(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    first = SetValue("a", 1, new_reply())
    tracker.on_receive(first)
    assert isinstance(tracker.phase, Persisting)
    queued = [
        SetValue("b", 2, new_reply()),
        Modify(lambda state: state.data.update(n=state.data["n"] + 1), new_reply()),
        SetValue("c", 3, new_reply()),
    ]
    for message in queued:
        tracker.on_receive(message)
    assert _versions(writer) == [[1]]  # the three wait, applied in memory only
    assert tracker.current.version == 4
    assert store.read_head("ctx").version == 0

    _commit(store, writer, tracker)
    assert first.reply.result(WAIT) == 1
    assert _pending(*queued)  # not stored yet: not answered
    assert _versions(writer) == [[2, 3, 4]]  # one batch, one transaction

    _commit(store, writer, tracker)
    assert queued[0].reply.result(WAIT) == 2
    assert queued[1].reply.result(WAIT).data == {"n": 1, "a": 1, "b": 2}
    assert queued[2].reply.result(WAIT) == 4
    assert isinstance(tracker.phase, Running)
    assert store.read_head("ctx").data == {"n": 1, "a": 1, "b": 2, "c": 3}


def test_each_caller_is_answered_only_when_its_own_write_is_stored(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    first, second = SetValue("a", 1, new_reply()), SetValue("b", 2, new_reply())
    tracker.on_receive(first)
    tracker.on_receive(second)
    tracker.on_receive(Wake())  # nothing stored yet: nothing answered
    assert _pending(first, second)
    _commit(store, writer, tracker)
    assert first.reply.result(WAIT) == 1
    assert _pending(second)
    third = SetValue("c", 3, new_reply())
    tracker.on_receive(third)  # accumulates behind the batch of `second`
    _commit(store, writer, tracker)
    assert second.reply.result(WAIT) == 2
    assert _pending(third)
    _commit(store, writer, tracker)
    assert third.reply.result(WAIT) == 3


def test_a_read_queued_behind_an_unstored_update_is_answered_after_it(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    read_a = GetValue("a", None, new_reply())
    tracker.on_receive(read_a)
    tracker.on_receive(SetValue("b", 2, new_reply()))
    read_b, keys = GetValue("b", None, new_reply()), Keys(new_reply())
    tracker.on_receive(read_b)
    tracker.on_receive(keys)
    assert _pending(read_a, read_b, keys)  # each waits for the writes before it

    _commit(store, writer, tracker)  # a=1 stored
    assert read_a.reply.result(WAIT) == 1
    assert _pending(read_b, keys)  # b=2 is not stored yet
    _commit(store, writer, tracker)
    assert read_b.reply.result(WAIT) == 2
    assert keys.reply.result(WAIT) == ["a", "b", "n"]


def test_an_error_behind_an_unstored_update_is_answered_in_order_too(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    missing = DeleteValue("nope", new_reply())
    tracker.on_receive(missing)
    assert _pending(missing)
    _commit(store, writer, tracker)
    with pytest.raises(KeyNotFoundError):
        missing.reply.result(WAIT)
    assert isinstance(tracker.phase, Running)


def test_a_failed_batch_fails_exactly_its_callers_rolls_back_and_reruns_the_rest(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    carried = [SetValue("b", 2, new_reply()), SetValue("c", 3, new_reply())]
    for message in carried:
        tracker.on_receive(message)
    _commit(store, writer, tracker)  # a=1 stored; b and c go as one batch
    assert _versions(writer) == [[2, 3]]
    later = [
        GetValue("c", "none", new_reply()),
        Modify(lambda state: state.data.update(n=state.data["n"] + 1), new_reply()),
    ]
    for message in later:
        tracker.on_receive(message)
    assert tracker.current.version == 4

    (batch,) = writer.told
    writer.told.clear()
    tracker.on_receive(Written(batch.requests[0].write.version, PersistenceError("disk full")))
    for message in carried:
        with pytest.raises(PersistenceError, match="disk full"):
            message.reply.result(WAIT)
    # Back at the stored version, the later requests ran again on it, in order: the read,
    # now behind nothing unstored, sees c unset; the modify is version 2, in flight alone.
    assert later[0].reply.result(WAIT) == "none"
    assert _versions(writer) == [[2]]
    assert tracker.current.data == {"n": 1, "a": 1}
    assert _pending(later[1])
    _commit(store, writer, tracker)
    assert later[1].reply.result(WAIT).version == 2
    assert store.read_head("ctx").data == {"n": 1, "a": 1}
    assert isinstance(tracker.phase, Running)


def test_changes_are_published_in_version_order_once_stored(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    published: list[int] = []
    tracker.publish = lambda delta, cause: published.append(delta.version)  # type: ignore[method-assign]
    for i in range(4):
        tracker.on_receive(SetValue(f"k{i}", i, new_reply()))
    assert published == []
    _commit(store, writer, tracker)
    assert published == [1]
    _commit(store, writer, tracker)
    assert published == [1, 2, 3, 4]


def test_a_batch_that_lost_a_race_catches_up_and_runs_again(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    mine = [
        Modify(lambda state: state.data.update(n=state.data["n"] + 1), new_reply())
        for _ in range(3)
    ]
    for message in mine:
        tracker.on_receive(message)
    # Another process stores version 1 first: our chain 1, 2, 3 is refused from the start.
    other = store.read_head("ctx")
    other.data["n"] = 10
    other.version = 1
    store.compare_and_set(other, 0)
    results = _commit(store, writer, tracker)
    assert isinstance(results[0], VersionConflict)
    assert _pending(*mine)
    assert _versions(writer) == [[2]]  # caught up to 1, the first runs again on it
    _commit(store, writer, tracker)
    _commit(store, writer, tracker)
    assert [message.reply.result(WAIT).data["n"] for message in mine] == [11, 12, 13]
    assert store.read_head("ctx").data["n"] == 13


def test_a_stop_waits_until_nothing_is_in_flight_and_keeps_its_place(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    first, second = SetValue("a", 1, new_reply()), SetValue("b", 2, new_reply())
    stop = Stop(new_reply(), ContextInactiveError("ctx"))
    after = SetValue("c", 3, new_reply())
    for message in (first, second, stop, after):
        tracker.on_receive(message)
    assert not tracker.stopping
    assert _pending(second, after)

    _commit(store, writer, tracker)
    assert first.reply.result(WAIT) == 1
    assert not tracker.stopping  # second is in flight now
    _commit(store, writer, tracker)
    assert second.reply.result(WAIT) == 2
    # The Stop ran once nothing was in flight; the request queued before pykka's stop is
    # still handled, written from the tracker's own thread.
    assert tracker.stopping
    assert after.reply.result(WAIT) == 3
    assert not writer.told
    tracker.on_stop()
    assert stop.reply.result(WAIT) is None
    assert store.read_head("ctx").data == {"n": 0, "a": 1, "b": 2, "c": 3}


def test_a_suspended_tracker_stashes_until_restart_then_runs_the_stash(store):
    tracker = _tracker(store)
    crash = Crash(new_reply(), new_reply())
    tracker.on_receive(crash)
    with pytest.raises(OutcomeUnknownError):
        crash.reply.result(WAIT)
    assert isinstance(tracker.phase, Suspended)
    assert tracker.state is None
    request = SetValue("a", 1, new_reply())
    tracker.on_receive(request)
    assert list(tracker.stash) == [request]

    tracker.on_receive(Restart())
    assert isinstance(tracker.phase, Running)
    assert crash.restarted.result(WAIT) is None
    assert request.reply.result(WAIT) == 1


def test_give_up_refuses_what_waits_and_everything_after(store):
    tracker = _tracker(store)
    crash = Crash(new_reply(), new_reply())
    tracker.on_receive(crash)
    waiting = GetState(new_reply())
    tracker.on_receive(waiting)
    error = ContextFailedError("context 'ctx' failed")
    tracker.on_receive(GiveUp(error))
    assert isinstance(tracker.phase, Failed)
    for reply in (waiting.reply, crash.restarted):
        with pytest.raises(ContextFailedError):
            reply.result(WAIT)
    later = GetValue("n", None, new_reply())
    tracker.on_receive(later)
    with pytest.raises(ContextFailedError):
        later.reply.result(WAIT)
    tracker.on_receive(Restart())  # too late: a failed context stays failed
    assert isinstance(tracker.phase, Failed)


def test_requests_past_the_stash_capacity_behind_a_write_in_flight_are_refused(store):
    writer = Recorder()
    tracker = _tracker(store, writer, TrackerConfig(stash_capacity=2))
    tracker.on_receive(SetValue("a", 1, new_reply()))
    kept = [SetValue("b", 2, new_reply()), GetValue("b", None, new_reply())]
    refused = SetValue("c", 3, new_reply())
    for message in (*kept, refused):
        tracker.on_receive(message)
    with pytest.raises(ContextBusyError, match="2 waiting requests"):
        refused.reply.result(WAIT)
    _commit(store, writer, tracker)
    _commit(store, writer, tracker)
    assert [message.reply.result(WAIT) for message in kept] == [2, 2]
    assert "c" not in store.read_head("ctx").data


def test_a_save_waits_until_nothing_is_in_flight_and_what_follows_stays_behind_it(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    tracker.on_receive(SetValue("b", 2, new_reply()))
    save, after = Save(new_reply()), SetValue("c", 3, new_reply())
    tracker.on_receive(save)
    tracker.on_receive(after)
    _commit(store, writer, tracker)  # a stored, b in flight: the save still waits
    assert _pending(save, after)
    assert _versions(writer) == [[2]]
    _commit(store, writer, tracker)  # nothing in flight: the save runs, then c goes alone
    assert save.reply.result(WAIT) == 2
    assert _versions(writer) == [[3]]
    _commit(store, writer, tracker)
    assert after.reply.result(WAIT) == 3


def test_an_unknown_outcome_fails_the_batch_and_the_store_decides(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    carried = [SetValue("b", 2, new_reply()), SetValue("c", 3, new_reply())]
    for message in carried:
        tracker.on_receive(message)
    _commit(store, writer, tracker)
    (batch,) = writer.told
    writer.told.clear()
    # The transaction did commit, but its answer was lost.
    assert store.commit([request.write for request in batch.requests]) == [None, None]
    lost = WriteOutcomeUnknownError("the connection broke during COMMIT")
    tracker.on_receive(Written(batch.requests[0].write.version, lost))
    for message in carried:
        with pytest.raises(WriteOutcomeUnknownError):
            message.reply.result(WAIT)
    # It read the store before answering: the State is what was stored.
    assert tracker.current.version == 3
    assert tracker.current.data == {"n": 0, "a": 1, "b": 2, "c": 3}
    assert isinstance(tracker.phase, Running)


def test_a_bug_failing_a_batch_suspends_and_the_rest_runs_after_the_restart(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    tracker.on_receive(SetValue("a", 1, new_reply()))
    carried = [SetValue("b", 2, new_reply()), SetValue("c", 3, new_reply())]
    for message in carried:
        tracker.on_receive(message)
    _commit(store, writer, tracker)
    later = SetValue("d", 4, new_reply())
    tracker.on_receive(later)
    (batch,) = writer.told
    writer.told.clear()
    tracker.on_receive(Written(batch.requests[0].write.version, RuntimeError("a bug")))
    for message in carried:
        with pytest.raises(OutcomeUnknownError):
            message.reply.result(WAIT)
    assert isinstance(tracker.phase, Suspended)
    assert list(tracker.stash) == [later]
    tracker.on_receive(Restart())
    _commit(store, writer, tracker)
    assert later.reply.result(WAIT) == 2
    assert store.read_head("ctx").data == {"n": 0, "a": 1, "d": 4}


def test_reads_held_behind_a_write_in_flight_count_against_the_stash_capacity(store):
    writer = Recorder()
    tracker = _tracker(store, writer, TrackerConfig(stash_capacity=2))
    tracker.on_receive(SetValue("a", 1, new_reply()))
    reads = [GetValue("a", None, new_reply()) for _ in range(3)]
    for message in reads:
        tracker.on_receive(message)
    with pytest.raises(ContextBusyError):
        reads[2].reply.result(WAIT)
    _commit(store, writer, tracker)
    assert [message.reply.result(WAIT) for message in reads[:2]] == [1, 1]
