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
from actors._periodic import PeriodicActor
from actors._tell import tell_quietly
from storage import ContextError, Store

__all__ = ["StoredVersion", "Unwatch", "Watch", "WatcherActor"]

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
class StoredVersion:
    """To a tracker: the store's head of your context is now `version`."""

    version: int


class WatcherActor(PeriodicActor):
    """Polls one store for changes made elsewhere; see the module docstring."""

    def __init__(self, store: Store, interval: float, clock: Clock) -> None:
        super().__init__(clock, interval)
        self._store = store
        self._targets: dict[str, pykka.ActorRef[Any]] = {}
        self._seen: dict[str, int] = {}
        self._token: object | None = None
        self._followed = False  # whether the store knows the current targets (Store.follow)

    def receive(self, message: Any) -> None:
        if isinstance(message, Watch):
            self._targets[message.name] = message.tracker
            self._seen.pop(message.name, None)
            self._token = None  # look at least once for the new tracker
            self._followed = False
        elif isinstance(message, Unwatch) and self._targets.get(message.name) is message.tracker:
            del self._targets[message.name]
            self._seen.pop(message.name, None)
            self._followed = False

    def look(self) -> None:
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
