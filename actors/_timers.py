"""Timers: "tell this actor that message after a delay", without blocking any mailbox.

Each delay runs on a daemon `threading.Timer` (see actors/_exit.py: a pending timer never
keeps the process alive), started through `start_timer()`, which copes with Python 3.12
refusing new threads once the interpreter exits: the message then goes at once
(`if_refused="now"`, for what must happen, such as a restart) or not at all
(`if_refused="drop"`, for periodic ticks, which end as the exit hook shuts everything
down). A tell to an actor that stopped meanwhile is dropped.

An actor owns its `Timers` and calls `cancel_all()` when it stops.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Literal

import pykka

from actors._exit import start_timer

__all__ = ["Timers", "tell_quietly"]


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell `ref` `message`, unless it has stopped."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


class Timers:
    """The pending delayed tells of one actor."""

    def __init__(self) -> None:
        self._pending: set[threading.Timer] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def tell_after(
        self,
        delay: float,
        ref: pykka.ActorRef[Any],
        message: Any,
        *,
        if_refused: Literal["now", "drop"] = "now",
    ) -> None:
        """Tell `ref` `message` after `delay` seconds (at once if `delay` <= 0)."""
        if delay <= 0:
            tell_quietly(ref, message)
            return

        def fire() -> None:
            self._pending.discard(timer)
            tell_quietly(ref, message)

        timer = threading.Timer(delay, fire)
        self._pending.add(timer)
        if start_timer(timer):
            return
        self._pending.discard(timer)  # the interpreter is exiting (Python 3.12)
        if if_refused == "now":
            tell_quietly(ref, message)

    def cancel_all(self) -> None:
        """Cancel every delayed tell not made yet."""
        for timer in list(self._pending):
            timer.cancel()
        self._pending.clear()
