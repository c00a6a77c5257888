"""Fault injection for tests, ours and our users': crash a tracker, make a store fail, and
drive time by hand (`ManualClock`, passed to `create_manager(clock=...)`).

```python
from actors.testing import FaultyStore, crash

store = FaultyStore(SqliteStore(path))
manager = create_manager(store)
...
crash(tracker).get()                       # resolves once the tracker was restarted
store.fail("commit", sqlite3.OperationalError("disk I/O error"))
```
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TypeVar

from actors._clock import ManualClock
from actors._future import ContextFuture, new_reply
from actors._handle import ContextTracker
from actors._messages import Crash
from actors._tracker import InjectedCrash
from storage import ContextError, InvalidArgumentError, PersistenceError, RecoveryPoint, Store
from storage._store import ContextExport, Lease, Write

__all__ = ["FaultyStore", "InjectedCrash", "ManualClock", "crash"]

T = TypeVar("T")

OPERATIONS = frozenset(
    {
        "acquire_lease",
        "commit",
        "create",
        "create_recovery_point",
        "delete",
        "delete_recovery_point",
        "exists",
        "export_context",
        "head_version",
        "list_contexts",
        "list_recovery_points",
        "list_versions",
        "read_leases",
        "release_lease",
        "renew_leases",
        "change_token",
        "head_versions",
        "import_context",
        "read_head",
        "read_journal",
        "read_changes",
        "read_latest",
        "read_recovery_point",
        "read_version",
    }
)
"""The operation names `FaultyStore.fail()` and `delay()` accept."""


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

    Operation names are the store's primitives: `create`, `read_head`, `read_latest` (the
    one-moment read that loading and recovery make), `head_version`, `head_versions`,
    `change_token`, `commit` (every snapshot and journal write, batched or not),
    `read_journal`, `delete`, `exists`, `list_contexts`, `list_versions`, `read_version`,
    `create_recovery_point`, `list_recovery_points`, `read_recovery_point`,
    `delete_recovery_point`, `export_context` and `import_context` (what a copy between
    stores reads and writes), `acquire_lease`, `renew_leases`, `read_leases` and
    `release_lease` (`TrackerConfig.leases`). Every primitive a backend implements is
    forwarded through one of them, so a fault test runs the same path as production.
    `history`, `read_at` and `read_as_of` read everything kept of a context in one
    `read_changes` (the one-moment read a catch-up makes): fail that to fail them.

    What callers see of an injected error: a `ContextError` as it is; an `InjectedCrash` as
    it is, i.e. as an unexpected exception (a bug, say) that fails the tracker; anything else
    the way a backend error reaches them, as `PersistenceError` with it as `__cause__`.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(codec=inner.codec, retain_heads=inner.retain_heads)
        self.supports_journal = inner.supports_journal
        self.commits_in_batches = inner.commits_in_batches
        self.commits_creates = inner.commits_creates
        self.shared_between_processes = inner.shared_between_processes
        self.supports_leases = inner.supports_leases
        self.inner = inner
        """The store that does the real work."""
        self._faults: dict[str, deque[tuple[BaseException, bool]]] = {}
        self._delays: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        """How many times each operation was attempted."""

    def fail(self, op: str, error: BaseException, times: int = 1, *, after: bool = False) -> None:
        """Make the next `times` calls of `op` raise `error`: before doing anything, or with
        `after=True`, once the operation has been carried out (a reply lost after a commit).
        """
        self._check_op(op)
        self._faults.setdefault(op, deque()).extend([(error, after)] * times)

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
        if op not in OPERATIONS:
            msg = f"unknown store operation {op!r}; expected one of {sorted(OPERATIONS)}"
            raise InvalidArgumentError(msg)

    def _run(self, op: str, action: Callable[[], T]) -> T:
        self.calls[op] = self.calls.get(op, 0) + 1
        delay = self._delays.get(op, 0.0)
        if delay > 0:
            time.sleep(delay)  # the injected fault itself: a slow disk
        self._maybe_fail(op, after=False)
        result = action()
        self._maybe_fail(op, after=True)
        return result

    def _maybe_fail(self, op: str, *, after: bool) -> None:
        faults = self._faults.get(op)
        if not faults or faults[0][1] is not after:
            return
        error, _ = faults.popleft()
        if isinstance(error, ContextError | InjectedCrash):
            raise error
        raise PersistenceError(f"injected fault in {op}: {error!r}") from error

    def _create(self, name: str, version: int, blob: bytes) -> None:
        self._run("create", lambda: self.inner._create(name, version, blob))

    def _read_head(self, name: str) -> tuple[int, bytes]:
        return self._run("read_head", lambda: self.inner._read_head(name))

    def _head_version(self, name: str) -> int:
        return self._run("head_version", lambda: self.inner._head_version(name))

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        return self._run("commit", lambda: self.inner._commit(writes))

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        return self._run("read_journal", lambda: self.inner._read_journal(name, after))

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        return self._run("read_latest", lambda: self.inner._read_latest_parts(name))

    def _read_latest_parts_many(
        self, names: list[str]
    ) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
        return self._run("read_latest", lambda: self.inner._read_latest_parts_many(names))

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        return self._run("read_changes", lambda: self.inner._read_changes_parts(name, after))

    def _head_versions(self, names: list[str]) -> dict[str, int]:
        return self._run("head_versions", lambda: self.inner._head_versions(names))

    def change_token(self) -> object | None:
        """The inner store's change token (see `Store.change_token`)."""
        return self._run("change_token", self.inner.change_token)

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        return self._run("acquire_lease", lambda: self.inner._acquire_lease(name, owner, ttl))

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        return self._run("renew_leases", lambda: self.inner._renew_leases(owner, epochs, ttl))

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        return self._run("read_leases", lambda: self.inner._read_leases(names))

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        self._run("release_lease", lambda: self.inner._release_lease(name, owner, epoch))

    def follow(self, names: Collection[str]) -> None:
        """Pass the followed contexts to the inner store (see `Store.follow`): no I/O, so
        no fault to inject."""
        self.inner.follow(names)

    def _export_context(self, name: str) -> ContextExport:
        return self._run("export_context", lambda: self.inner._export_context(name))

    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        return self._run(
            "import_context", lambda: self.inner._import_context(export, replace=replace)
        )

    def _delete(self, name: str) -> None:
        self._run("delete", lambda: self.inner._delete(name))

    def _exists(self, name: str) -> bool:
        return self._run("exists", lambda: self.inner._exists(name))

    def _list_contexts(self) -> list[str]:
        return self._run("list_contexts", self.inner._list_contexts)

    def _list_versions(self, name: str) -> list[int]:
        return self._run("list_versions", lambda: self.inner._list_versions(name))

    def _read_version(self, name: str, version: int) -> bytes:
        return self._run("read_version", lambda: self.inner._read_version(name, version))

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        return self._run(
            "create_recovery_point",
            lambda: self.inner._create_recovery_point(name, version, label, created_at, blob),
        )

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        return self._run("list_recovery_points", lambda: self.inner._list_recovery_points(name))

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        return self._run(
            "read_recovery_point", lambda: self.inner._read_recovery_point(name, point_id)
        )

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        self._run(
            "delete_recovery_point", lambda: self.inner._delete_recovery_point(name, point_id)
        )
