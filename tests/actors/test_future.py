"""ContextFuture: the same result from threads (`get`) and asyncio (`await`), never unbounded."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from functools import partial

import pytest

from actors import (
    ContextError,
    ContextFuture,
    ContextTimeoutError,
    InvalidValueError,
    KeyNotFoundError,
)
from actors._future import new_reply, reject, resolve

from .conftest import WAIT, Hold, make_manager, make_tracker


def _pending(timeout: float = 0.05) -> ContextFuture[int]:
    return ContextFuture(new_reply(), timeout=timeout, what="test")


def test_get_returns_the_value_the_actor_replied(tracker):
    assert tracker.set("n", 1).get(timeout=WAIT) == 1
    assert tracker.get("n").get(timeout=WAIT) == 1


def test_get_raises_the_error_the_actor_replied(tracker):
    with pytest.raises(KeyNotFoundError):
        tracker.delete("missing").get(timeout=WAIT)


def test_get_without_timeout_uses_the_configured_default():
    future = _pending(timeout=0.05)
    started = time.monotonic()
    with pytest.raises(ContextTimeoutError, match=r"did not answer within 0\.05 s"):
        future.get()
    assert time.monotonic() - started < WAIT


def test_get_with_explicit_timeout_overrides_the_default():
    future = _pending(timeout=WAIT)
    with pytest.raises(ContextTimeoutError, match=r"within 0\.01 s"):
        future.get(timeout=0.01)


def test_timeout_error_is_a_context_error_and_a_timeout_error():
    with pytest.raises(ContextTimeoutError) as info:
        _pending(timeout=0.01).get()
    assert isinstance(info.value, ContextError)
    assert isinstance(info.value, TimeoutError)


def test_timed_out_future_can_still_be_waited_on_again():
    reply = new_reply()
    future: ContextFuture[int] = ContextFuture(reply, timeout=0.01, what="test")
    with pytest.raises(ContextTimeoutError):
        future.get()
    resolve(reply, 7)
    assert future.get() == 7


def test_store_delay_past_ask_timeout_times_out_and_tracker_keeps_serving(watched):
    manager = make_manager(watched, ask_timeout=0.2)
    tracker = make_tracker(manager, data={"n": 0})
    watched.delay("commit", 0.6)

    with pytest.raises(ContextTimeoutError):
        tracker.set("n", 1).get()

    watched.delay("commit", 0)
    # The slow write still completes; the tracker then serves the next call.
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    assert tracker.get("n").get(timeout=WAIT) == 2
    assert watched.head_version("ctx") == 2
    manager.shutdown().get(timeout=WAIT)


def test_failed_future_is_done_and_raises_its_error():
    error = InvalidValueError("x", object(), "bad")
    future = ContextFuture.failed(error, what="test")
    assert future.done()
    with pytest.raises(InvalidValueError) as info:
        future.get()
    assert info.value is error


def test_done_and_repr_follow_the_reply():
    reply = new_reply()
    future: ContextFuture[int] = ContextFuture(reply, timeout=1.0, what="tracker 'x'.get()")
    assert not future.done()
    assert repr(future) == "<ContextFuture tracker 'x'.get() pending>"
    resolve(reply, 1)
    assert future.done()
    assert repr(future) == "<ContextFuture tracker 'x'.get() done>"


def test_add_done_callback_is_called_with_the_future(tracker):
    called = threading.Event()
    seen = []

    def callback(future):
        seen.append(future.get(timeout=0))
        called.set()

    future = tracker.set("n", 5)
    future.add_done_callback(callback)
    assert called.wait(WAIT)
    assert seen == [1]


def test_map_transforms_the_value_and_passes_errors_through(tracker):
    assert tracker.get("n").map(lambda n: n + 10).get(timeout=WAIT) == 10
    with pytest.raises(KeyNotFoundError):
        tracker.delete("missing").map(lambda version: version).get(timeout=WAIT)
    with pytest.raises(ZeroDivisionError):
        tracker.get("n").map(lambda n: 1 / n).get(timeout=WAIT)


# -- asyncio ---------------------------------------------------------------------------------


def test_await_returns_the_value(tracker):
    async def main():
        version = await tracker.set("n", 1)
        return version, await tracker.get("n")

    assert asyncio.run(main()) == (1, 1)


def test_await_raises_the_error_the_actor_replied(tracker):
    async def main():
        await tracker.delete("missing")

    with pytest.raises(KeyNotFoundError):
        asyncio.run(main())


def test_await_does_not_block_the_event_loop(tracker):
    # The actor holds the call until another asyncio task opens the gate. If awaiting
    # blocked the loop, that task could never run and the modify function would give up.
    gate = threading.Event()
    ticks = []

    def wait_for_gate(state):
        if not gate.wait(WAIT):
            raise AssertionError("the event loop was blocked")
        state.set("n", len(ticks))

    async def other_task():
        for tick in range(10):
            ticks.append(tick)
            await asyncio.sleep(0)
        gate.set()

    async def main():
        return await asyncio.gather(tracker.modify(wait_for_gate), other_task())

    state, _ = asyncio.run(main())
    assert ticks == list(range(10))
    assert state.get("n") == 10


def test_asyncio_gather_of_many_futures(tracker):
    async def main():
        return await asyncio.gather(*(tracker.set(f"k{i}", i) for i in range(200)))

    versions = asyncio.run(main())
    assert sorted(versions) == list(range(1, 201))
    state = tracker.get_state().get(timeout=WAIT)
    assert state.version == 200
    assert all(state.get(f"k{i}") == i for i in range(200))


def test_await_times_out_with_the_configured_default(watched):
    manager = make_manager(watched, ask_timeout=0.2)
    tracker = make_tracker(manager, data={"n": 0})
    watched.delay("commit", 0.6)

    async def main():
        await tracker.set("n", 1)

    with pytest.raises(ContextTimeoutError):
        asyncio.run(main())
    watched.delay("commit", 0)
    assert tracker.set("n", 2).get(timeout=WAIT) == 2
    manager.shutdown().get(timeout=WAIT)


def test_await_timeout_leaves_the_future_usable_from_threads():
    reply = new_reply()
    future: ContextFuture[int] = ContextFuture(reply, timeout=0.01, what="test")

    async def main():
        await future

    with pytest.raises(ContextTimeoutError):
        asyncio.run(main())
    resolve(reply, 3)
    assert future.get() == 3


class _RacedReply(concurrent.futures.Future):  # type: ignore[type-arg]
    """A reply another thread settles between anyone's `done()` check and their answer."""

    def done(self) -> bool:
        return False


