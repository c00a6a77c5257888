"""Timers: "tell this actor that message after a delay", without blocking any mailbox.

Each delay is a callback on the actor's `Clock` (actors/_clock.py: one thread per manager for
every delay, or a `ManualClock` a test advances). A tell to an actor that stopped meanwhile
is dropped. An actor owns its `Timers` and calls `cancel_all()` when it stops.
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import pykka

from actors._clock import Clock, Scheduled
from actors._tell import tell_quietly

__all__ = ["Timers", "tell_quietly"]


class Timers:
    """The pending delayed tells of one actor."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._pending: weakref.WeakSet[Scheduled] = weakref.WeakSet()

    def __len__(self) -> int:
        return sum(1 for entry in list(self._pending) if not entry.cancelled)

    def tell_after(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> Scheduled:
        """Tell `ref` `message` after `delay` seconds (at once if `delay` <= 0)."""

        entry = self.clock.call_later(delay, partial(tell_quietly, ref, message))
        # Held weakly: once run (or dropped by a closed clock) nothing else refers to it.
        self._pending.add(entry)
        return entry

    def cancel_all(self) -> None:
        """Cancel every delayed tell not made yet."""
        for entry in list(self._pending):
            entry.cancel()
        self._pending.clear()
