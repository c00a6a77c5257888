"""ContextFuture: the one kind of future every call that crosses into an actor returns.

Pykka's own futures block the event loop when awaited, so replies travel in a
`concurrent.futures.Future` instead (`new_reply()`: a subclass with no lock, see `_Slot`):
threads wait on it with a timeout, asyncio awaits it through a done-callback without blocking
the loop, and the actor that owns the call resolves it whenever it is ready ("reply later"),
not only when the handler returns.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from storage import ContextTimeoutError, InvalidArgumentError

__all__ = ["LATER", "ContextFuture", "new_reply", "reject", "resolve"]

T = TypeVar("T")
U = TypeVar("U")

Reply = concurrent.futures.Future

logger = logging.getLogger("actors.future")

LATER: Any = object()
"""Returned instead of an answer by code that will answer the caller's reply itself, later
(a manager handler waiting for a store call or a tracker, a write path whose write the
writer actor will answer)."""


def _wake(waiter: asyncio.Future[None]) -> None:
    """In the loop: end an await of a reply (answered, or timed out), unless it ended."""
    if not waiter.done():
        waiter.set_result(None)


class _Answered:
    """The done-callback of an awaited reply: wakes the awaiting task's loop future from the
    thread that answers. One object, where a closure was a function, its cell tuple and two
    cells: fewer objects alive per await for the garbage collector (docs/performance.md)."""

    __slots__ = ("context", "loop", "waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[None],
        context: contextvars.Context,
    ) -> None:
        self.loop = loop
        self.waiter = waiter
        self.context = context

    def __call__(self, _: Reply[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(_wake, self.waiter, context=self.context)


class _LoopContext(threading.local):
    """An empty `contextvars.Context` per thread, for the wake-ups of the awaits made in
    that thread's event loop. `_wake` reads no context variable, and without a context
    given, `call_later` and `call_soon_threadsafe` each copy the current one: two objects
    more per await. One per thread, because a `Context` cannot be entered by two threads at
    once; within its loop's thread, handles run one after the other, never nested."""

    def __init__(self) -> None:
        self.context = contextvars.Context()


_loop_context = _LoopContext()


def new_reply() -> Reply[Any]:
    """A fresh reply slot, already "running" so that no waiter can cancel it under the actor."""
    return _Slot()


_FINISHED = "FINISHED"
_RUNNING = "RUNNING"  # `concurrent.futures.Future._state`'s names


class _Slot(concurrent.futures.Future):  # type: ignore[type-arg]
    """A reply slot: a `concurrent.futures.Future` (which every waiter, asyncio's included,
    knows how to wait on) without its `Condition`, whose lock operations in Python (making
    it, marking it running, answering, waiting: about a dozen) were the largest single item
    of a call's own Python (docs/performance.md).

    Who settles it is decided by taking a one-item deque's token (`pop()`, which exactly one
    thread wins), as the dispatcher's token is (actors/_dispatch.py). A thread that waits
    blocks on a `SimpleQueue` (C) that the winner puts one item in, and each waiter that
    takes it puts it back for the next. The queue is made only when a thread has to wait
    (an awaiting task never does): one object fewer per call for the garbage collector to
    find alive while the call is in flight. The first waiter installs it with one
    `dict.setdefault` (atomic, so two waiters cannot install two), then looks at the state
    again; the winner marks the slot done before it looks for a queue to wake. So either
    the waiter sees the slot done, or the winner sees its queue. Done-callbacks wait in a
    deque that whoever finds the slot done drains (`popleft()`: each runs once). Never
    cancelled: the call runs to completion whatever its waiters do.
    `concurrent.futures.wait()` and `as_completed()`, which read a Future's internals, do
    not take it; nothing here hands it to them.
    """

    _wake: queue.SimpleQueue[None] | None = None
    """Set on the instance by the first thread to wait (absent until then, so that
    `setdefault` installs exactly one)."""

    def __init__(self) -> None:  # no super().__init__(): no Condition to make
        self._state = _RUNNING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._token = collections.deque((None,), maxlen=1)
        self._callbacks: collections.deque[Callable[[Any], object]] = collections.deque()

    def __repr__(self) -> str:
        return f"<reply {'done' if self._state is _FINISHED else 'pending'}>"

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return self._state is not _FINISHED

    def done(self) -> bool:
        return self._state is _FINISHED

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def _wait(self, timeout: float | None) -> None:
        if self._state is not _FINISHED:
            if timeout is not None and timeout < 0:
                timeout = 0  # as the stdlib's: a deadline already past times out at once
            wake = self._wake
            if wake is None:
                wake = vars(self).setdefault("_wake", queue.SimpleQueue())
                if self._state is _FINISHED:  # settled before it could see the queue
                    return
            try:
                wake.get(True, timeout)
            except queue.Empty:
                raise TimeoutError from None
            wake.put(None)  # for the next waiter

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._exception

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._callbacks.append(fn)
        if self._state is _FINISHED:
            self._run_callbacks()

    def set_result(self, result: Any) -> None:
        self._settle(result, None)

    def set_exception(self, exception: BaseException | None) -> None:
        self._settle(None, exception)

    def _settle(self, result: Any, error: BaseException | None) -> None:
        try:
            self._token.pop()
        except IndexError:
            raise concurrent.futures.InvalidStateError(f"{self!r} was answered already") from None
        self._result, self._exception = result, error
        self._state = _FINISHED
        wake = self._wake
        if wake is not None:
            wake.put(None)
        if self._callbacks:
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        callbacks = self._callbacks
        while callbacks:
            try:
                callback = callbacks.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                callback(self)
            except Exception:
                logger.exception("a done-callback of %r raised", self)


