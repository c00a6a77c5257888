"""Fixtures and helpers for the actor runtime's tests.

Every test ends by stopping every actor (pykka's own test style) and checks that no tracker
or manager outlived it. Tests synchronise on futures, events and store operations, never on
`time.sleep`: `WatchedStore.wait_for()` blocks until the store has done something.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pykka
import pytest

from actors import ContextManager, ContextTracker, SupervisorConfig, TrackerConfig, create_manager
from actors._clock import Clock
from actors._future import new_reply
from actors._requests import ListContexts
from actors._supervisor import ManagerActor
from actors._tracker import TrackerActor
from actors.testing import FaultyStore, ManualClock
from storage import SqliteStore, Store

T = TypeVar("T")

WAIT = 10.0
"""Seconds a test waits for something that should happen at once, before it fails."""

FAST_RESTARTS = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=0.01)
"""Restart quickly, so that supervision tests do not wait out real backoffs."""


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=WAIT)
    left = pykka.ActorRegistry.get_by_class(TrackerActor) + pykka.ActorRegistry.get_by_class(
        ManagerActor
    )
    assert left == [], f"actors outlived the test: {left}"


class WatchedStore(FaultyStore):
    """A `FaultyStore` tests can wait on: `wait_for(op, count)` blocks until `op` has
    completed (or failed) `count` times in all, so no test needs to poll or sleep."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.completed: Counter[str] = Counter()
        self._changed = threading.Condition()

    def _run(self, op: str, action: Callable[[], T]) -> T:
        try:
            return super()._run(op, action)
        finally:
            with self._changed:
                self.completed[op] += 1
                self._changed.notify_all()

    def wait_for(self, op: str, count: int, timeout: float = WAIT) -> bool:
        """Whether `op` completed `count` times in all before `timeout` ran out."""
        with self._changed:
            return self._changed.wait_for(lambda: self.completed[op] >= count, timeout)


class Hold:
    """A `modify()` function that keeps its tracker busy until `release` is set, so that a
    test can line messages up in the tracker's inbox."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, _state: Any) -> None:
        self.entered.set()
        if not self.release.wait(WAIT):
            raise AssertionError("never released")


def hold_manager(manager: ContextManager, hold: Hold) -> None:
    """Keep the manager actor busy in `hold` (a call whose reply callback runs in it)."""
    reply = new_reply()
    reply.add_done_callback(lambda _: hold(None))
    manager._ref.tell(ListContexts(reply))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "contexts.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(db_path)
    yield store
    store.close()


@pytest.fixture
def watched(sqlite_store: SqliteStore) -> WatchedStore:
    """A SQLite store wrapped for fault injection and waiting."""
    return WatchedStore(sqlite_store)


def make_manager(
    store: Store | str | None = None, *, clock: Clock | None = None, **config: Any
) -> ContextManager:
    """A manager with fast restarts unless `config` says otherwise; on `clock` if given (a
    `ManualClock` the test advances: see `advance_when_scheduled`)."""
    config.setdefault("supervisor", FAST_RESTARTS)
    return create_manager(store, config=TrackerConfig(**config), clock=clock)


def make_tracker(
    manager: ContextManager, name: str = "ctx", data: dict[str, Any] | None = None
) -> ContextTracker:
    """Create context `name` and return its activated tracker."""
    manager.create_context(name, data).get()
    return manager.get_tracker(name).get()


@pytest.fixture
def manager() -> Iterator[ContextManager]:
    """A manager on a fresh in-memory store."""
    manager = make_manager()
    yield manager
    manager.shutdown().get()


@pytest.fixture
def tracker(manager: ContextManager) -> ContextTracker:
    """The tracker of context "ctx" holding {"n": 0}, in memory."""
    return make_tracker(manager, data={"n": 0})


def run_threads(count: int, work: Callable[[int], T], timeout: float = WAIT * 3) -> list[T]:
    """Run `work(0)` ... `work(count - 1)` in threads started together; return their results
    in order, re-raising the first exception a thread raised."""
    start = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait(timeout=WAIT)
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "worker threads hung"
    if errors:
        raise errors[0]
    return [results[i] for i in range(count)]


def advance_when_scheduled(clock: ManualClock, seconds: float, waiting: int = 1) -> None:
    """Move `clock` on by `seconds` once at least `waiting` callbacks wait on it.

    An actor schedules its delays from its own thread, a moment after whatever the test saw
    (a failed read, an answered call): advancing before that would move time past a delay
    that is not there yet. Call it with no other clock user running (`watch_interval=None`),
    or count theirs in `waiting`."""
    assert wait_until(lambda: clock.pending >= waiting), f"nothing scheduled on {clock!r}"
    clock.advance(seconds)


def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    """Poll `condition` until it holds or `timeout` passes, for state no event reports
    (passivation, garbage collection); this bounds the wait, it does not pace the test."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        pause.wait(0.01)
    return bool(condition())
