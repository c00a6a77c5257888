"""Time for the runtime: what time it is, and "call this later", from one injectable clock.

Every delay the runtime waits out (a conflict backoff, a batched flush, a restart's backoff,
the passivation tick) is scheduled on its manager's `Clock`, and every "how long ago" (how
long a tracker has been idle) is read from it. `SystemClock` runs every delay of a manager on
one daemon thread holding a heap of deadlines, instead of a thread per delay (a thread start
costs more than the update it waits for, and 10,000 contexts with a batched flush pending
would be 10,000 threads). Tests pass `actors.testing.ManualClock` and move time by hand, as
trio's `MockClock`, so that no test waits through a real gap.

A callback runs in the clock's thread (or, for `ManualClock`, in the thread that advances
it): it must be quick and must not wait. The runtime's callbacks only tell an actor a message.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from actors._exit import start_timer

__all__ = ["Clock", "ManualClock", "Scheduled", "SystemClock"]

logger = logging.getLogger("actors.clock")


class Scheduled:
    """A callback waiting for its deadline on a clock; `cancel()` it if no longer wanted."""

    __slots__ = ("__weakref__", "_fn", "deadline")

    def __init__(self, deadline: float, fn: Callable[[], Any]) -> None:
        self.deadline = deadline
        self._fn: Callable[[], Any] | None = fn

    def __lt__(self, other: Scheduled) -> bool:  # heap order
        return self.deadline < other.deadline

    @property
    def cancelled(self) -> bool:
        """Cancelled, or run already."""
        return self._fn is None

    def cancel(self) -> None:
        """Do not run the callback (a no-op if it ran already)."""
        self._fn = None  # a single attribute store: the clock's thread sees it or not yet

    def fire(self) -> None:
        """Run the callback now, once; an error is logged, never raised into the clock."""
        fn, self._fn = self._fn, None
        if fn is None:
            return
        try:
            fn()
        except Exception:
            logger.exception("a scheduled callback failed")


class Clock:
    """What time it is (monotonic seconds), and callbacks run after a delay."""

    def now(self) -> float:
        """Monotonic seconds: only differences mean anything."""
        raise NotImplementedError

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Scheduled:
        """Run `fn()` once `delay` seconds have passed (at the next chance if `delay` <= 0)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop every callback not run yet; later ones are dropped too."""


_STOP = object()


class SystemClock(Clock):
    """The real monotonic clock; its callbacks run on one daemon thread, started at once.

    The thread is started when the clock is made (so by `create_manager()`, in the program's
    own flow): Python 3.12 refuses new threads once the main thread has ended, and a clock
    started early keeps working then. If the thread could not be started, a callback whose
    delay is over runs in the caller's thread, and the others are dropped (logged).
    """

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="context-clock")
        self._running = start_timer(self._thread)

    def __repr__(self) -> str:
        return f"<SystemClock {'closed' if self._closed else 'running'}>"

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Scheduled:
        entry = Scheduled(time.monotonic() + max(0.0, delay), fn)
        if self._closed:
            entry.cancel()
        elif self._running:
            self._inbox.put(entry)
        elif delay <= 0:
            entry.fire()
        else:  # pragma: no cover - only when no thread could be started at all
            logger.warning("no clock thread: a callback due in %.3f s is dropped", delay)
            entry.cancel()
        return entry

    def close(self) -> None:
        self._closed = True
        if self._running:
            self._inbox.put(_STOP)

    def _run(self) -> None:
        heap: list[Scheduled] = []
        inbox = self._inbox
        while True:
            timeout = None if not heap else max(0.0, heap[0].deadline - time.monotonic())
            try:
                entry = inbox.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                if entry is _STOP:
                    for waiting in heap:
                        waiting.cancel()
                    return
                if not entry.cancelled:
                    heapq.heappush(heap, entry)
            now = time.monotonic()
            while heap and (heap[0].cancelled or heap[0].deadline <= now):
                heapq.heappop(heap).fire()


class ManualClock(Clock):
    """A clock that moves only when told (`advance()`), for tests: callbacks run in the
    thread that advances it, in deadline order, each seeing `now()` at its own deadline.

    Any thread may schedule on it (actors do, from their own threads): new callbacks come in
    through a queue and only `advance()` orders them, so the heap has one owner.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._incoming: queue.SimpleQueue[Scheduled] = queue.SimpleQueue()
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ManualClock at {self._now}>"

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Scheduled:
        entry = Scheduled(self._now + max(0.0, delay), fn)
        if self._closed:
            entry.cancel()
        elif delay <= 0:
            entry.fire()
        else:
            self._incoming.put(entry)
        return entry

    def _take_incoming(self) -> None:
        while True:
            try:
                entry = self._incoming.get_nowait()
            except queue.Empty:
                return
            heapq.heappush(self._heap, (entry.deadline, next(self._order), entry))

    @property
    def pending(self) -> int:
        """How many callbacks wait for a later time (call from the advancing thread)."""
        self._take_incoming()
        return sum(1 for _, _, entry in self._heap if not entry.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, running every callback that falls due."""
        target = self._now + seconds
        self._take_incoming()
        while self._heap and self._heap[0][0] <= target:
            deadline, _, entry = heapq.heappop(self._heap)
            self._now = max(self._now, deadline)
            entry.fire()
            self._take_incoming()
        self._now = target

    def close(self) -> None:
        self._closed = True
        self._take_incoming()
        for _, _, entry in self._heap:
            entry.cancel()
        self._heap.clear()
