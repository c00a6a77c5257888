"""The manager's context operations: create, activate, deactivate, delete, list, status.

Each runs in the manager actor and never waits: a store call goes to the store worker
(`manager._io`), a tracker's stop is chained (`partial(stop_tracker, manager)`), and the caller is
answered when they come back. While one of them is under way for a context, later calls
naming it wait (see `ContextRegistry`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import Cell, ContextStatus
from actors._future import Reply, new_reply, reject, resolve
from actors._handle import ContextTracker
from actors._messages import Done, Stop
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
from actors._tell import tell_quietly
from actors._watcher import Unwatch, Watch
from storage import ContextInactiveError, ContextNotFoundError, ShutdownError, State

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = [
    "activate",
    "active_contexts",
    "create_context",
    "deactivate",
    "delete_context",
    "forget_if_gone",
    "get_tracker",
    "list_contexts",
    "status",
    "stop_tracker",
]


def create_context(manager: ManagerActor, request: CreateContext) -> Any:
    reply, state = request.reply, request.state

    def created(_: None) -> State:
        manager._cell(state.context)
        return state.snapshot()

    return manager._io(state.context, reply, partial(manager._store.create, state), created)


def get_tracker(manager: ManagerActor, request: GetTracker) -> Any:
    activate(manager, request.name, request.reply, request.seed)
    return LATER


def _not_stored(manager: ManagerActor, name: str) -> None:
    """Raise `ContextNotFoundError` if `name` turned out not to be stored (its tracker's load
    said so and it is stopping)."""
    cell = manager._contexts.get(name)
    if cell is not None and cell.status is ContextStatus.NONEXISTENT:
        raise ContextNotFoundError(name)


def deactivate(manager: ManagerActor, request: Deactivate) -> Any:
    reply, name = request.reply, request.name
    _not_stored(manager, name)
    if not manager._is_running(name):
        cell = manager._contexts.get(name)
        if cell is not None and cell.passive:  # passivated: nothing left to stop
            manager._contexts.unpublish(name)  # answered below: get_tracker() asks again
            cell.status = ContextStatus.INACTIVE
            manager._currents.forget_context(name)
            return None

        def stored(exists: bool) -> None:
            if not exists:
                raise ContextNotFoundError(name)

        return manager._io(name, reply, partial(manager._store.exists, name), stored)
    manager._pend(name, reply)
    stop_tracker(manager, name, ContextInactiveError(name), reply, ContextStatus.INACTIVE)
    return LATER


def delete_context(manager: ManagerActor, request: DeleteContext) -> Any:
    reply, name = request.reply, request.name
    _not_stored(manager, name)
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
    stop_tracker(manager, name, ContextNotFoundError(name), stopped, ContextStatus.NONEXISTENT)
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


def forget_if_gone(manager: ManagerActor, name: str) -> None:
    """Forget `name` if it turned out not to be stored and nothing runs for it (a handle
    asked for a context never created), so that such calls leave nothing behind."""
    cell = manager._contexts.get(name)
    if cell is not None and cell.status is ContextStatus.NONEXISTENT and cell.ref is None:
        _forget_context(manager, name)


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


def activate(
    manager: ManagerActor,
    name: str,
    reply: Reply[ContextTracker],
    seed: State | None = None,
    first: Any = None,
) -> None:
    """Answer `reply` with a handle once `name` has a running tracker, starting one unless
    one runs. The store is not asked first whether the context exists: the tracker's load
    finds out (one store call instead of two). A context that is not there is created by the
    tracker as `seed` if given; otherwise the tracker reports it and its supervisor stops it
    (`supervision.on_tracker_failed`), failing `reply` with `ContextNotFoundError`. A
    `first` message goes into a new tracker's mailbox before its ref is published, so that
    no call a handle sends through the new ref can overtake it."""
    cell = manager._cell(name)
    if cell.status is ContextStatus.FAILED:
        reject(reply, cell.unavailable())
        return
    if cell.ref is not None:
        loading = manager._contexts.loading(name)
        if loading is None:
            manager._contexts.publish(cell)  # the next get_tracker() need not come here
            resolve(reply, ContextTracker(cell))
        else:  # started, not loaded yet: it may not even exist
            manager._when_done(loading, partial(_on_ready, manager), cell, reply)
        return
    if manager._shutdown.closing:
        reject(reply, ShutdownError("the context manager was shut down"))
        return
    ready = new_reply()
    ref = manager._factory.start(
        name,
        manager._store,
        manager.actor_ref,
        ready,
        writer=manager._writer,
        changes=cell.changes,
        clock=manager._clock,
        dispatcher=manager._dispatcher,
        seed=seed,
        metrics=manager._metrics,
        leases=manager._leases,
    )
    if first is not None:
        ref.tell(first)  # queued behind the load
    cell.ref = ref
    manager._watch(Watch(name, ref))
    manager._metrics.activations.add(1)
    manager._metrics.active.add(1)
    cell.status = ContextStatus.ACTIVE
    cell.failure = None
    manager._contexts.set_loading(name, ready)
    handle = ContextTracker(cell)
    manager_ref = manager.actor_ref

    def loaded(_: Reply[None]) -> None:
        # In the tracker's thread: a caller is answered at once (one hop fewer on every
        # activation); the manager then forgets the load (and the futures it holds), or
        # answers with the error.
        if ready.exception() is None:
            resolve(reply, handle)
        tell_quietly(manager_ref, Done(partial(_on_ready, manager), (ready, cell, reply)))

    ready.add_done_callback(loaded)


def _on_ready(
    manager: ManagerActor, ready: Reply[None], cell: Cell, reply: Reply[ContextTracker]
) -> None:
    manager._contexts.loaded(cell.name, ready)
    error = ready.exception()
    if error is not None:
        reject(reply, error)
        return
    manager._contexts.publish(cell)  # loaded: the next get_tracker() need not come here
    if not reply.done():  # usually answered from the tracker's thread already
        resolve(reply, ContextTracker(cell))


def stop_tracker(
    manager: ManagerActor,
    name: str,
    error: BaseException,
    reply: Reply[None],
    after: ContextStatus,
    *,
    loaded: bool = True,
) -> None:
    """Stop the tracker of `name` (writing what it has unsaved), then set `after`. Unless
    the tracker never `loaded` its context (it is not stored), switches to the context
    asked for before the stop make it current nowhere."""
    stopping = manager._contexts.stopping(name)
    if stopping is None:
        cell = manager._contexts.cells[name]
        assert cell.ref is not None
        stopping = new_reply()
        manager._contexts.set_stopping(name, stopping)
        ref = cell.ref
        try:
            ref.tell(Stop(stopping, error, force=manager._shutdown.closing))
        except pykka.ActorDeadError:
            # It stopped itself (passivated) and its Passivated is still on the way:
            # there is nothing left to stop, and nothing unsaved (it wrote that first).
            resolve(stopping, None)
        manager._when_done(stopping, partial(_on_stopped, manager, loaded=loaded), cell, ref, after)
    manager._when_done(stopping, manager._pass_on, reply)


def _on_stopped(
    manager: ManagerActor,
    stopping: Reply[None],
    cell: Cell,
    ref: pykka.ActorRef[Any],
    after: ContextStatus,
    *,
    loaded: bool,
) -> None:
    manager._contexts.set_stopping(cell.name, None)
    if stopping.exception() is not None and not manager._shutdown.closing:
        return  # the tracker could not write and keeps running; the caller is told
    if cell.ref is ref:
        cell.ref = None
        cell.status = after
        cell.failure = None
        manager._watch(Unwatch(cell.name, ref))
        manager._metrics.active.add(-1)
    if not loaded or manager._contexts.get(cell.name) is not cell:
        # It never ran (not stored), or was created since and has a new cell: switches to
        # it are not this stop's to cancel.
        return
    manager._restarts.forget(cell.name)
    # A switch to it still under way was asked for before the stop (later calls wait for
    # the stop, see _handle_call): it must not make the stopped context current.
    manager._currents.stopped(cell.name)
