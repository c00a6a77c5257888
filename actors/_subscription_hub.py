"""The subscription hub: the actor that holds one manager's subscriptions and their buffers,
and hands subscribers what trackers and the manager publish.

```
TrackerActor ─Publish(change)─▶ SubscriptionHub  ─batch─▶ callback runner (own thread)
(tell, once stored)             (one per manager) ◀─Demand─┘
ManagerActor ─Publish(switch)─▶ per subscription: ─batch─▶ ChangeStream (call_soon_threadsafe)
                                a bounded buffer  ◀─Demand─┘
```

Nothing here takes a lock. The hub owns every subscription's buffer and is the only thread
that touches it. A subscriber pulls: the hub hands over a batch only when the subscriber
asked for one (a new subscription has asked), so while a subscriber is busy its changes
wait in the hub's bounded buffer, where the overflow policy applies, and neither the hub
nor any tracker ever waits on a subscriber.

Subscriptions live in the hub, keyed by the context's `Topic`, which the manager keeps in the
context's `Cell`: they outlive tracker restarts, passivation and deactivation, and end on
`unsubscribe()`, on deletion of the context and on shutdown.

The other parts: the `Subscription` handle (actors/_subscription.py), the hub's messages
(actors/_subscription_messages.py), the callback runner (actors/_callback_runner.py), the
async iterator (actors/_change_stream.py), and `subscribe()`'s entry points
(actors/_subscribe.py).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from actors._callback_runner import RunnerOutlet
from actors._cell import ContextStatus
from actors._changes import Publish, Topic
from actors._config import Overflow
from actors._exit import track_subscription
from actors._future import Reply, reject, resolve
from actors._logs import context_fields
from actors._messages import Wake
from actors._metrics import NO_METRICS, Instruments
from actors._subscription import Subscription
from actors._subscription_messages import CloseHub, CloseTopic, Demand, Register, Unsubscribe
from actors._teardown import ThreadedActor, answer_mailbox
from actors._tell import tell_quietly
from storage import ShutdownError, SynchronizationError

__all__ = ["SubscriptionHub"]

logger = logging.getLogger("actors.subscriptions")


@attrs.define(eq=False)
class _Entry:
    """The hub's record of one subscription: its buffer and whether it asked for more."""

    subscription: Subscription[Any]
    topic: Topic
    buffer: deque[Any] = attrs.field(factory=deque)
    wanting: bool = True  # a new subscriber takes the first change at once
    gap: tuple[Any, Any, int] | None = None  # first and last dropped before buffer[0], count


