"""The manager's adapter operations: switches, current contexts and their subscriptions.

Which context is current for each adapter, and the rule that the latest successful switch
wins, are in `Currents` (actors/_currents.py); these handlers start the switches and report
their outcome to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pykka

from actors import _context_ops as context_ops
from actors._changes import Topic
from actors._future import Reply, new_reply
from actors._handle import ContextTracker
from actors._messages import ForgetAdapter
from actors._requests import (
    DEFAULT_CONTEXT,
    LATER,
    CreateAndSwitch,
    CurrentContext,
    CurrentTracker,
    Initialize,
    SubscribeCurrent,
    Switch,
)
from actors._subscription_messages import Register
from storage import ContextExistsError, NoCurrentContextError, ShutdownError, State

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = [
    "create_and_switch",
    "current_context",
    "current_tracker",
    "initialize",
    "on_forget_adapter",
    "subscribe_current",
    "switch",
]


def initialize(manager: ManagerActor, request: Initialize) -> Any:
    reply, adapter = request.reply, request.adapter
    store = manager._store

    def create_if_missing() -> None:
        if not store.exists(DEFAULT_CONTEXT):
            with contextlib.suppress(ContextExistsError):  # another process was first
                store.create(State.new(DEFAULT_CONTEXT))

    _switch(manager, adapter, DEFAULT_CONTEXT, reply, create_if_missing)
    return LATER


def switch(manager: ManagerActor, request: Switch) -> Any:
    reply, adapter, name = request.reply, request.adapter, request.name
    _switch(manager, adapter, name, reply)
    return LATER


def create_and_switch(manager: ManagerActor, request: CreateAndSwitch) -> Any:
    reply, adapter, state = request.reply, request.adapter, request.state
    _switch(manager, adapter, state.context, reply, partial(manager._store.create, state))
    return LATER


def _switch(
    manager: ManagerActor,
    adapter: int,
    name: str,
    reply: Reply[ContextTracker],
    prepare: Callable[[], None] | None = None,
) -> None:
    """Make `name` the adapter's current context once it is active; with `prepare`, a
    store call that makes sure it is stored (create it), run first."""
    # The ticket is taken now, in the order of the requests (see actors/_currents.py).
    ticket = manager._currents.begin(adapter, name)
    activated = new_reply()
    if prepare is None:
        context_ops.activate(manager, name, activated)
    else:

        def stored(_: None) -> Any:
            context_ops.activate(manager, name, activated)
            return LATER

        manager._io(name, activated, prepare, stored)
    manager._when_done(activated, partial(_on_switched, manager), adapter, ticket, reply)


def _on_switched(
    manager: ManagerActor,
    activated: Reply[ContextTracker],
    adapter: int,
    ticket: int,
    reply: Reply[Any],
) -> None:
    manager._currents.finish(adapter, ticket, succeeded=activated.exception() is None)
    manager._pass_on(activated, reply)


def current_context(manager: ManagerActor, request: CurrentContext) -> str | None:
    adapter = request.adapter
    return manager._currents.current(adapter)


def current_tracker(manager: ManagerActor, request: CurrentTracker) -> ContextTracker:
    adapter = request.adapter
    name = manager._currents.current(adapter)
    if name is None:
        raise NoCurrentContextError("the adapter has no current context")
    return ContextTracker(manager._contexts.cells[name])


def on_forget_adapter(manager: ManagerActor, message: ForgetAdapter) -> None:
    """The adapter was garbage-collected: drop its current context and switch records,
    and end the subscriptions to its switches (after what they buffer)."""
    topic = manager._currents.forget_adapter(message.adapter)
    if topic is not None:
        manager._close_topic(topic)


def subscribe_current(manager: ManagerActor, request: SubscribeCurrent) -> Any:
    reply, adapter, subscription = request.reply, request.adapter, request.subscription
    topic = manager._currents.topic(adapter, lambda: Topic(f"adapter #{adapter}", manager._hub))
    try:
        manager._hub.tell(Register(topic, subscription, reply))
    except pykka.ActorDeadError:
        raise ShutdownError("the context manager was shut down") from None
    return LATER