@pytest.mark.parametrize("first", ["resolve", "reject"])
def test_answering_a_reply_someone_else_just_settled_keeps_the_first_answer(first):
    # The writer resolves a caller's reply while a stopping tracker may reject it, in two
    # threads: the loser must neither raise (it would kill its actor) nor overwrite.
    reply = _RacedReply()
    reply.set_running_or_notify_cancel()
    if first == "resolve":
        resolve(reply, 1)
    else:
        reject(reply, ValueError("first"))
    resolve(reply, 2)
    reject(reply, ValueError("second"))
    if first == "resolve":
        assert reply.result(timeout=0) == 1
    else:
        with pytest.raises(ValueError, match="first"):
            reply.result(timeout=0)


def test_await_of_a_future_that_failed_at_once_raises_its_error():
    # A call that fails its own argument checks returns a future made failed, with no time
    # to wait; await must raise that error, not a timeout of 0 s.
    error = InvalidValueError("x", object(), "bad")

    async def main():
        await ContextFuture.failed(error, what="test")

    with pytest.raises(InvalidValueError) as info:
        asyncio.run(main())
    assert info.value is error


def test_a_timeout_error_of_the_modify_function_reaches_the_caller_as_itself(tracker, wait):
    def give_up(_state):
        raise TimeoutError("the function's own timeout")

    with pytest.raises(TimeoutError, match="the function's own timeout") as info:
        wait(tracker.modify(give_up))
    assert not isinstance(info.value, ContextTimeoutError)
    assert tracker.get_state().get(timeout=WAIT).version == 0


