"""How a tracker stops: asked to (Stop), deciding to (passivation), or failing; and what it
answers once stopped. Functions of the tracker (`t`), which calls them from its hooks.

A stop is no phase: it is the tracker's `stop_order`, under which the phase goes on handling
what reaches it before Pykka's own stop message (queued behind the requests already there).
Once stopped, whatever is still in the mailbox, or comes later, is answered by
`answer_late()`: refused with the error that says why, or, after a passivation, handed back
to the manager, which starts a new tracker for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from actors._future import Reply, reject, resolve
from actors._messages import Deliver, Passivated, Stop
from actors._stash import refuse
from actors._writer import Written
from storage import ContextError, ShutdownError, UpdateNotAppliedError

if TYPE_CHECKING:
    from actors._tracker import TrackerActor

__all__ = [
    "StopOrder",
    "answer_late",
    "died",
    "fail_all",
    "handle_stop",
    "passivate_if_idle",
    "stopped",
]

logger = logging.getLogger("actors.tracker")


@attrs.define(eq=False)
class StopOrder:
    """Why and how the tracker is stopping (pykka's stop message is queued meanwhile)."""

    reply: Reply[None] | None
    """Resolved once stopped; None for a passivation."""
    passivating: bool
    """Passivating: what comes after the stop is handed back to the manager, not refused."""
    error: ContextError | None = None
    """A forced stop's failed final write, replied once stopped."""


def handle_stop(t: TrackerActor, message: Stop, *, flush: bool) -> None:
    """Write what is unsaved (if `flush`: we hold a State), then stop. If the write
    fails, a Stop that is not forced fails and we keep running, so nothing acknowledged
    is lost."""
    error = t.stop_order.error if t.stop_order is not None else None
    if flush and t.writes.unsaved:
        try:
            t.writes.flush()
        except ContextError as exc:
            if not message.force:
                reject(message.reply, exc)
                return
            logger.error(  # noqa: TRY400 - the traceback adds nothing to exc's text
                "tracker %r stopped with %d unsaved updates: %s",
                t.name,
                t.writes.unsaved,
                exc,
                extra=t.log_fields,
            )
            error = exc  # replied once stopped, so a shutdown never outlives its trackers
    t.failure = message.error
    # A stop asked for outranks a passivation we decided on and have not finished: the
    # stop is answered once we are stopped, and what comes after it is refused with its
    # error rather than handed back to be served by a new tracker.
    t.stop_order = StopOrder(message.reply, passivating=False, error=error)
    # pykka's stop message goes to the back of the inbox: requests already queued are
    # still handled; on_stop() answers anything that arrives after it.
    t.stop()


def passivate_if_idle(t: TrackerActor, idle_since: float) -> None:
    """Stop to free our thread if idle since `idle_since`, with nothing held or unsaved."""
    if t.stash or t.stopping or t.last_request >= idle_since:
        return
    if t.writes.unsaved:
        try:
            t.writes.flush()
        except ContextError:
            return  # stay, and keep the unsaved updates; the next tick tries again
    t.stop_order = StopOrder(None, passivating=True)
    t.stop()  # requests already queued are handled first


def stopped(t: TrackerActor) -> None:
    """Pykka's on_stop(): answer what we hold, then whoever asked for the stop."""
    t.writes.close()
    if t.lease is not None:  # every write is stored: the next owner may go on from here
        t.lease.give()
    order = t.stop_order
    if order is not None and order.passivating:
        # What came in after our stop goes back to the manager, which starts a new
        # tracker for it (see on_late_message); then we say we are gone.
        t._after_stop()
        t.supervisor.tell(Passivated(t.name, t.actor_ref))
        return
    fail_all(t, _refusal(t))
    t._after_stop()  # every queued caller is answered before the stop is
    if order is not None and order.reply is not None:
        if order.error is not None:
            reject(order.reply, order.error)
        resolve(order.reply, None)


def died(t: TrackerActor) -> None:  # pragma: no cover - only on a bug of ours
    """Pykka's on_failure(): a bug of ours stopped the tracker; answer what it held."""
    t.writes.close()
    if t.lease is not None:
        t.lease.give()
    t.failure = t.failure or UpdateNotAppliedError(
        f"tracker of context {t.name!r} died before handling the call"
    )
    fail_all(t, t.failure)


def answer_late(t: TrackerActor, message: Any) -> None:
    """Stopped: answer whoever waits on `message`; passivated, hand it back instead."""
    order = t.stop_order
    if isinstance(message, Written):
        t.writes.abandon(message)
    elif order is not None and order.passivating:
        if isinstance(message, Stop):
            resolve(message.reply, None)  # stopped already
        elif getattr(message, "reply", None) is not None:
            try:
                t.supervisor.tell(Deliver(t.name, message))
            except pykka.ActorDeadError:  # the manager has stopped too
                refuse(message, ShutdownError(f"the manager of {t.name!r} was shut down"))
    elif getattr(message, "reply", None) is not None:
        refuse(message, _refusal(t))


def _refusal(t: TrackerActor) -> BaseException:
    return t.failure or UpdateNotAppliedError(
        f"tracker of context {t.name!r} stopped before handling the call"
    )


def fail_all(t: TrackerActor, error: BaseException) -> None:
    """Answer everything held back: the phase's, the stash and restart waiters."""
    for message in t.phase.held():
        refuse(message, error)
    t.stash.refuse_all(error)
    for waiter in t.restart_waiters:
        reject(waiter, error)
    t.restart_waiters = ()
