"""ContextAdapter: the facade components use to activate, deactivate and switch contexts."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import pykka

from actors._cell import ContextStatus
from actors._change_stream import ChangeStream
from actors._changes import CurrentContextChange
from actors._config import SubscriptionConfig
from actors._future import ContextFuture, Reply, reject
from actors._handle import ContextTracker
from actors._manager import ContextManager
from actors._messages import ForgetAdapter
from actors._requests import (
    CreateAndSwitch,
    CurrentContext,
    CurrentTracker,
    Initialize,
    SubscribeCurrent,
    Switch,
)
from actors._subscribe import open_stream, open_subscription
from actors._subscription import Subscription
from actors._tell import tell_quietly
from storage import (
    ContextError,
    InvalidArgumentError,
    ShutdownError,
    State,
    validate_context_name,
)

__all__ = ["ContextAdapter", "create_adapter"]

_ids = itertools.count(1)


class ContextAdapter:
    """Tracks which contexts are active and which one is current for its component.

    Each adapter has its own current context; activation is shared by every adapter of a
    manager. Every method returns a `ContextFuture`.
    """

    def __init__(self, manager: ContextManager) -> None:
        if not isinstance(manager, ContextManager):  # callers may be untyped
            msg = f"an adapter fronts a ContextManager, not {type(manager).__name__}"  # type: ignore[unreachable]
            raise InvalidArgumentError(msg)
        self.manager = manager
        """The manager this adapter fronts."""
        self._id = next(_ids)
        # The manager keeps the adapter's current context and switch records by id: once
        # the adapter is gone, tell it to drop them (a throwaway adapter leaves nothing).
        weakref.finalize(self, _forget, manager._ref, self._id).atexit = False

    def __repr__(self) -> str:
        return f"<ContextAdapter #{self._id} of {self.manager!r}>"

    def initialize(self) -> ContextFuture[ContextTracker]:
        """Create the context "default" if absent, activate it and make it current.
        Idempotent; resolves to its tracker."""
        return self.manager._request(partial(Initialize, self._id))

    def get_current_tracker(self) -> ContextFuture[ContextTracker]:
        """The tracker of the current context.

        Raises (through the future): `NoCurrentContextError`.
        """
        return self.manager._request(partial(CurrentTracker, self._id))

    def current_context(self) -> ContextFuture[str | None]:
        """The name of the current context, or None."""
        return self.manager._request(partial(CurrentContext, self._id))

    def activate_context(self, name: str) -> ContextFuture[ContextTracker]:
        """Start a tracker for stored context `name` (if none runs); resolves to it."""
        return self.manager.get_tracker(name)

    def deactivate_context(self, name: str) -> ContextFuture[None]:
        """Write what the tracker has unsaved, then stop it. A context that was current in
        any adapter is current no more."""
        return self.manager.deactivate(name)

    def create_and_activate_context(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ContextFuture[ContextTracker]:
        """Create context `name`, activate it and make it current; resolves to its tracker."""
        try:
            state = State.new(validate_context_name(name), data, metadata)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="adapter.create_and_activate_context()")
        return self.manager._request(partial(CreateAndSwitch, self._id, state))

    def switch_context(self, name: str) -> ContextFuture[ContextTracker]:
        """Make `name` current, activating it if needed; resolves to its tracker."""
        try:
            validate_context_name(name)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="adapter.switch_context()")
        return self.manager._request(partial(Switch, self._id, name))

    def get_status(self, name: str) -> ContextFuture[ContextStatus]:
        """ACTIVE, INACTIVE, FAILED or NONEXISTENT."""
        return self.manager.status(name)

    def active_contexts(self) -> ContextFuture[list[str]]:
        """The names of the active contexts, sorted."""
        return self.manager.active_contexts()

    def subscribe_current(
        self,
        callback: Callable[[CurrentContextChange], object],
        config: SubscriptionConfig | None = None,
    ) -> ContextFuture[Subscription[CurrentContextChange]]:
        """Call `callback(change)` whenever this adapter's current context changes (a switch,
        or the current context deactivated or deleted), in order, in a thread of the
        subscription's own; resolves to the `Subscription` once it is in place. Buffering,
        overflow and errors as for `ContextTracker.subscribe()`; it ends on `unsubscribe()`
        and when the manager shuts down.
        """
        return open_subscription(
            self._topic_name, callback, config, self.manager.config.ask_timeout, self._register
        )

    def current_changes(
        self, config: SubscriptionConfig | None = None
    ) -> ChangeStream[CurrentContextChange]:
        """An async iterator over this adapter's current-context changes, delivered as by
        `subscribe_current()`; call it from a coroutine."""
        return open_stream(
            self._topic_name, config, self.manager.config.ask_timeout, self._register
        )

    @property
    def _topic_name(self) -> str:
        return f"adapter #{self._id}"

    def _register(self, subscription: Subscription[Any], reply: Reply[Any]) -> None:
        try:
            self.manager._ref.tell(SubscribeCurrent(self._id, subscription, reply))
        except pykka.ActorDeadError:
            reject(reply, ShutdownError("the context manager was shut down"))

    def shutdown(self) -> ContextFuture[None]:
        """Shut down the manager this adapter fronts (see `ContextManager.shutdown`)."""
        return self.manager.shutdown()


def _forget(manager: pykka.ActorRef[Any], adapter: int) -> None:
    tell_quietly(manager, ForgetAdapter(adapter))  # shut down: it kept nothing


def create_adapter(manager: ContextManager) -> ContextAdapter:
    """A new adapter on `manager`, with no current context until `initialize()` or a switch.

    Raises:
        InvalidArgumentError: `manager` is not a `ContextManager`.
    """
    return ContextAdapter(manager)
