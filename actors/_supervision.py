"""The manager's supervision: restarts of failed trackers and of the group writer (by one
`RestartPolicy`), and passivation of idle trackers, with the requests that find one passive.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pykka

from actors import _context_ops as context_ops
from actors._cell import Cell, ContextStatus
from actors._future import Reply, new_reply, reject
from actors._logs import context_fields
from actors._messages import (
    Deliver,
    GiveUp,
    Passivate,
    Passivated,
    Restart,
    Tick,
    TrackerFailed,
    UseWriter,
    WriterFailed,
)
from actors._tell import tell_quietly
from actors._watcher import Unwatch
from actors._writer import WriterActor
from storage import ContextFailedError, ContextNotFoundError, RecoveryError, ShutdownError

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = ["deliver", "on_passivated", "on_tracker_failed", "on_writer_failed", "passivate_idle"]

logger = logging.getLogger("actors.manager")

_WRITER = object()
"""The group writer's key in the restart history (trackers are keyed by context name)."""


def on_writer_failed(manager: ManagerActor, report: WriterFailed) -> None:
    """Start another group writer (it holds nothing to reload) and point every running
    tracker at it, within the supervisor's restart limits; past them, trackers commit
    their own writes (still durable, without group commit)."""
    if report.writer is not manager._writer or manager._shutdown.closing:
        return
    # The writer holds nothing to reload: it is restarted at once, whatever the backoff.
    decision = manager._restarts.failed(_WRITER)
    if not decision.restart:
        logger.error(
            "the group writer failed %d times within %s s: trackers commit their own "
            "writes from now on",
            decision.failures,
            manager._config.supervisor.within_seconds,
        )
        manager._writer = None
    else:
        logger.warning("the group writer failed; started another")
        manager._writer = WriterActor.start(
            manager._dispatcher, manager._store, manager.actor_ref, manager._metrics
        )
    for cell in manager._contexts.cells.values():
        if cell.ref is not None:
            tell_quietly(cell.ref, UseWriter(manager._writer))


def on_tracker_failed(manager: ManagerActor, report: TrackerFailed) -> None:
    cell = manager._contexts.get(report.name)
    ref = cell.ref if cell is not None else None
    if cell is None or ref is None or ref is not report.tracker or manager._shutdown.closing:
        return  # a report from a tracker already replaced or being shut down
    manager._contexts.last_errors[report.name] = repr(report.error)
    if isinstance(report.error, ContextFailedError):
        # Nothing intact to load: restarting cannot help.
        manager._metrics.give_ups.add(1)
        _give_up(manager, cell, ref, report.error)
        return
    if isinstance(report.error, ContextNotFoundError):
        # Not in the store: never created (an activation asks the load, not the store
        # first), or deleted by another process. Its callers get the error; it stops.
        tell_quietly(ref, GiveUp(report.error))
        manager._contexts.unpublish(report.name)
        cell.status = ContextStatus.NONEXISTENT  # what status() says while it stops
        stopped = new_reply()
        context_ops.stop_tracker(
            manager, report.name, report.error, stopped, ContextStatus.NONEXISTENT, loaded=False
        )
        manager._when_done(stopped, lambda _: context_ops.forget_if_gone(manager, report.name))
        return
    decision = manager._restarts.failed(report.name)
    if not decision.restart:
        error = ContextFailedError(
            f"context {report.name!r} failed {decision.failures} times within "
            f"{manager._config.supervisor.within_seconds} s and will not be restarted; last "
            f"error: {report.error!r}"
        )
        error.__cause__ = report.error
        manager._metrics.give_ups.add(1)
        _give_up(manager, cell, ref, error)
        return
    manager._metrics.restarts.add(1)
    logger.warning(
        "restarting tracker %r in %.3f s after %r",
        report.name,
        decision.delay,
        report.error,
        extra=context_fields(report.name),
    )
    # At once if the interpreter exits and starts no timer thread (Python 3.12); the
    # tracker may have stopped since it failed: a tell to it must not kill the manager.
    manager._timers.tell_after(decision.delay, ref, Restart())


def _give_up(
    manager: ManagerActor, cell: Cell, ref: pykka.ActorRef[Any], error: RecoveryError
) -> None:
    logger.error("%s", error, extra=context_fields(cell.name))
    manager._contexts.unpublish(cell.name)  # get_tracker() asks the manager: it fails
    cell.status = ContextStatus.FAILED
    cell.failure = error
    tell_quietly(ref, GiveUp(error))  # stopping anyway: _on_stopped follows


# -- passivation -----------------------------------------------------------------------------


def passivate_idle(manager: ManagerActor) -> None:
    """Ask every running tracker idle for `passivate_after` seconds to stop."""
    period = manager._config.passivate_after
    if period is None or manager._shutdown.closing:
        return
    idle_since = manager._clock.now() - period
    for name, cell in manager._contexts.cells.items():
        ref = cell.ref
        if (
            ref is not None
            and cell.status is ContextStatus.ACTIVE
            and manager._contexts.stopping(name) is None
        ):
            tell_quietly(ref, Passivate(idle_since))
    manager._timers.tell_after(period / 2, manager.actor_ref, Tick())


def on_passivated(manager: ManagerActor, message: Passivated) -> None:
    cell = manager._contexts.get(message.name)
    if cell is not None and cell.ref is message.tracker:
        manager._watch(Unwatch(message.name, message.tracker))
        cell.ref = None  # passive now: status stays ACTIVE
        manager._metrics.passivations.add(1)
        manager._metrics.active.add(-1)
        logger.debug("passivated idle tracker %r", message.name, extra=context_fields(message.name))


def deliver(manager: ManagerActor, message: Deliver) -> None:
    """Hand a request on to its context's tracker, starting the tracker if passivated."""
    request, cell = message.message, manager._contexts.get(message.name)
    reply: Reply[Any] = request.reply
    if cell is None or cell.status is not ContextStatus.ACTIVE or manager._shutdown.closing:
        reject(reply, cell.unavailable() if cell is not None else ShutdownError("closed"))
        return
    if cell.ref is not None:
        try:
            cell.ref.tell(request)
        except pykka.ActorDeadError:
            cell.ref = None  # it stopped itself and its Passivated is still on the way
        else:
            return
    try:
        # Told before handles see the new tracker, so their later calls come after it.
        context_ops.activate(manager, message.name, new_reply(), first=request)
    except Exception as exc:  # noqa: BLE001 - answered to the caller
        reject(reply, exc)
