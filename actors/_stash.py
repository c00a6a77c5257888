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


_EMPTY: tuple[Any, ...] = ()


class Stash:
    """Requests (and Stop) held back, oldest first, at most `capacity` requests."""

    __slots__ = ("_capacity", "_held", "_name")

    def __init__(self, name: str, capacity: int) -> None:
        self._name = name
        self._capacity = capacity
        # A deque only while something is held: most trackers hold nothing most of the
        # time, and an empty deque per running context is one more object for the garbage
        # collector to walk in every full collection.
        self._held: deque[Any] | tuple[Any, ...] = _EMPTY

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._held)

    def add(self, message: Any) -> bool:
        """Keep `message`; False if it was a request refused because the stash is full."""
        if len(self._held) >= self._capacity and not isinstance(message, Stop):
            refuse(message, busy_error(self._name, self._capacity))
            return False
        held = self._held
        if isinstance(held, deque):
            held.append(message)
        else:
            self._held = deque((message,))
        return True

    def put_back(self, messages: list[Any]) -> None:
        """Keep `messages` ahead of everything held, in their order: requests already
        accepted that must run again (their write failed, or the State they ran on was
        dropped), so never refused for a full stash."""
        if messages:
            self._held = deque([*messages, *self._held])

    def pop(self) -> Any:
        """The oldest message held."""
        held = self._held
        assert isinstance(held, deque), "pop() from an empty stash"
        message = held.popleft()
        if not held:
            self._held = _EMPTY
        return message

    def take_stops(self) -> list[Stop]:
        """Take out the Stops held, leaving the rest in order."""
        stops = [held for held in self._held if isinstance(held, Stop)]
        rest = [held for held in self._held if not isinstance(held, Stop)]
        self._held = deque(rest) if rest else _EMPTY
        return stops

    def refuse_all(self, error: BaseException) -> None:
        """Answer everything held with `error`, emptying the stash."""
        while self._held:  # what refusing adds is refused too
            held, self._held = self._held, _EMPTY
            for message in held:
                refuse(message, error)
