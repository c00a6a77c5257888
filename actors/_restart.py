"""RestartPolicy: when the manager restarts what failed, after how long, and when it gives up.

One policy serves every supervised child of a manager (each tracker, by context name, and
the group writer): each failure is counted against `SupervisorConfig.max_restarts` within
`within_seconds`, and the n-th restart in that window waits `SupervisorConfig.backoff(n)`.
The clock is injected (a callable returning monotonic seconds), so that tests drive the
window without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

import attrs

from actors._config import SupervisorConfig

__all__ = ["Decision", "RestartPolicy"]


@attrs.frozen
class Decision:
    """What to do about one failure: restart after `delay` seconds, or give up (`restart`
    false); `failures` counts it with those before it in the window."""

    restart: bool
    delay: float
    failures: int


class RestartPolicy:
    """Counts the recent failures of each supervised child and decides about the next."""

    def __init__(
        self, config: SupervisorConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self._failures: dict[Hashable, deque[float]] = {}

    def __len__(self) -> int:
        """How many children have failures on record (for leak checks)."""
        return len(self._failures)

    def recent(self, child: Hashable) -> int:
        """The failures of `child` within the window ending now."""
        failures = self._failures.get(child)
        if failures is None:
            return 0
        self._prune(failures, self.clock())
        return len(failures)

    def failed(self, child: Hashable) -> Decision:
        """Record a failure of `child` and decide: restart (after a backoff that grows with
        the restarts in the window), or give up once `max_restarts` were made within it (a
        failure given up on is not recorded: the child is not restarted for it)."""
        now = self.clock()
        failures = self._failures.setdefault(child, deque())
        self._prune(failures, now)
        if len(failures) >= self.config.max_restarts:
            return Decision(restart=False, delay=0.0, failures=len(failures) + 1)
        delay = self.config.backoff(len(failures))
        failures.append(now)
        return Decision(restart=True, delay=delay, failures=len(failures))

    def forget(self, child: Hashable) -> None:
        """`child` stopped or is gone: its history no longer counts."""
        self._failures.pop(child, None)

    def _prune(self, failures: deque[float], now: float) -> None:
        window = self.config.within_seconds
        while failures and now - failures[0] > window:
            failures.popleft()
