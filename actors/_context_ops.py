"""The manager's context operations: create, activate, deactivate, delete, list, status.

Each runs in the manager actor and never waits: a store call goes to the store worker
(`manager._io`), a tracker's stop is chained (`manager._stop_tracker`), and the caller is
answered when they come back. While one of them is under way for a context, later calls
naming it wait (see `ContextRegistry`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from actors._cell import ContextStatus
from actors._future import Reply, new_reply, reject
from actors._requests import (
    LATER,
    ActiveContexts,
    CreateContext,
    Deactivate,
    DeleteContext,
    GetTracker,
    ListContexts,
    Status,
)
from storage import ContextInactiveError, ContextNotFoundError, State

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = [
    "active_contexts",
    "create_context",
    "deactivate",
    "delete_context",
    "get_tracker",
    "list_contexts",
    "status",
]


def create_context(manager: ManagerActor, request: CreateContext) -> Any:
    reply, state = request.reply, request.state

    def created(_: None) -> State:
        manager._cell(state.context)
        return state.snapshot()

    return manager._io(state.context, reply, partial(manager._store.create, state), created)


def get_tracker(manager: ManagerActor, request: GetTracker) -> Any:
    reply, name = request.reply, request.name
    manager._activate(name, reply)
    return LATER


def deactivate(manager: ManagerActor, request: Deactivate) -> Any:
    reply, name = request.reply, request.name
    if not manager._is_running(name):
        cell = manager._contexts.get(name)
        if cell is not None and cell.passive:  # passivated: nothing left to stop
            cell.status = ContextStatus.INACTIVE
            manager._currents.forget_context(name)
            return None

        def stored(exists: bool) -> None:
            if not exists:
                raise ContextNotFoundError(name)

        return manager._io(name, reply, partial(manager._store.exists, name), stored)
    manager._pend(name, reply)
    manager._stop_tracker(name, ContextInactiveError(name), reply, ContextStatus.INACTIVE)
    return LATER


def delete_context(manager: ManagerActor, request: DeleteContext) -> Any:
    reply, name = request.reply, request.name
    if not manager._is_running(name):
        cell = manager._contexts.get(name)
        if cell is not None and cell.passive:
            # No tracker may start for it while the store deletes it.
            cell.status = ContextStatus.INACTIVE
        manager._currents.forget_context(name)
        return manager._io(
            name, reply, partial(manager._store.delete, name), _deleted(manager, name)
        )
    manager._pend(name, reply)
    stopped = new_reply()
    manager._stop_tracker(name, ContextNotFoundError(name), stopped, ContextStatus.NONEXISTENT)
    manager._when_done(stopped, partial(_delete_after_stop, manager), name, reply)
    return LATER


def _delete_after_stop(
    manager: ManagerActor, stopped: Reply[None], name: str, reply: Reply[None]
) -> None:
    error = stopped.exception()
    if error is not None:
        reject(reply, error)
        return
    manager._io(name, reply, partial(manager._store.delete, name), _deleted(manager, name))


def _deleted(manager: ManagerActor, name: str) -> Callable[[None], None]:
    """What follows the store's deletion of `name`: forgetting it here."""

    def forget(_: None) -> None:
        _forget_context(manager, name)

    return forget


def _forget_context(manager: ManagerActor, name: str) -> None:
    """A deleted context leaves nothing here: handles that still hold its cell find it
    NONEXISTENT, and a context created later under the name gets a new cell."""
    cell = manager._contexts.forget(name)
    if cell is not None:
        cell.status = ContextStatus.NONEXISTENT
        manager._close_topic(cell.changes)
    manager._restarts.forget(name)


def list_contexts(manager: ManagerActor, request: ListContexts) -> Any:
    reply = request.reply
    return manager._io(None, reply, manager._store.list_contexts)


def status(manager: ManagerActor, request: Status) -> Any:
    reply, name = request.reply, request.name
    cell = manager._contexts.get(name)
    if cell is not None and cell.status in (ContextStatus.ACTIVE, ContextStatus.FAILED):
        return cell.status

    def stored(exists: bool) -> ContextStatus:
        return ContextStatus.INACTIVE if exists else ContextStatus.NONEXISTENT

    return manager._io(None, reply, partial(manager._store.exists, name), stored)


def active_contexts(manager: ManagerActor, request: ActiveContexts) -> list[str]:
    return sorted(
        name
        for name, cell in manager._contexts.cells.items()
        if cell.status is ContextStatus.ACTIVE
    )
