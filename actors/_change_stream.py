"""The async iterator over a subscription (`ChangeStream`), and the outlet through which the
hub hands it batches in its event loop."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any, Generic, Self, TypeVar

import pykka

from actors._future import ContextFuture, resolve
from actors._subscription import Subscription
from actors._subscription_messages import Demand

__all__ = ["ChangeStream", "StreamOutlet"]

T = TypeVar("T")


class StreamOutlet:
    """Hands batches to a `ChangeStream` in its event loop, without keeping it alive."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stream: ChangeStream[Any], sub: Subscription[Any]
    ) -> None:
        self._loop = loop
        self._stream = weakref.ref(stream)
        self._subscription = sub

    def offer(self, items: list[Any], *, end: bool) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._arrive, items, end)
        except RuntimeError:  # the event loop is closed
            return False
        return True

    def _arrive(self, items: list[Any], end: bool) -> None:
        stream = self._stream()
        if stream is not None:
            stream._arrive(items, end)
        elif end:
            resolve(self._subscription._ended, None)


class ChangeStream(Generic[T]):
    """An async iterator over a subscription's items, in order; get one from
    `ContextTracker.changes()` or `ContextAdapter.current_changes()` inside a coroutine.

    `async for` ends when the subscription ends: after `aclose()` or `unsubscribe()` at
    once, after delivering what was buffered when the context is deleted or the manager
    shuts down. Under `Overflow.UNSUBSCRIBE` it raises `SynchronizationError` after the
    buffered items instead. Waiting for the next item never blocks the event loop.

    `async with tracker.changes() as changes:` waits until the subscription is in place and
    unsubscribes on exit; an iterator dropped without closing unsubscribes when collected.
    """

    def __init__(
        self,
        subscription: Subscription[T],
        registered: ContextFuture[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.subscription = subscription
        """The subscription behind the iterator: `error`, `dropped`, `unsubscribe()`."""
        self._registered = registered
        self._loop = loop
        self._items: deque[T] = deque()
        self._asked = True  # a new subscription is handed items without asking
        self._ended = False
        self._raised = False
        self._started = False
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<ChangeStream {self.subscription.name!r}>"

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if not self._started:
            await self._registered  # raises if refused: ContextNotFoundError, ShutdownError
            self._started = True
        while True:
            if self.subscription._cancelled:
                raise StopAsyncIteration
            if self._items:
                return self._items.popleft()
            if self._ended:
                raise self._end()
            if not self._asked:
                self._asked = True
                self._demand()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aenter__(self) -> Self:
        await self._registered
        self._started = True
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Unsubscribe, and wait until that has taken effect."""
        await self.subscription.unsubscribe()

    def _end(self) -> BaseException:
        error = self.subscription.error
        if error is not None and not self._raised:
            self._raised = True
            return error
        return StopAsyncIteration()

    def _demand(self) -> None:
        hub = self.subscription._hub
        assert hub is not None  # items came, so the hub has registered us
        try:
            hub.tell(Demand(self.subscription))
        except pykka.ActorDeadError:
            self._arrive([], end=True)

    def _arrive(self, items: list[T], end: bool) -> None:
        """In the event loop: the hub handed over `items` (and the end)."""
        self._items.extend(items)
        if end:
            self._ended = True
            resolve(self.subscription._ended, None)
        else:
            self._asked = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