class SubscriptionHub(ThreadedActor):
    """Holds the subscriptions of one manager's contexts and adapters, and their buffers.

    `exit_timeout` is its manager's: how long the exit hook lets a callback finish."""

    def __init__(self, exit_timeout: float, metrics: Instruments = NO_METRICS) -> None:
        super().__init__()
        self._exit_timeout = exit_timeout
        self._metrics = metrics
        self._topics: dict[Topic, list[_Entry]] = {}
        self._entries: dict[Subscription[Any], _Entry] = {}
        self._closing: Reply[None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            Publish: self._on_publish,
            Demand: self._on_demand,
            Register: self._on_register,
            Unsubscribe: self._on_unsubscribe,
            CloseTopic: self._on_close_topic,
            CloseHub: self._on_close_hub,
        }

    def on_receive(self, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)

    def on_stop(self) -> None:
        for entry in list(self._entries.values()):
            self._end(entry, deliver=True)
        answer_mailbox(self)
        if self._closing is not None:
            resolve(self._closing, None)

    def on_late_message(self, message: Any) -> None:
        if isinstance(message, Register):
            reject(message.reply, ShutdownError("the context manager was shut down"))
        elif isinstance(message, CloseHub):
            resolve(message.reply, None)  # closed already

    def _on_register(self, message: Register) -> None:
        subscription = message.subscription
        subscription._hub = self.actor_ref  # before reading _cancelled: see Subscription
        cell = message.cell
        if self._closing is not None:
            reject(message.reply, ShutdownError("the context manager was shut down"))
            return
        if cell is not None and (cell.closed or cell.status is ContextStatus.NONEXISTENT):
            reject(message.reply, cell.unavailable())
            return
        entry = _Entry(subscription, message.topic)
        self._entries[subscription] = entry
        self._topics.setdefault(message.topic, []).append(entry)
        message.topic.hub = self.actor_ref
        message.topic.live = True
        if isinstance(subscription._outlet, RunnerOutlet):
            # At exit, its callback may finish what it was handed, within the exit timeout.
            track_subscription(subscription, self._exit_timeout)
        resolve(message.reply, subscription)
        tracker = cell.ref if cell is not None else None
        if tracker is not None:
            # A write in flight may have been sent when nobody listened (so its tracker
            # would settle it only with its next message): have it publish now.
            tell_quietly(tracker, Wake())
        if subscription._cancelled:
            self._end(entry, deliver=False)

    def _on_publish(self, message: Publish) -> None:
        entries = self._topics.get(message.topic)
        if not entries:
            return
        for index, entry in enumerate(list(entries)):
            # The publisher made one copy; every further subscriber gets one of its own.
            self._push(entry, message.item if index == 0 else message.item.copy())

    def _push(self, entry: _Entry, item: Any) -> None:
        if entry.wanting:
            entry.wanting = False
            if not entry.subscription._outlet.offer([item], end=False):
                self._gone(entry)
            return
        subscription = entry.subscription
        config = subscription.config
        if len(entry.buffer) < config.buffer_size:
            entry.buffer.append(item)
            return
        if config.overflow is Overflow.UNSUBSCRIBE:
            subscription.error = SynchronizationError(
                f"subscription to {subscription.name!r} fell {config.buffer_size} changes "
                "behind and was ended (overflow policy UNSUBSCRIBE)"
            )
            logger.warning("%s", subscription.error, extra=context_fields(subscription.name))
            self._end(entry, deliver=True)
            return
        dropped = entry.buffer.popleft()
        first, _, count = entry.gap or (dropped, dropped, 0)
        entry.gap = first, dropped, count + 1
        subscription.dropped += 1
        self._metrics.drops.add(1)
        entry.buffer.append(item)

    def _on_demand(self, message: Demand) -> None:
        entry = self._entries.get(message.subscription)
        if entry is None:
            return  # ended meanwhile
        if not entry.buffer:
            entry.wanting = True
        elif not entry.subscription._outlet.offer(self._take(entry), end=False):
            self._gone(entry)

    def _on_unsubscribe(self, message: Unsubscribe) -> None:
        entry = self._entries.get(message.subscription)
        if entry is not None:
            self._end(entry, deliver=False)

    def _on_close_topic(self, message: CloseTopic) -> None:
        for entry in list(self._topics.get(message.topic, ())):
            self._end(entry, deliver=True)

    def _on_close_hub(self, message: CloseHub) -> None:
        self._closing = message.reply
        self.stop()  # on_stop ends every subscription, then answers

    @staticmethod
    def _take(entry: _Entry) -> list[Any]:
        """Empty the buffer into a batch, the first item reporting any gap before it."""
        items = list(entry.buffer)
        entry.buffer.clear()
        if entry.gap is not None and items:
            items[0] = items[0].after_gap(*entry.gap)
            entry.gap = None
        return items

    def _remove(self, entry: _Entry) -> None:
        del self._entries[entry.subscription]
        entries = self._topics[entry.topic]
        entries.remove(entry)
        if not entries:
            entry.topic.live = False
            del self._topics[entry.topic]

    def _end(self, entry: _Entry, *, deliver: bool) -> None:
        """End a subscription: hand over what it buffers (if `deliver`) and the end."""
        self._remove(entry)
        entry.subscription._finish(self._take(entry) if deliver else [])

    def _gone(self, entry: _Entry) -> None:
        """The subscriber cannot take deliveries any more (its event loop closed)."""
        self._remove(entry)
        resolve(entry.subscription._ended, None)