def resolve(reply: Reply[Any], value: Any) -> None:
    """Set a reply's value unless it was settled already (first answer wins)."""
    # Not `if not reply.done()`: two actors may answer the same reply (the writer, and a
    # tracker failing it while stopping), and the loser of that check-then-set race would
    # raise out of its actor. The Future's own check under its lock settles it atomically.
    try:  # noqa: SIM105 - on every reply's path: try costs nothing, suppress() an object
        reply.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


def reject(reply: Reply[Any], error: BaseException) -> None:
    """Set a reply's error unless it was settled already (first answer wins)."""
    try:  # noqa: SIM105 - as in resolve()
        reply.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


class ContextFuture(Generic[T]):
    """The eventual result of a call into an actor.

    Use `future.get(timeout=...)` from threads or `await future` from asyncio; both give the
    same result and raise the same error. Neither waits forever: without an explicit
    timeout both use the default timeout of the configuration that made the call, and raise
    `ContextTimeoutError` when it runs out. Errors the call failed with are raised as they
    are, including a `TimeoutError` of the caller's own (from a `modify()` function).

    The call was sent when the method that returned the future was called, not when it is
    waited on. Giving up the wait (a timeout, or cancelling the task that awaits, as a
    client disconnect does) never cancels the call: it runs to completion, and an update is
    applied or refused exactly as if the caller had waited for it.
    """

    __slots__ = ("_reply", "_timeout", "_what")

    def __init__(self, reply: Reply[T], *, timeout: float, what: str) -> None:
        self._reply = reply
        self._timeout = timeout
        self._what = what

    def __repr__(self) -> str:
        state = "done" if self._reply.done() else "pending"
        return f"<ContextFuture {self._what} {state}>"

    @classmethod
    def failed(cls, error: BaseException, *, what: str) -> ContextFuture[Any]:
        """A future that already holds `error`."""
        reply = new_reply()
        reply.set_exception(error)
        return cls(reply, timeout=0.0, what=what)

    def get(self, timeout: float | None = None) -> T:
        """Wait up to `timeout` seconds (default: the configured one) and return the result.

        Raises:
            ContextTimeoutError: no answer in time; the call may still complete later.
            InvalidArgumentError: `timeout` is not None or a number >= 0 (the call goes on).
            ContextError: whatever the actor replied with.
        """
        if timeout is None:
            limit = self._timeout
        elif isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0:
            limit = timeout
        else:  # callers may be untyped; NaN fails the comparison too
            msg = f"timeout must be None or a number of seconds >= 0, got {timeout!r}"
            raise InvalidArgumentError(msg)
        reply = self._reply
        try:
            return reply.result(limit)
        except TimeoutError:
            # Only the wait's own timeout becomes ContextTimeoutError: a TimeoutError the call
            # itself failed with (a modify() function's own, say) is raised as it is.
            if not reply.done():
                raise self._timed_out(limit) from None
            return reply.result(0)

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait_async().__await__()

    async def _wait_async(self) -> T:
        reply = self._reply
        if reply.done():
            # Answered already (a call that failed its own argument checks, say): its result
            # or error as it is, whatever the timeout, as get() would give it.
            return reply.result(0)
        # One future of the loop, woken by the reply (from the thread that answers it) or by
        # the timeout. Giving up the wait (a timeout, or the awaiting task's cancellation)
        # cancels only that future, never the reply: the call was sent when it was made and
        # runs to completion either way. (This is what wait_for(shield(wrap_future(reply)))
        # does, with one future and one timer instead of four futures and their callbacks,
        # on every await of every call.)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        context = _loop_context.context
        timer = loop.call_later(self._timeout, _wake, waiter, context=context)
        reply.add_done_callback(_Answered(loop, waiter, context))
        try:
            await waiter
        finally:
            timer.cancel()
        if not reply.done():
            raise self._timed_out(self._timeout)
        return reply.result(0)

    def done(self) -> bool:
        """Whether the result (or error) is in."""
        return self._reply.done()

    def add_done_callback(self, callback: Callable[[ContextFuture[T]], object]) -> None:
        """Call `callback(self)` once done, in the thread that completes it (keep it short)."""
        self._reply.add_done_callback(lambda _: callback(self))

    def map(self, fn: Callable[[T], U], *, what: str | None = None) -> ContextFuture[U]:
        """A future of `fn(result)`; errors pass through and so does an error `fn` raises."""
        mapped: Reply[U] = new_reply()

        def chain(source: Reply[T]) -> None:
            error = source.exception()
            if error is not None:
                mapped.set_exception(error)
                return
            try:
                mapped.set_result(fn(source.result()))
            except Exception as exc:  # noqa: BLE001 - handed to whoever waits on the future
                mapped.set_exception(exc)

        self._reply.add_done_callback(chain)
        return ContextFuture(mapped, timeout=self._timeout, what=what or self._what)

    def _timed_out(self, limit: float) -> ContextTimeoutError:
        return ContextTimeoutError(f"{self._what} did not answer within {limit} s")
