"""The tracker's phases, driven message by message from the test's thread: the actor is
built but never started, so each `on_receive` runs here, in order, with no timing."""

from __future__ import annotations

from typing import Any

import pytest

from actors import TrackerConfig
from actors._dispatch import Dispatcher
from actors._future import new_reply, resolve
from actors._messages import Crash, GetState, GetValue, GiveUp, Restart, SetValue, Stop, Wake
from actors._phases import AwaitingWrite, Failed, Running, Suspended
from actors._tracker import TrackerActor
from actors.testing import ManualClock
from actors._writer import Written
from storage import (
    ContextFailedError,
    ContextInactiveError,
    MemoryStore,
    OutcomeUnknownError,
    PersistenceError,
    State,
)

WAIT = 0  # every reply asserted on is answered by the time it is read


class Recorder:
    """Stands for an actor ref: keeps what it is told."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.create(State.new("ctx", {"n": 0}))
    return store


def _tracker(store: MemoryStore, writer: Recorder | None = None) -> TrackerActor:
    ready = new_reply()
    tracker = TrackerActor(
        "ctx",
        store,
        TrackerConfig(),
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


def _store_it(store: MemoryStore, writer: Recorder) -> None:
    """Do what the writer actor does with a stored write: commit it, answer the caller."""
    request = writer.told.pop(0)
    assert store.commit([request.write]) == [None]
    resolve(request.reply, request.value)


def test_requests_and_a_stop_wait_for_the_write_in_flight_then_run_in_order(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    first, second = SetValue("a", 1, new_reply()), SetValue("b", 2, new_reply())
    stop = Stop(new_reply(), ContextInactiveError("ctx"))
    tracker.on_receive(first)
    assert isinstance(tracker.phase, AwaitingWrite)
    tracker.on_receive(second)
    tracker.on_receive(stop)
    assert list(tracker.stash) == [second, stop]
    assert not second.reply.done()

    _store_it(store, writer)
    tracker.on_receive(Wake())  # what the reply's callback tells
    assert first.reply.result(WAIT) == 1
    assert isinstance(tracker.phase, AwaitingWrite)  # the second write is in flight
    assert list(tracker.stash) == [stop]

    _store_it(store, writer)
    tracker.on_receive(Wake())
    assert second.reply.result(WAIT) == 2
    assert tracker.stopping
    assert not tracker.stash
    tracker.on_stop()
    assert stop.reply.result(WAIT) is None
    assert store.read_head("ctx").data == {"n": 0, "a": 1, "b": 2}


def test_a_failed_write_is_undone_and_answered_and_the_tracker_runs_on(store):
    writer = Recorder()
    tracker = _tracker(store, writer)
    request = SetValue("a", 1, new_reply())
    tracker.on_receive(request)
    (sent,) = writer.told
    tracker.on_receive(Written(sent.write.version, PersistenceError("disk full")))
    with pytest.raises(PersistenceError, match="disk full"):
        request.reply.result(WAIT)
    assert isinstance(tracker.phase, Running)
    assert tracker.current.data == {"n": 0}
    assert tracker.current.version == 0


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
