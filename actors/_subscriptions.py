"""Change subscriptions: the hub actor that buffers and hands out what trackers publish, a
runner actor per callback, and the async iterator.

```
TrackerActor ─Publish(change)─▶ SubscriptionHub  ─batch─▶ callback runner (own thread)
(tell, once stored)             (one per manager) ◀─Demand─┘
ManagerActor ─Publish(switch)─▶ per subscription: ─batch─▶ ChangeStream (call_soon_threadsafe)
                                a bounded buffer  ◀─Demand─┘
```

Nothing here takes a lock. The hub owns every subscription's buffer and is the only thread
that touches it. A subscriber pulls: the hub hands over a batch only when the subscriber
asked for one (a new subscription has asked), so while a subscriber is busy its changes
wait in the hub's bounded buffer, where the overflow policy applies, and neither the hub
nor any tracker ever waits on a subscriber.

Subscriptions live in the hub, keyed by the context's `Topic`, which the manager keeps in the
context's `Cell`: they outlive tracker restarts, passivation and deactivation, and end on
`unsubscribe()`, on deletion of the context and on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

import attrs
import pykka

from actors._cell import Cell, ContextStatus
from actors._changes import Publish, Topic
from actors._config import Overflow, SubscriptionConfig
from actors._exit import track_subscription
from actors._future import ContextFuture, Reply, new_reply, reject, resolve
from actors._messages import Wake
from storage import InvalidArgumentError, ShutdownError, SynchronizationError

__all__ = [
    "ChangeStream",
    "CloseHub",
    "CloseTopic",
    "Register",
    "Subscription",
    "SubscriptionHub",
    "hub_registrar",
    "open_stream",
    "open_subscription",
]

logger = logging.getLogger("actors.subscriptions")

T = TypeVar("T")

Registrar = Callable[["Subscription[Any]", Reply[Any]], None]
"""Sends a new subscription's `Register` on its way; answers the reply itself on failure."""

# -- messages -------------------------------------------------------------------------------


@attrs.frozen
class Register:
    """To the hub: add `subscription` to `topic`; `reply` resolves to it. With a `cell`,
    refused if that context was deleted or its manager shut down."""

    topic: Topic
    subscription: Subscription[Any]
    reply: Reply[Any]
    cell: Cell | None = None


@attrs.frozen
class Demand:
    """To the hub: the subscriber is done with its last batch and takes the next."""

    subscription: Subscription[Any]


@attrs.frozen
class Unsubscribe:
    """To the hub: end `subscription` at once, dropping what it buffers."""

    subscription: Subscription[Any]


@attrs.frozen
class CloseTopic:
    """To the hub: `topic` is gone (its context was deleted); end its subscriptions."""

    topic: Topic


@attrs.frozen
class CloseHub:
    """To the hub: the manager shuts down; end every subscription, then stop."""

    reply: Reply[None]


@attrs.frozen
class _Batch:
    """To a callback runner: changes to deliver, and whether they are the last."""

    items: list[Any]
    end: bool


# -- the subscription -----------------------------------------------------------------------


class _Outlet(Protocol):
    def offer(self, items: list[Any], *, end: bool) -> bool:
        """Hand `items` to the subscriber (never waits); False if it is gone."""


