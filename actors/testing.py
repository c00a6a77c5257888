"""Fault injection for tests, ours and our users': crash a tracker, make a store fail.

```python
from actors.testing import FaultyStore, crash

store = FaultyStore(SqliteStore(path))
manager = create_manager(store)
...
crash(tracker).get()                       # resolves once the tracker was restarted
store.fail("compare_and_set", sqlite3.OperationalError("disk I/O error"))
```
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from actors._future import ContextFuture, new_reply
from actors._messages import Crash
from actors._tracker import ContextTracker, InjectedCrash
from storage import ContextError, PersistenceError, RecoveryPoint, Store

__all__ = ["FaultyStore", "InjectedCrash", "crash"]


def crash(tracker: ContextTracker) -> ContextFuture[None]:
    """Make the tracker fail as an unexpected exception would.

    Requests queued behind the crash are kept and served after the restart. The future
    resolves once the supervisor has restarted the tracker from its last snapshot, or fails
    with `RecoveryError` if the supervisor gives up on it.
    """
    restarted = new_reply()
    tracker._cell.send(Crash(restarted, new_reply()), restarted)
    return ContextFuture(restarted, timeout=tracker._cell.timeout, what="crash()")


class FaultyStore(Store):
    """Wraps a store and makes chosen operations fail or stall, for fault-injection tests.

    Operation names are the store's primitives: `create`, `read_head`, `head_version`,
    `compare_and_set`, `delete`, `exists`, `list_contexts`, `list_versions`, `read_version`,
    `create_recovery_point`, `list_recovery_points`, `read_recovery_point`,
    `delete_recovery_point`. An injected error that is not a `ContextError` reaches callers
    the way a backend error does: as `PersistenceError` with it as `__cause__`.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(codec=inner.codec, retain_heads=inner.retain_heads)
        self.inner = inner
        """The store that does the real work."""
        self._faults: dict[str, deque[BaseException]] = {}
        self._delays: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        """How many times each operation was attempted."""

    def fail(self, op: str, error: BaseException, times: int = 1) -> None:
        """Make the next `times` calls of `op` raise `error` without doing anything."""
        self._check_op(op)
        self._faults.setdefault(op, deque()).extend([error] * times)

    def delay(self, op: str, seconds: float) -> None:
        """Make every later call of `op` stall for `seconds` first (0 to stop)."""
        self._check_op(op)
        self._delays[op] = seconds

    def heal(self) -> None:
        """Drop every pending fault and delay."""
        self._faults.clear()
        self._delays.clear()

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()

    def _check_op(self, op: str) -> None:
        if not callable(getattr(self.inner, f"_{op}", None)):
            msg = f"unknown store operation {op!r}"
            raise ValueError(msg)  # noqa: TRY004 - a bad name, not a bad type

    def _enter(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        delay = self._delays.get(op, 0.0)
        if delay > 0:
            time.sleep(delay)  # the injected fault itself: a slow disk
        faults = self._faults.get(op)
        if faults:
            error = faults.popleft()
            if isinstance(error, ContextError):
                raise error
            raise PersistenceError(f"injected fault in {op}: {error!r}") from error

    def _create(self, name: str, version: int, blob: bytes) -> None:
        self._enter("create")
        self.inner._create(name, version, blob)

    def _read_head(self, name: str) -> tuple[int, bytes]:
        self._enter("read_head")
        return self.inner._read_head(name)

    def _head_version(self, name: str) -> int:
        self._enter("head_version")
        return self.inner._head_version(name)

    def _compare_and_set(self, name: str, expected: int, version: int, blob: bytes) -> None:
        self._enter("compare_and_set")
        self.inner._compare_and_set(name, expected, version, blob)

    def _delete(self, name: str) -> None:
        self._enter("delete")
        self.inner._delete(name)

    def _exists(self, name: str) -> bool:
        self._enter("exists")
        return self.inner._exists(name)

    def _list_contexts(self) -> list[str]:
        self._enter("list_contexts")
        return self.inner._list_contexts()

    def _list_versions(self, name: str) -> list[int]:
        self._enter("list_versions")
        return self.inner._list_versions(name)

    def _read_version(self, name: str, version: int) -> bytes:
        self._enter("read_version")
        return self.inner._read_version(name, version)

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        self._enter("create_recovery_point")
        return self.inner._create_recovery_point(name, version, label, created_at, blob)

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        self._enter("list_recovery_points")
        return self.inner._list_recovery_points(name)

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        self._enter("read_recovery_point")
        return self.inner._read_recovery_point(name, point_id)

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        self._enter("delete_recovery_point")
        self.inner._delete_recovery_point(name, point_id)
