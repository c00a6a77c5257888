"""The watcher actor: notices what other processes write to the contexts this manager runs.

Every `watch_interval` seconds it asks the store whether anything changed (SQLite: `PRAGMA
data_version` on a connection of its own; Redis: messages on the channel its write scripts
publish to; Redis Cluster: messages on the shard channels of the contexts it follows, which
it names to the store with `Store.follow`) and, only if so, reads the head versions of the
contexts whose trackers run here, in one round trip. A tracker whose context moved on hears
`StoredVersion` and catches up from the journal, publishing each version it missed to its
subscribers. Writes of this process show up too; a tracker that made them ignores them.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pykka

from actors._clock import Clock
from actors._future import Reply, resolve
from actors._teardown import ThreadedActor, answer_mailbox
from actors._tell import tell_quietly
from actors._timers import Timers
from storage import ContextError, Store

__all__ = ["CloseWatcher", "Poll", "StoredVersion", "Unwatch", "Watch", "WatcherActor"]

logger = logging.getLogger("actors.watcher")


@attrs.frozen
class Watch:
    """Follow context `name`, whose tracker is `tracker`."""

    name: str
    tracker: pykka.ActorRef[Any]


@attrs.frozen
class Unwatch:
    """Stop following `name` if `tracker` is still the one followed."""

    name: str
    tracker: pykka.ActorRef[Any]


@attrs.frozen
class Poll:
    """The watcher's timer: time to look at the store."""


@attrs.frozen
class CloseWatcher:
    """Stop watching; `reply` resolves once the watcher has stopped."""

    reply: Reply[None]


@attrs.frozen
class StoredVersion:
    """To a tracker: the store's head of your context is now `version`."""

    version: int


class WatcherActor(ThreadedActor):
    """Polls one store for changes made elsewhere; see the module docstring."""

    def __init__(self, store: Store, interval: float, clock: Clock) -> None:
        super().__init__()
        self._store = store
        self._interval = interval
        self._targets: dict[str, pykka.ActorRef[Any]] = {}
        self._seen: dict[str, int] = {}
        self._token: object | None = None
        self._followed = False  # whether the store knows the current targets (Store.follow)
        self._timers = Timers(clock)
        self._closed: Reply[None] | None = None

    def on_start(self) -> None:
        self._arm()

    def on_stop(self) -> None:
        self._timers.cancel_all()
        answer_mailbox(self)
        if self._closed is not None:
            resolve(self._closed, None)

    def on_late_message(self, message: Any) -> None:
        if isinstance(message, CloseWatcher):
            resolve(message.reply, None)  # closed already

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Watch):
            self._targets[message.name] = message.tracker
            self._seen.pop(message.name, None)
            self._token = None  # look at least once for the new tracker
            self._followed = False
        elif isinstance(message, Unwatch):
            if self._targets.get(message.name) is message.tracker:
                del self._targets[message.name]
                self._seen.pop(message.name, None)
                self._followed = False
        elif isinstance(message, Poll):
            if self._closed is None:
                self._poll()
                self._arm()
        elif isinstance(message, CloseWatcher):
            self._closed = message.reply
            self.stop()

    def _poll(self) -> None:
        if not self._followed:
            # Once per change of targets, not per poll: a store that listens per context
            # (Redis Cluster) subscribes to these at its next change_token() call.
            self._store.follow(list(self._targets))
            self._followed = True
        if not self._targets:
            return
        try:
            token = self._store.change_token()
            if token is not None and token == self._token:
                return  # nothing was committed anywhere since the last look
            versions = self._store.head_versions(list(self._targets))
        except ContextError as exc:  # the store is down: look again next time
            logger.warning("watching the store failed: %s", exc)
            return
        self._token = token
        for name, version in versions.items():
            if self._seen.get(name) != version:
                self._seen[name] = version
                tell_quietly(self._targets[name], StoredVersion(version))

    def _arm(self) -> None:
        # Refused while the interpreter exits (Python 3.12): polling ends, shutdown is near.
        self._timers.tell_after(self._interval, self.actor_ref, Poll())
