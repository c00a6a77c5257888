"""Currents: each adapter's current context, and the rule that the latest switch wins.

Switches complete out of order when one must start a tracker and a later one need not; the
outcome must be that of the requests in order: the latest switch that succeeded sets the
current context, and one that failed changes nothing. So each switch takes a ticket when it
is asked for (`begin`), and when it completes (`finish`) it sets the current context only if
no later switch has taken effect since. A context stopped while a switch to it was under way
(`stopped`) was current until then at most: the switch sets no current context.

Only the manager actor calls this; it holds no lock and starts no thread, and changes are
published to each adapter's `Topic` (subscriptions to its switches).
"""

from __future__ import annotations

from collections.abc import Callable

from actors._changes import CurrentContextChange, Topic

__all__ = ["Currents"]


class Currents:
    """The current context of each adapter (by id) and the switches under way."""

    def __init__(self) -> None:
        self._currents: dict[int, str | None] = {}
        self._tickets: dict[int, int] = {}
        """The last switch ticket issued per adapter."""
        self._applied: dict[int, int] = {}
        """The last ticket per adapter whose switch took effect."""
        self._under_way: dict[tuple[int, int], str] = {}
        """The switches under way, by (adapter, ticket): their target context."""
        self._cleared: set[tuple[int, int]] = set()
        """Switches under way whose target stopped since they were asked for."""
        self._topics: dict[int, Topic] = {}

    def sizes(self) -> dict[str, int]:
        """How much is kept, table by table (for leak checks)."""
        return {
            "currents": len(self._currents),
            "tickets": len(self._tickets),
            "applied": len(self._applied),
            "under way": len(self._under_way),
            "cleared": len(self._cleared),
            "adapter topics": len(self._topics),
        }

    def current(self, adapter: int) -> str | None:
        """The adapter's current context, or None."""
        return self._currents.get(adapter)

    def begin(self, adapter: int, name: str) -> int:
        """A switch of `adapter` to `name` is asked for: its ticket, in request order."""
        ticket = self._tickets.get(adapter, 0) + 1
        self._tickets[adapter] = ticket
        self._under_way[adapter, ticket] = name
        return ticket

    def finish(self, adapter: int, ticket: int, succeeded: bool) -> None:
        """Switch `ticket` of `adapter` has completed: make its target current if it
        succeeded and no later switch took effect (none current if the target stopped
        meanwhile). Nothing is kept for an adapter forgotten since."""
        name = self._under_way.pop((adapter, ticket))
        cleared = (adapter, ticket) in self._cleared
        self._cleared.discard((adapter, ticket))
        if adapter not in self._tickets:  # the adapter was dropped meanwhile
            return
        if succeeded and ticket > self._applied.get(adapter, 0):
            self._applied[adapter] = ticket
            self._set(adapter, None if cleared else name)

    def forget_context(self, name: str) -> None:
        """`name` is current in no adapter any more (deactivated or deleted)."""
        for adapter, current in list(self._currents.items()):
            if current == name:
                self._set(adapter, None)

    def stopped(self, name: str) -> None:
        """The tracker of `name` stopped: it is current nowhere, and the switches to it
        still under way (asked for before the stop) make it current nowhere either."""
        self.forget_context(name)
        self._cleared.update(key for key, target in self._under_way.items() if target == name)

    def topic(self, adapter: int, make: Callable[[], Topic]) -> Topic:
        """The topic the adapter's switches are published to, made by `make()` if none."""
        topic = self._topics.get(adapter)
        if topic is None:
            topic = self._topics[adapter] = make()
        return topic

    def forget_adapter(self, adapter: int) -> Topic | None:
        """The adapter is gone: drop all kept for it; its topic, if any, to be closed."""
        self._currents.pop(adapter, None)
        self._tickets.pop(adapter, None)
        self._applied.pop(adapter, None)
        return self._topics.pop(adapter, None)

    def _set(self, adapter: int, name: str | None) -> None:
        old = self._currents.get(adapter)
        self._currents[adapter] = name
        topic = self._topics.get(adapter)
        if topic is not None and topic.live and old != name:
            topic.publish(CurrentContextChange(old, name))
