"""StoreWorker: the actor that does a manager's store I/O, so the manager never waits on it.

A store call can take as long as the store's own timeouts (SQLite's `busy_timeout` while
another process holds the write lock, Redis' `socket_timeout` while the server is away). Made
in the manager's thread, it would hold up every call queued behind it, including those that
need no I/O at all (the status or the handle of a context already running). The manager
hands each store call to this actor instead, and carries on with the result when it comes
back as a `Done` message. One worker runs them one at a time, in the order the manager sent
them, so calls about one context meet the store in the order they were made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from actors._future import Reply, reject, resolve
from actors._teardown import ThreadedActor, answer_mailbox
from storage import ShutdownError

__all__ = ["CloseIO", "RunIO", "StoreWorker"]


@attrs.frozen
class RunIO:
    """Run `work()` (a store call) and answer `reply` with its result or error."""

    work: Callable[[], Any]
    reply: Reply[Any]


@attrs.frozen
class CloseIO:
    """Stop once every store call sent before this one is answered; then answer `reply`."""

    reply: Reply[None]


class StoreWorker(ThreadedActor):
    """Runs a manager's store calls one at a time, in order; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._closed: Reply[None] | None = None

    def on_receive(self, message: Any) -> None:
        if isinstance(message, RunIO):
            try:
                result = message.work()
            except Exception as exc:  # noqa: BLE001 - the manager decides what it means
                reject(message.reply, exc)
            else:
                resolve(message.reply, result)
        elif isinstance(message, CloseIO):
            self._closed = message.reply
            self.stop()

    def on_stop(self) -> None:
        answer_mailbox(self)  # whatever came after CloseIO (or a stop from outside) is not run
        if self._closed is not None:
            resolve(self._closed, None)

    def on_late_message(self, message: Any) -> None:
        if isinstance(message, RunIO):
            reject(message.reply, ShutdownError("the context manager was shut down"))
        elif isinstance(message, CloseIO):
            resolve(message.reply, None)
