"""Teardown: how every actor of ours answers what is left in its mailbox once it has stopped.

A stopped actor must leave no caller waiting. Pykka answers what was *asked* of it (a future
per message) with `ActorDeadError`; our messages are *told* and carry their own reply slot,
which only the actor knows how to answer: a request is refused with the error that says why,
a shutdown handshake is resolved, a message for someone else is handed on. So each actor
says what to do with one such message (`on_late_message`), and `answer_mailbox()` applies it
to everything in the mailbox, in order, and is run:

- from `on_stop()`, so that every queued caller is answered before whoever waits for the
  stop (a manager, a shutdown) hears that it is over;
- again once the actor is out of its loop (Pykka's teardown), for what came in meanwhile;
- for a `PooledActor`, also for a message that reaches it later (one that passed the "is it
  alive" check a moment before the stop): the put schedules the stopped actor once more.

`ThreadedActor` is Pykka's `ThreadingActor` with this teardown, on a daemon thread (see
actors/_exit.py); `PooledActor` (actors/_dispatch.py) has it built in.
"""

from __future__ import annotations

import threading
from itertools import count
from typing import Any

import pykka
from pykka import messages

from actors._exit import start_without_signals

__all__ = ["LateMessages", "ThreadedActor", "answer_mailbox"]

_names = count()


class LateMessages:
    """What an actor does with a message told to it after it stopped (a mixin)."""

    def on_late_message(self, message: Any) -> None:
        """Answer whoever waits on `message`; the default drops it (no reply slot)."""


def answer_mailbox(actor: pykka.Actor) -> None:
    """Empty `actor`'s mailbox: asks are answered as Pykka does (its own stop with None,
    others with `ActorDeadError`), tells go to `actor.on_late_message()`."""
    inbox = actor.actor_inbox
    late = getattr(actor, "on_late_message", None)
    while not inbox.empty():
        envelope = inbox.get()
        if envelope.reply_to is not None:
            if isinstance(envelope.message, messages._ActorStop):
                envelope.reply_to.set(None)
            else:
                error = pykka.ActorDeadError(f"{actor.actor_ref} stopped before handling it")
                envelope.reply_to.set_exception(exc_info=(type(error), error, None))
        elif late is not None:
            late(envelope.message)


class ThreadedActor(LateMessages, pykka.ThreadingActor):
    """A Pykka `ThreadingActor` on a daemon thread whose teardown answers every message
    left in its mailbox (see the module docstring)."""

    use_daemon_thread = True  # never keeps the process alive: see actors/_exit.py

    def _start_actor_loop(self) -> None:
        # Pykka's, with the process's signals blocked in the new thread (actors/_exit.py).
        thread = threading.Thread(
            target=self._actor_loop, name=f"{type(self).__name__}-{next(_names)}", daemon=True
        )
        start_without_signals(thread)

    def _actor_loop_teardown(self) -> None:
        answer_mailbox(self)
