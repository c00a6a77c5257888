"""`manager.stats()`: what a running manager is doing, context by context.

The manager knows each context's status, its restarts within the supervisor's window and
the last error that failed its tracker. What only the tracker knows (its version, what it
has not written yet, how much waits in its mailbox) it is asked for with `Describe`, which
it answers from its own thread when it reaches the message. A tracker that has not answered
within `STATS_WAIT` seconds (stuck in a store call, or with a long queue) is reported
without those figures (`answered=False`), so that `stats()` never waits on the slowest.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from actors._cell import ContextStatus
from actors._future import Reply, new_reply, resolve
from actors._requests import LATER, GetStats

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = ["STATS_WAIT", "ContextStats", "Describe", "TrackerFigures", "stats"]

STATS_WAIT = 1.0
"""Seconds `stats()` waits for each running tracker to describe itself."""


@attrs.frozen
class Describe:
    """Ask a tracker for its `TrackerFigures`."""

    reply: Reply[TrackerFigures]


@attrs.frozen
class TrackerFigures:
    """What a tracker says about itself (answer to `Describe`)."""

    phase: str
    version: int | None
    """The version of its State; None while it holds none (loading, suspended)."""
    stored_version: int
    unsaved: int
    """Updates acknowledged and not written yet (batched policy; 0 under durable)."""
    waiting: int
    """Requests behind the current one: its mailbox, its stash and writes in flight."""
    lease_epoch: int | None = None
    """The epoch of the lease it holds (`TrackerConfig.leases`); None: none held."""


@attrs.frozen
class ContextStats:
    """One context as its manager sees it (a value: nothing in it changes afterwards)."""

    name: str
    status: ContextStatus
    running: bool
    """A tracker runs for it now (an ACTIVE context may be passivated)."""
    answered: bool
    """The tracker described itself in time; if False the fields below it fills are None."""
    phase: str | None
    version: int | None
    stored_version: int | None
    unsaved: int | None
    waiting: int | None
    lease_epoch: int | None
    """The epoch of the context's lease its tracker holds here; None: none held (or no
    answer, or leases off)."""
    restarts: int
    """Restarts of its tracker within the supervisor's window (`within_seconds`)."""
    last_error: str | None
    """The last error that failed its tracker (repr), if any since it was activated."""


def stats(manager: ManagerActor, request: GetStats) -> Any:
    """Answer `request` with a `ContextStats` per known context, sorted by name, once every
    running tracker has described itself or `STATS_WAIT` seconds have passed."""
    cells = sorted(manager._contexts.cells.values(), key=lambda cell: cell.name)
    asked: dict[str, Reply[TrackerFigures]] = {}
    for cell in cells:
        if cell.ref is not None:
            described: Reply[TrackerFigures] = new_reply()
            try:
                cell.ref.tell(Describe(described))
            except pykka.ActorDeadError:
                continue  # stopped meanwhile: reported from the cell alone
            asked[cell.name] = described
    deadline: Reply[None] = new_reply()
    if asked:
        manager._clock.call_later(STATS_WAIT, partial(resolve, deadline, None))
    else:
        resolve(deadline, None)
    remaining = [len(asked)]

    def one_answered(_: Reply[Any]) -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            resolve(deadline, None)

    for described in asked.values():
        described.add_done_callback(one_answered)

    def report(_: Reply[None]) -> None:
        result = []
        for cell in cells:
            figures = _figures(asked.get(cell.name))
            result.append(
                ContextStats(
                    name=cell.name,
                    status=cell.status,
                    running=cell.name in asked,
                    answered=figures is not None,
                    phase=figures.phase if figures else None,
                    version=figures.version if figures else None,
                    stored_version=figures.stored_version if figures else None,
                    unsaved=figures.unsaved if figures else None,
                    waiting=figures.waiting if figures else None,
                    lease_epoch=figures.lease_epoch if figures else None,
                    restarts=manager._restarts.recent(cell.name),
                    last_error=manager._contexts.last_errors.get(cell.name),
                )
            )
        resolve(request.reply, result)

    manager._when_done(deadline, report)
    return LATER


def _figures(described: Reply[TrackerFigures] | None) -> TrackerFigures | None:
    if described is None or not described.done() or described.exception() is not None:
        return None
    return described.result()
