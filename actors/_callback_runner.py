"""The callback runner: an actor per `subscribe(callback)` that calls the callback, in its own
thread, with each batch the hub hands it, and asks the hub for the next."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import pykka

from actors._future import resolve
from actors._logs import context_fields
from actors._subscription import Subscription
from actors._subscription_messages import Demand
from actors._teardown import ThreadedActor

__all__ = ["Batch", "CallbackRunner", "RunnerOutlet"]

logger = logging.getLogger("actors.subscriptions")


@attrs.frozen
class Batch:
    """To a callback runner: changes to deliver, and whether they are the last."""

    items: list[Any]
    end: bool


class RunnerOutlet:
    """Hands batches to a `CallbackRunner`."""

    def __init__(self, runner: pykka.ActorRef[Any]) -> None:
        self._runner = runner

    def offer(self, items: list[Any], *, end: bool) -> bool:
        try:
            self._runner.tell(Batch(items, end))
        except pykka.ActorDeadError:
            return False
        return True


class CallbackRunner(ThreadedActor):
    """Calls one subscription's callback, in its own thread, with each item it is handed.

    A daemon thread (`ThreadedActor`): a callback that blocks must not keep the process alive
    after shutdown(). The exit hook waits a bounded time for it to deliver what it was handed.
    """

    def __init__(self, subscription: Subscription[Any], callback: Callable[[Any], object]) -> None:
        super().__init__()
        self._subscription = subscription
        self._callback = callback

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, Batch):
            return
        subscription = self._subscription
        for item in message.items:
            if subscription._cancelled:
                break  # unsubscribed: the hub's end follows
            try:
                self._callback(item)
            except Exception as exc:  # reported on the subscription; delivery goes on
                subscription.failures += 1
                subscription.last_failure = exc
                logger.exception(
                    "subscription to %r: callback failed",
                    subscription.name,
                    extra=context_fields(subscription.name, getattr(item, "version", None)),
                )
        if message.end:
            self.stop()  # on_stop says we have ended
        elif not subscription._cancelled:
            hub = subscription._hub
            assert hub is not None  # items came, so the hub has registered us
            try:
                hub.tell(Demand(subscription))
            except pykka.ActorDeadError:
                self.stop()

    def on_stop(self) -> None:
        resolve(self._subscription._ended, None)

    def on_failure(self, *_: object) -> None:  # a callback raised a BaseException
        resolve(self._subscription._ended, None)

    def on_late_message(self, message: Any) -> None:
        """A batch that came after the stop is dropped: the subscription has ended, and
        nobody waits on a batch."""