class Subscription(Generic[T]):
    """One subscriber's subscription: to a context's changes, or an adapter's switches.

    Every attribute is safe to read from any thread. The subscription ends on
    `unsubscribe()`, when its context is deleted, when the manager shuts down, and on
    overflow under `Overflow.UNSUBSCRIBE`; `ended()` tells when.
    """

    def __init__(self, name: str, config: SubscriptionConfig, timeout: float) -> None:
        self.name = name
        """The context subscribed to, or "adapter #n"."""
        self.config = config
        """Its buffer size and overflow policy."""
        self.error: BaseException | None = None
        """Why the subscription was ended, if not cleanly (`SynchronizationError` on
        overflow under `Overflow.UNSUBSCRIBE`)."""
        self.dropped = 0
        """Changes dropped under `Overflow.DROP_OLDEST` so far."""
        self.failures = 0
        """Exceptions the callback raised so far (each is logged; delivery goes on)."""
        self.last_failure: Exception | None = None
        """The last exception the callback raised."""
        self._timeout = timeout
        # Written by the hub when it registers us, and read by unsubscribe(): the hub sets
        # `_hub` before it reads `_cancelled`, unsubscribe() sets `_cancelled` before it reads
        # `_hub`, so an unsubscribe() racing the registration is seen by one side or both.
        self._hub: pykka.ActorRef[Any] | None = None
        self._cancelled = False
        self._ended: Reply[None] = new_reply()
        self._outlet: _Outlet

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Subscription {self.name!r} {state}>"

    @property
    def active(self) -> bool:
        """Whether changes may still be delivered."""
        return not self._ended.done()

    def unsubscribe(self) -> ContextFuture[None]:
        """End the subscription; what it buffers is dropped. Resolves once no callback runs
        and none will, or once an iterator will yield nothing more. Idempotent.

        From inside the subscription's own callback, do not wait on the future: it resolves
        only after that callback returns.
        """
        self._cancelled = True
        hub = self._hub
        if hub is not None:
            with contextlib.suppress(pykka.ActorDeadError):  # stopped: it ended us already
                hub.tell(Unsubscribe(self))
        return self.ended()

    def ended(self) -> ContextFuture[None]:
        """A future that resolves once the subscription has ended and delivers nothing more."""
        return ContextFuture(self._ended, timeout=self._timeout, what=f"{self!r}.ended()")

    def _finish(self, items: list[Any]) -> None:
        """End delivery after `items`, or at once if the subscriber cannot take them."""
        if not self._outlet.offer(items, end=True):
            resolve(self._ended, None)


def open_subscription(
    name: str,
    callback: Callable[[T], object],
    config: SubscriptionConfig | None,
    timeout: float,
    register: Registrar,
) -> ContextFuture[Subscription[T]]:
    """Start a runner that calls `callback` with every item, and register it.

    A `callback` that is not callable, or a `config` that is not a `SubscriptionConfig`, fails
    the returned future at once with `InvalidArgumentError`; nothing is started.
    """
    what = f"subscribe to {name!r}"
    try:
        _check_callback(callback)
        config = _checked_config(config)
    except InvalidArgumentError as exc:
        return ContextFuture.failed(exc, what=what)
    subscription: Subscription[T] = Subscription(name, config, timeout)
    subscription._outlet = _RunnerOutlet(_CallbackRunner.start(subscription, callback))
    reply = _register(subscription, register)
    return ContextFuture(reply, timeout=timeout, what=what)


def _check_callback(callback: object) -> None:
    if not callable(callback):  # callers may be untyped
        msg = f"subscribe() takes a callable, got {type(callback).__name__} {callback!r}"
        raise InvalidArgumentError(msg)


def _checked_config(config: object) -> SubscriptionConfig:
    if config is None:
        return SubscriptionConfig()
    if not isinstance(config, SubscriptionConfig):
        msg = f"config must be a SubscriptionConfig or None, got {type(config).__name__}"
        raise InvalidArgumentError(msg)
    return config


def open_stream(
    name: str, config: SubscriptionConfig | None, timeout: float, register: Registrar
) -> ChangeStream[T]:
    """Register an async iterator over the items; call it from a coroutine."""
    loop = asyncio.get_running_loop()
    subscription: Subscription[T] = Subscription(name, _checked_config(config), timeout)
    reply: Reply[Subscription[T]] = new_reply()
    registered = ContextFuture(reply, timeout=timeout, what=f"changes of {name!r}")
    stream = ChangeStream(subscription, registered, loop)
    subscription._outlet = _StreamOutlet(loop, stream, subscription)
    # An iterator dropped without aclose() (a `break` out of `async for`) unsubscribes.
    weakref.finalize(stream, _abandon, subscription).atexit = False
    _register(subscription, register, reply)
    return stream


def _register(
    subscription: Subscription[Any], register: Registrar, reply: Reply[Any] | None = None
) -> Reply[Any]:
    if reply is None:
        reply = new_reply()

    def refused(done: Reply[Any]) -> None:
        if done.exception() is not None:
            subscription._finish([])

    reply.add_done_callback(refused)
    register(subscription, reply)
    return reply


