"""The manager's history operations: the versions a store keeps, and the State of one.

Each reads the store only, through the store worker (never in the manager's thread), and
never writes: what a running tracker holds but has not stored yet (a batched sync policy) is
not in it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from actors._requests import LoadVersion, ReadHistory

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = ["history", "load_version"]


def history(manager: ManagerActor, request: ReadHistory) -> Any:
    store = manager._store
    work = partial(store.history, request.name, request.since, request.limit)
    return manager._io(None, request.reply, work)


def load_version(manager: ManagerActor, request: LoadVersion) -> Any:
    store, name = manager._store, request.name
    if request.version is not None:
        work = partial(store.read_at, name, request.version)
    else:
        assert request.at is not None  # the facade sends one of the two
        work = partial(store.read_as_of, name, request.at)
    return manager._io(None, request.reply, work)
