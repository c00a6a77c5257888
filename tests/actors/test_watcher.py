"""The watcher names the contexts it follows to the store (`Store.follow`), so a store that
listens per context (a Redis Cluster with sharded pub/sub) listens to exactly those."""

from __future__ import annotations

import queue
from collections.abc import Collection

import pytest

from actors import create_manager
from actors.testing import ManualClock
from storage import MemoryStore

from .conftest import advance_when_scheduled

WAIT = 10.0
INTERVAL = 1.0


class FollowedStore(MemoryStore):
    """A memory store shared "between processes" (so a manager watches it) that records
    what it is told to follow and how often its change token is asked for."""

    shared_between_processes = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: queue.Queue[tuple[str, list[str]]] = queue.Queue()

    def follow(self, names: Collection[str]) -> None:
        self.calls.put(("follow", sorted(names)))

    def change_token(self) -> object | None:
        self.calls.put(("change_token", []))
        return "unchanged"  # never moves: the watcher reads the heads once per new target


@pytest.mark.timeout(30)
def test_the_watcher_tells_the_store_which_contexts_it_follows_when_they_change():
    store, clock = FollowedStore(), ManualClock()
    manager = create_manager(store, clock=clock, watch_interval=INTERVAL, passivate_after=None)
    try:
        manager.create_context("a", {"n": 0}).get(timeout=WAIT)
        manager.create_context("b", {"n": 0}).get(timeout=WAIT)
        manager.get_tracker("a").get(timeout=WAIT)
        manager.get_tracker("b").get(timeout=WAIT)
        advance_when_scheduled(clock, INTERVAL)  # the watcher's poll
        # The names first, then the token that is about them.
        assert store.calls.get(timeout=WAIT) == ("follow", ["a", "b"])
        assert store.calls.get(timeout=WAIT) == ("change_token", [])

        # Nothing changed: a poll does not name the contexts again.
        advance_when_scheduled(clock, INTERVAL)
        assert store.calls.get(timeout=WAIT) == ("change_token", [])

        manager.deactivate("a").get(timeout=WAIT)
        advance_when_scheduled(clock, INTERVAL)
        assert store.calls.get(timeout=WAIT) == ("follow", ["b"])
        assert store.calls.get(timeout=WAIT) == ("change_token", [])
        manager.deactivate("b").get(timeout=WAIT)
        advance_when_scheduled(clock, INTERVAL)
        # Follows nothing: the store may leave every subscription (and asks for no token).
        assert store.calls.get(timeout=WAIT) == ("follow", [])
    finally:
        manager.shutdown().get(timeout=WAIT)
