"""A tracker's stash: the messages its current phase does not handle now, kept in order for
a phase that does (Akka's StashManagement).

It is bounded (`TrackerConfig.stash_capacity`), and its overflow policy is to refuse: a
request arriving at a full stash is answered at once with `ContextBusyError` and changes
nothing. A `Stop` is always kept: control messages are never refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from actors._future import reject
from actors._messages import Crash, Stop
from storage import ContextBusyError

__all__ = ["Stash", "busy_error", "refuse"]


def refuse(message: Any, error: BaseException) -> None:
    """Answer a request that will not be handled. A `Crash` also answers its `restarted`
    slot, which would otherwise wait for a restart that will not come."""
    reject(message.reply, error)
    if isinstance(message, Crash):
        reject(message.restarted, error)


def busy_error(name: str, capacity: int) -> ContextBusyError:
    """What a request gets when its tracker already holds `capacity` waiting requests."""
    return ContextBusyError(
        f"context {name!r} already holds {capacity} waiting requests "
        "(TrackerConfig.stash_capacity); this one was not applied"
    )


class Stash:
    """Requests (and Stop) held back, oldest first, at most `capacity` requests."""

    def __init__(self, name: str, capacity: int) -> None:
        self._name = name
        self._capacity = capacity
        self._held: deque[Any] = deque()

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._held)

    def add(self, message: Any) -> bool:
        """Keep `message`; False if it was a request refused because the stash is full."""
        if len(self._held) >= self._capacity and not isinstance(message, Stop):
            refuse(message, busy_error(self._name, self._capacity))
            return False
        self._held.append(message)
        return True

    def put_back(self, messages: list[Any]) -> None:
        """Keep `messages` ahead of everything held, in their order: requests already
        accepted that must run again (their write failed, or the State they ran on was
        dropped), so never refused for a full stash."""
        self._held.extendleft(reversed(messages))

    def pop(self) -> Any:
        """The oldest message held."""
        return self._held.popleft()

    def take_stops(self) -> list[Stop]:
        """Take out the Stops held, leaving the rest in order."""
        stops = [held for held in self._held if isinstance(held, Stop)]
        self._held = deque(held for held in self._held if not isinstance(held, Stop))
        return stops

    def refuse_all(self, error: BaseException) -> None:
        """Answer everything held with `error`, emptying the stash."""
        while self._held:
            refuse(self._held.popleft(), error)