def _increment(state):
    state.set("n", state.get("n") + 1)


async def _cancel_the_await(future):
    task = asyncio.ensure_future(future)
    await asyncio.sleep(0)  # let the task start awaiting (a yield, not a wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _give_up_with_wait_for(future):
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(future, 0.01)


@pytest.mark.parametrize("give_up", [_cancel_the_await, _give_up_with_wait_for])
def test_giving_up_an_await_does_not_cancel_the_call(tracker, give_up):
    # A client that disconnects cancels the task awaiting, and wait_for() gives up on it:
    # the update sent is applied all the same, exactly as if the task had waited.
    hold = Hold()
    tracker.modify(hold)  # the increment waits behind it, so the await is given up first
    assert hold.entered.wait(WAIT)

    async def main():
        future = tracker.modify(_increment)
        await give_up(future)
        return future

    future = asyncio.run(main())
    hold.release.set()
    assert future.get(timeout=WAIT).get("n") == 1
    assert tracker.get("n").get(timeout=WAIT) == 1


def test_a_reply_wakes_every_thread_waiting_on_it():
    # The reply slot wakes one waiter at a time (each passes the wake-up on): all of them
    # must get the answer, none may wait out its timeout. They are all seen blocked in the
    # wait before the answer comes.
    reply = new_reply()
    results: list[object] = []

    def wait() -> None:
        results.append(reply.result(timeout=WAIT))

    threads = [threading.Thread(target=wait) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    while not all(_blocked_in_wait(thread) for thread in threads):
        assert time.monotonic() < deadline, "the waiters never blocked"
        threading.Event().wait(0.001)  # polling what the threads are doing, not pacing
    resolve(reply, 7)
    for thread in threads:
        thread.join(timeout=WAIT)
    assert results == [7] * 8
    assert reply.result(timeout=0) == 7  # and whoever asks later


def _blocked_in_wait(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and frame.f_code.co_name == "_wait"


def test_a_reply_runs_each_done_callback_once_whoever_adds_it_when():
    # Callbacks added before, while and after the answer (from another thread) each run
    # exactly once, with the reply.
    for _ in range(50):
        reply = new_reply()
        calls: list[int] = []
        for i in range(3):
            reply.add_done_callback(partial(_note, calls, i))
        answering = threading.Thread(target=resolve, args=(reply, 1))
        answering.start()
        for i in range(3, 40):
            reply.add_done_callback(partial(_note, calls, i))
        answering.join(timeout=WAIT)
        reply.add_done_callback(partial(_note, calls, 40))
        assert sorted(calls) == list(range(41))


def _note(calls: list[int], i: int, reply: concurrent.futures.Future[int]) -> None:
    assert reply.result(timeout=0) == 1
    calls.append(i)


def test_a_reply_is_answered_once_and_never_cancelled():
    reply = new_reply()
    assert not reply.cancel()
    assert reply.running()
    reject(reply, ValueError("first"))
    with pytest.raises(concurrent.futures.InvalidStateError):
        reply.set_result(2)
    resolve(reply, 3)  # first answer wins, quietly
    assert reply.done()
    assert not reply.cancelled()
    assert isinstance(reply.exception(timeout=0), ValueError)
    with pytest.raises(ValueError, match="first"):
        reply.result(timeout=0)


def test_a_reply_not_answered_in_time_raises_timeout_error():
    reply = new_reply()
    with pytest.raises(TimeoutError):
        reply.result(timeout=0.01)
    with pytest.raises(TimeoutError):  # a deadline already past, as the stdlib's Future
        reply.result(timeout=-1)
    resolve(reply, 1)
    assert reply.result(timeout=0) == 1