def hub_registrar(topic: Topic, cell: Cell) -> Registrar:
    """Registers subscriptions to the context of `cell` directly with its hub."""

    def register(subscription: Subscription[Any], reply: Reply[Any]) -> None:
        hub = topic.hub
        assert hub is not None  # a manager's cells publish to its hub
        try:
            hub.tell(Register(topic, subscription, reply, cell))
        except pykka.ActorDeadError:
            reject(reply, ShutdownError(f"the manager of context {cell.name!r} was shut down"))

    return register


def _abandon(subscription: Subscription[Any]) -> None:
    subscription.unsubscribe()


# -- the hub --------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Entry:
    """The hub's record of one subscription: its buffer and whether it asked for more."""

    subscription: Subscription[Any]
    topic: Topic
    buffer: deque[Any] = attrs.field(factory=deque)
    wanting: bool = True  # a new subscriber takes the first change at once
    gap: tuple[Any, Any, int] | None = None  # first and last dropped before buffer[0], count


class SubscriptionHub(pykka.ThreadingActor):
    """Holds the subscriptions of one manager's contexts and adapters, and their buffers.

    `exit_timeout` is its manager's: how long the exit hook lets a callback finish."""

    use_daemon_thread = True  # never keeps the process alive: see actors/_exit.py

    def __init__(self, exit_timeout: float) -> None:
        super().__init__()
        self._exit_timeout = exit_timeout
        self._topics: dict[Topic, list[_Entry]] = {}
        self._entries: dict[Subscription[Any], _Entry] = {}
        self._closing: Reply[None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            Publish: self._on_publish,
            Demand: self._on_demand,
            Register: self._on_register,
            Unsubscribe: self._on_unsubscribe,
            CloseTopic: self._on_close_topic,
            CloseHub: self._on_close_hub,
        }

    def on_receive(self, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)

    def on_stop(self) -> None:
        for entry in list(self._entries.values()):
            self._end(entry, deliver=True)
        while not self.actor_inbox.empty():
            message = self.actor_inbox.get().message
            if isinstance(message, Register):
                reject(message.reply, ShutdownError("the context manager was shut down"))
            elif isinstance(message, CloseHub):
                resolve(message.reply, None)
        if self._closing is not None:
            resolve(self._closing, None)

    def _on_register(self, message: Register) -> None:
        subscription = message.subscription
        subscription._hub = self.actor_ref  # before reading _cancelled: see Subscription
        cell = message.cell
        if self._closing is not None:
            reject(message.reply, ShutdownError("the context manager was shut down"))
            return
        if cell is not None and (cell.closed or cell.status is ContextStatus.NONEXISTENT):
            reject(message.reply, cell.unavailable())
            return
        entry = _Entry(subscription, message.topic)
        self._entries[subscription] = entry
        self._topics.setdefault(message.topic, []).append(entry)
        message.topic.hub = self.actor_ref
        message.topic.live = True
        if isinstance(subscription._outlet, _RunnerOutlet):
            # At exit, its callback may finish what it was handed, within the exit timeout.
            track_subscription(subscription, self._exit_timeout)
        resolve(message.reply, subscription)
        tracker = cell.ref if cell is not None else None
        if tracker is not None:
            # A write in flight may have been sent when nobody listened (so its tracker
            # would settle it only with its next message): have it publish now.
            with contextlib.suppress(pykka.ActorDeadError):
                tracker.tell(Wake())
        if subscription._cancelled:
            self._end(entry, deliver=False)

    def _on_publish(self, message: Publish) -> None:
        entries = self._topics.get(message.topic)
        if not entries:
            return
        for index, entry in enumerate(list(entries)):
            # The publisher made one copy; every further subscriber gets one of its own.
            self._push(entry, message.item if index == 0 else message.item.copy())

    def _push(self, entry: _Entry, item: Any) -> None:
        if entry.wanting:
            entry.wanting = False
            if not entry.subscription._outlet.offer([item], end=False):
                self._gone(entry)
            return
        subscription = entry.subscription
        config = subscription.config
        if len(entry.buffer) < config.buffer_size:
            entry.buffer.append(item)
            return
        if config.overflow is Overflow.UNSUBSCRIBE:
            subscription.error = SynchronizationError(
                f"subscription to {subscription.name!r} fell {config.buffer_size} changes "
                "behind and was ended (overflow policy UNSUBSCRIBE)"
            )
            logger.warning("%s", subscription.error)
            self._end(entry, deliver=True)
            return
        dropped = entry.buffer.popleft()
        first, _, count = entry.gap or (dropped, dropped, 0)
        entry.gap = first, dropped, count + 1
        subscription.dropped += 1
        entry.buffer.append(item)

    def _on_demand(self, message: Demand) -> None:
        entry = self._entries.get(message.subscription)
        if entry is None:
            return  # ended meanwhile
        if not entry.buffer:
            entry.wanting = True
        elif not entry.subscription._outlet.offer(self._take(entry), end=False):
            self._gone(entry)

    def _on_unsubscribe(self, message: Unsubscribe) -> None:
        entry = self._entries.get(message.subscription)
        if entry is not None:
            self._end(entry, deliver=False)

    def _on_close_topic(self, message: CloseTopic) -> None:
        for entry in list(self._topics.get(message.topic, ())):
            self._end(entry, deliver=True)

    def _on_close_hub(self, message: CloseHub) -> None:
        self._closing = message.reply
        self.stop()  # on_stop ends every subscription, then answers

    @staticmethod
    def _take(entry: _Entry) -> list[Any]:
        """Empty the buffer into a batch, the first item reporting any gap before it."""
        items = list(entry.buffer)
        entry.buffer.clear()
        if entry.gap is not None and items:
            items[0] = items[0].after_gap(*entry.gap)
            entry.gap = None
        return items

    def _remove(self, entry: _Entry) -> None:
        del self._entries[entry.subscription]
        entries = self._topics[entry.topic]
        entries.remove(entry)
        if not entries:
            entry.topic.live = False
            del self._topics[entry.topic]

    def _end(self, entry: _Entry, *, deliver: bool) -> None:
        """End a subscription: hand over what it buffers (if `deliver`) and the end."""
        self._remove(entry)
        entry.subscription._finish(self._take(entry) if deliver else [])

    def _gone(self, entry: _Entry) -> None:
        """The subscriber cannot take deliveries any more (its event loop closed)."""
        self._remove(entry)
        resolve(entry.subscription._ended, None)


