"""Opening a subscription: `subscribe(callback)` starts a callback runner, `changes()` makes an
async iterator; either registers a new `Subscription` with the hub (see
actors/_subscription_hub.py for how changes then flow)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

from actors._callback_runner import CallbackRunner, RunnerOutlet
from actors._cell import Cell
from actors._change_stream import ChangeStream, StreamOutlet
from actors._changes import Topic
from actors._config import SubscriptionConfig
from actors._future import ContextFuture, Reply, new_reply, reject
from actors._subscription import Registrar, Subscription
from actors._subscription_messages import Register
from storage import InvalidArgumentError, ShutdownError

__all__ = ["hub_registrar", "open_stream", "open_subscription"]

T = TypeVar("T")


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
    subscription._outlet = RunnerOutlet(CallbackRunner.start(subscription, callback))
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
    subscription._outlet = StreamOutlet(loop, stream, subscription)
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
