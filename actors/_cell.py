"""Cell: the manager's published view of one context, which handles read to find its actor.

Only the manager actor writes a cell; handles only read it. Reading one attribute is atomic
in Python, so this single-writer publication needs no lock, the way an Akka ActorRef
resolves to whichever incarnation of an actor is current.
"""

from __future__ import annotations

import enum
from typing import Any

import pykka

from actors._changes import Topic
from actors._dispatch import post
from actors._future import Reply, reject
from actors._messages import Deliver
from storage import ContextFailedError, ContextInactiveError, ContextNotFoundError, ShutdownError

__all__ = ["Cell", "ContextStatus"]


class ContextStatus(enum.Enum):
    """What a context is, as far as its manager knows."""

    ACTIVE = "active"
    """A tracker serves it."""
    INACTIVE = "inactive"
    """It is stored but no tracker serves it."""
    NONEXISTENT = "nonexistent"
    """It is not in the store."""
    FAILED = "failed"
    """Its tracker hit the restart limit; deactivate and activate it to try again."""


class Cell:
    """Where a context's messages go right now."""

    __slots__ = (
        "changes",
        "closed",
        "failure",
        "manager",
        "name",
        "ref",
        "status",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        timeout: float,
        manager: pykka.ActorRef[Any],
        hub: pykka.ActorRef[Any] | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.manager = manager
        self.ref: pykka.ActorRef[Any] | None = None
        self.status = ContextStatus.INACTIVE
        self.failure: BaseException | None = None
        self.closed = False
        self.changes = Topic(name, hub)
        """Where its trackers publish changes: one per context, outliving each tracker."""

    @property
    def passive(self) -> bool:
        """ACTIVE, but its idle tracker was stopped: the manager starts it on the next call."""
        return self.status is ContextStatus.ACTIVE and self.ref is None

    def send(self, message: Any, reply: Reply[Any]) -> None:
        """Deliver `message` to the context's tracker, or answer `reply` with why not."""
        ref = self.ref
        if ref is not None:
            # Even if it has just stopped: a stopped tracker refuses what reaches it, or, if it
            # passivated, hands it back to the manager, in mailbox order (see `post`).
            post(ref, message)
            return
        if self.status is ContextStatus.ACTIVE and not self.closed:
            # Passivated: the manager starts the tracker again and hands the message on.
            try:
                self.manager.tell(Deliver(self.name, message))
            except pykka.ActorDeadError:
                pass
            else:
                return
        reject(reply, self.unavailable())

    def unavailable(self) -> BaseException:
        """The error for a call that finds no tracker to serve it."""
        if self.closed:
            return ShutdownError(f"the manager of context {self.name!r} was shut down")
        if self.status is ContextStatus.NONEXISTENT:
            return ContextNotFoundError(self.name)
        if self.status is ContextStatus.FAILED:
            return self.failure or ContextFailedError(f"context {self.name!r} failed")
        return ContextInactiveError(self.name)