# -- callbacks ------------------------------------------------------------------------------


class _RunnerOutlet:
    def __init__(self, runner: pykka.ActorRef[Any]) -> None:
        self._runner = runner

    def offer(self, items: list[Any], *, end: bool) -> bool:
        try:
            self._runner.tell(_Batch(items, end))
        except pykka.ActorDeadError:
            return False
        return True


class _CallbackRunner(pykka.ThreadingActor):
    """Calls one subscription's callback, in its own thread, with each item it is handed."""

    # A daemon: a callback that blocks must not keep the process alive after shutdown().
    # The exit hook waits a bounded time for it to deliver what it was handed.
    use_daemon_thread = True

    def __init__(self, subscription: Subscription[Any], callback: Callable[[Any], object]) -> None:
        super().__init__()
        self._subscription = subscription
        self._callback = callback

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, _Batch):
            return
        subscription = self._subscription
        for item in message.items:
            if subscription._cancelled:
                break  # unsubscribed: the hub's end follows
            try:
                self._callback(item)
            except Exception as exc:  # reported on the subscription; delivery goes on
                subscription.failures += 1
                subscription.last_failure = exc
                logger.exception("subscription to %r: callback failed", subscription.name)
        if message.end:
            self.stop()  # on_stop says we have ended
        elif not subscription._cancelled:
            hub = subscription._hub
            assert hub is not None  # items came, so the hub has registered us
            try:
                hub.tell(Demand(subscription))
            except pykka.ActorDeadError:
                self.stop()

    def on_stop(self) -> None:
        resolve(self._subscription._ended, None)

    def on_failure(self, *_: object) -> None:  # a callback raised a BaseException
        resolve(self._subscription._ended, None)


# -- async iteration ------------------------------------------------------------------------


class _StreamOutlet:
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
