"""ShutdownSequence: how a manager shuts down, in one place.

`shutdown()` (the first of any number of calls) runs, in order:

1. stop every running tracker (each writes what it has unsaved; a write that fails is logged,
   and the tracker stops anyway);
2. once all have stopped, every change is published and no write is in flight: close the
   subscription hub (subscriptions end after delivering what they buffer), drain the group
   writer, close the watcher and the store worker (after the store calls sent to it);
3. once those have stopped, close the store if the manager opened it, and stop the manager;
4. from the manager's `on_stop()` (`teardown`), once its actor is out of the registry:
   answer every call still queued or waiting, then every shutdown caller, with the first
   error met (a final write or closing the store) or None. So when `shutdown()` resolves,
   no actor of the manager is left.

A manager stopped from outside (`pykka.ActorRegistry.stop_all()`) goes through `teardown`
only: the hub is closed and every caller answered all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pykka

from actors import _context_ops as context_ops
from actors._cell import ContextStatus
from actors._future import Reply, new_reply, reject, resolve
from actors._messages import ListStopping
from actors._periodic import Close
from actors._requests import ManagerRequest, Shutdown
from actors._store_io import CloseIO
from actors._subscription_messages import CloseHub
from actors._teardown import answer_mailbox
from actors._writer import Drain
from storage import ShutdownError

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = ["ShutdownSequence"]


def _shut_down() -> ShutdownError:
    return ShutdownError("the context manager was shut down")


class ShutdownSequence:
    """The shutdown of one manager actor; see the module docstring."""

    def __init__(self, manager: ManagerActor) -> None:
        self._manager = manager
        self._callers: list[Reply[None]] = []  # every shutdown() call, the first first
        self._outcome: BaseException | None = None
        self._finished = False  # True once the sequence stopped the manager itself

    @property
    def closing(self) -> bool:
        """Whether a shutdown was asked for: calls but shutdown() are refused."""
        return bool(self._callers)

    def begin(self, reply: Reply[None]) -> None:
        """A shutdown() call: the first starts the sequence; all are answered at its end."""
        self._callers.append(reply)
        if len(self._callers) > 1:
            return
        manager = self._manager
        manager._contexts.unpublish_all()  # every get_tracker() now reaches the manager: refused
        stops = []
        for name in manager._contexts.running():
            stopped = new_reply()
            context_ops.stop_tracker(manager, name, _shut_down(), stopped, ContextStatus.INACTIVE)
            stops.append(stopped)
        self._when_all(stops, partial(self._close_helpers, stops))

    def _close_helpers(self, stops: list[Reply[None]]) -> None:
        manager = self._manager
        for cell in manager._contexts.cells.values():
            cell.closed = True
            cell.ref = None
        helpers = [close_hub(manager._hub), _ask(manager._io_worker, CloseIO)]
        if manager._writer is not None:  # failed earlier (a bug, logged): nothing in flight
            helpers.append(_ask(manager._writer, Drain))
        if manager._watcher is not None:  # failed earlier (a bug, logged): nothing to close
            helpers.append(_ask(manager._watcher, Close))
        if manager._leases is not None:  # every tracker gave its lease up as it stopped
            helpers.append(_ask(manager._leases.keeper, Close))
        self._when_all(helpers, partial(self._close, stops))

    def _close(self, stops: list[Reply[None]]) -> None:
        manager = self._manager
        errors = [error for stop in stops if (error := stop.exception()) is not None]
        if manager._owns_store:
            try:
                manager._store.close()
            except Exception as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
        # Answered from teardown(), once the actor is out of the registry.
        self._outcome = errors[0] if errors else None
        self._finished = True
        manager.stop()

    def teardown(self) -> None:
        """From the manager's on_stop(): answer every caller still waiting."""
        manager = self._manager
        manager._contexts.unpublish_all()  # stopped from outside, too: nothing handed out
        if not self._finished:
            close_hub(manager._hub)  # stopped from outside (pykka.ActorRegistry.stop_all())
        for request in manager._contexts.waiting():
            reject(request.reply, _shut_down())
        answer_mailbox(manager)  # through answer_late(), below
        for reply in self._callers:
            if self._outcome is not None:
                reject(reply, self._outcome)
            else:
                resolve(reply, None)

    @staticmethod
    def answer_late(message: Any) -> None:
        """Answer a message that reached the manager after it stopped."""
        if isinstance(message, Shutdown):
            resolve(message.reply, None)  # shut down, as it asked
        elif isinstance(message, ManagerRequest):
            reject(message.reply, _shut_down())
        elif isinstance(message, ListStopping):
            resolve(message.reply, [])  # every tracker has stopped

    def _when_all(self, replies: list[Reply[Any]], then: Callable[[], None]) -> None:
        """Run `then()` in the manager once every one of `replies` is settled."""
        if not replies:
            then()
            return
        remaining = [len(replies)]

        def one_done(_: Reply[Any]) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                then()

        for reply in replies:
            self._manager._when_done(reply, one_done)


def close_hub(hub: pykka.ActorRef[Any]) -> Reply[None]:
    """Close the subscription hub; the reply resolves once it has stopped."""
    return _ask(hub, CloseHub)


def _ask(ref: pykka.ActorRef[Any], kind: Callable[[Reply[None]], Any]) -> Reply[None]:
    """Tell `ref` `kind(reply)`; `reply` resolves when it is done (at once if it stopped)."""
    reply = new_reply()
    try:
        ref.tell(kind(reply))
    except pykka.ActorDeadError:
        resolve(reply, None)
    return reply
