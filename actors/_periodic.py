"""An actor that looks at something every so often, on its manager's clock, until closed:
the shape the watcher (other processes' writes) and the lease keeper (renewals and hand-over
requests) share."""

from __future__ import annotations

from typing import Any

import attrs

from actors._clock import Clock
from actors._future import Reply, resolve
from actors._teardown import ThreadedActor, answer_mailbox
from actors._timers import Timers

__all__ = ["Close", "PeriodicActor"]


@attrs.frozen
class Close:
    """Stop looking; `reply` resolves once the actor has stopped."""

    reply: Reply[None]


@attrs.frozen
class _Look:
    """The actor's timer: time to look again."""


class PeriodicActor(ThreadedActor):
    """Calls `look()` every `interval` seconds of `clock`, between its other messages (for
    `receive()`), until told `Close`."""

    def __init__(self, clock: Clock, interval: float) -> None:
        super().__init__()
        self._clock = clock
        self._interval = interval
        self._timers = Timers(clock)
        self._closed: Reply[None] | None = None

    def look(self) -> None:
        """What to do every `interval` seconds."""
        raise NotImplementedError

    def receive(self, message: Any) -> None:
        """Handle one of the subclass's own messages."""

    def on_start(self) -> None:
        self._arm()

    def on_stop(self) -> None:
        self._timers.cancel_all()
        answer_mailbox(self)
        if self._closed is not None:
            resolve(self._closed, None)

    def on_late_message(self, message: Any) -> None:
        if isinstance(message, Close):
            resolve(message.reply, None)  # closed already

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Look):
            if self._closed is None:
                self.look()
                self._arm()
        elif isinstance(message, Close):
            self._closed = message.reply
            self.stop()
        else:
            self.receive(message)

    def _arm(self) -> None:
        # Refused while the interpreter exits (Python 3.12): looking ends, shutdown is near.
        self._timers.tell_after(self._interval, self.actor_ref, _Look())
