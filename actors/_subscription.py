"""The subscription: one subscriber's handle on a context's changes or an adapter's switches,
and the outlet through which the hub hands it batches (a callback runner or an iterator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import pykka

from actors._config import SubscriptionConfig
from actors._future import ContextFuture, Reply, new_reply, resolve
from actors._subscription_messages import Unsubscribe
from actors._tell import tell_quietly

__all__ = ["Outlet", "Registrar", "Subscription"]

T = TypeVar("T")

Registrar = Callable[["Subscription[Any]", Reply[Any]], None]
"""Sends a new subscription's `Register` on its way; answers the reply itself on failure."""


class Outlet(Protocol):
    def offer(self, items: list[Any], *, end: bool) -> bool:
        """Hand `items` to the subscriber (never waits); False if it is gone."""


class Subscription(Generic[T]):
    """One subscriber's subscription: to a context's changes, or an adapter's switches.

    Every attribute is safe to read from any thread. The subscription ends on
    `unsubscribe()`, when its context is deleted, when the manager shuts down, and on
    overflow under `Overflow.UNSUBSCRIBE`; `ended()` tells when.
    """

    def __init__(self, name: str, config: SubscriptionConfig, timeout: float) -> None:
        self.name = name
        """The context subscribed to, or "adapter #n"."""
        self.config = config
        """Its buffer size and overflow policy."""
        self.error: BaseException | None = None
        """Why the subscription was ended, if not cleanly (`SynchronizationError` on
        overflow under `Overflow.UNSUBSCRIBE`)."""
        self.dropped = 0
        """Changes dropped under `Overflow.DROP_OLDEST` so far."""
        self.failures = 0
        """Exceptions the callback raised so far (each is logged; delivery goes on)."""
        self.last_failure: Exception | None = None
        """The last exception the callback raised."""
        self._timeout = timeout
        # Written by the hub when it registers us, and read by unsubscribe(): the hub sets
        # `_hub` before it reads `_cancelled`, unsubscribe() sets `_cancelled` before it reads
        # `_hub`, so an unsubscribe() racing the registration is seen by one side or both.
        self._hub: pykka.ActorRef[Any] | None = None
        self._cancelled = False
        self._ended: Reply[None] = new_reply()
        self._outlet: Outlet

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Subscription {self.name!r} {state}>"

    @property
    def active(self) -> bool:
        """Whether changes may still be delivered."""
        return not self._ended.done()

    def unsubscribe(self) -> ContextFuture[None]:
        """End the subscription; what it buffers is dropped. Resolves once no callback runs
        and none will, or once an iterator will yield nothing more. Idempotent.

        From inside the subscription's own callback, do not wait on the future: it resolves
        only after that callback returns.
        """
        self._cancelled = True
        hub = self._hub
        if hub is not None:
            tell_quietly(hub, Unsubscribe(self))  # stopped: it ended us already
        return self.ended()

    def ended(self) -> ContextFuture[None]:
        """A future that resolves once the subscription has ended and delivers nothing more."""
        return ContextFuture(self._ended, timeout=self._timeout, what=f"{self!r}.ended()")

    def _finish(self, items: list[Any]) -> None:
        """End delivery after `items`, or at once if the subscriber cannot take them."""
        if not self._outlet.offer(items, end=True):
            resolve(self._ended, None)
