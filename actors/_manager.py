"""ContextManager, the facade of the manager actor (`create_manager()` builds one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import pykka

from actors._cell import ContextStatus
from actors._config import TrackerConfig
from actors._future import ContextFuture, Reply, new_reply, reject, resolve
from actors._handle import ContextTracker
from actors._messages import ListStopping
from actors._recovery import RecoveryReport
from actors._requests import (
    ActiveContexts,
    CreateContext,
    CreateRecoveryPoint,
    Deactivate,
    DeleteContext,
    DeleteRecoveryPoint,
    GetRecoveryReport,
    GetStates,
    GetStats,
    GetTracker,
    ListContexts,
    ListRecoveryPoints,
    LoadContext,
    LoadVersion,
    ManagerRequest,
    ReadHistory,
    RestoreRecoveryPoint,
    SaveContext,
    Shutdown,
    Status,
)
from actors._stats import ContextStats
from actors._supervisor import ManagerActor
from storage import (
    ContextError,
    HistoryEntry,
    InvalidArgumentError,
    RecoveryPoint,
    ShutdownError,
    State,
    Store,
    validate_context_name,
)
from storage._history import check_at, check_limit, check_since, check_version
from storage._store import recovery_point_id

if TYPE_CHECKING:
    from actors._typed import TypedContexts
    from actors._typed_schema import ContextSchema

__all__ = ["ContextManager"]

M = TypeVar("M")


class ContextManager:
    """Creates, stores, activates and supervises named contexts.

    Every method returns a `ContextFuture`; invalid arguments fail the future at once.
    Use it as a `with` block to shut it down on exit.
    """

    def __init__(
        self,
        ref: pykka.ActorRef[ManagerActor],
        store: Store,
        config: TrackerConfig,
        handles: dict[str, ContextTracker] | None = None,
    ) -> None:
        self._ref = ref
        self.store = store
        """The store this manager keeps its contexts in."""
        self.config = config
        """The configuration its trackers were built with."""
        # The fast path of get_tracker(), the way Orleans' GetGrain is local: the handles of
        # running contexts, which only the manager actor writes (ContextRegistry.handles),
        # and the calls made here that may end a context's ACTIVE life (deactivate, delete,
        # restore, shutdown), from before they are told to the manager until they are
        # answered. While any is in flight, get_tracker() asks the manager, behind them in
        # its mailbox, as it always did. No lock: `set.add`, `set.discard`, truthiness and
        # `dict.get` are each one atomic operation under the GIL, the manager takes a
        # handle back before it answers anything about the transition that ends it, and
        # a call's reply leaves `_settling` only once it is answered; so a caller that
        # finds `_settling` empty and a handle published sees what the manager would have
        # answered had it asked (a call made in another thread at the same moment is, as
        # ever, not ordered with this one).
        self._handles: dict[str, ContextTracker] = {} if handles is None else handles
        self._settling: set[Reply[Any]] = set()

    def __repr__(self) -> str:
        return f"<ContextManager store={self.store!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown().get()

    def _request(
        self, make: Callable[[Reply[Any]], ManagerRequest], *, settles: bool = False
    ) -> ContextFuture[Any]:
        """Send the request `make(reply)` to the manager actor (for this package's facades).
        A request that `settles` may end a context's ACTIVE life: get_tracker() asks the
        manager until it is answered (see `__init__`)."""
        reply = new_reply()
        request = make(reply)
        if settles:
            self._settling.add(reply)  # before the manager can act on it
            reply.add_done_callback(self._settling.discard)
        try:
            self._ref.tell(request)
        except pykka.ActorDeadError:
            reject(reply, ShutdownError("the context manager was shut down"))
        what = f"manager.{request.operation}()"
        return ContextFuture(reply, timeout=self.config.ask_timeout, what=what)

    def _named(
        self,
        kind: Callable[..., ManagerRequest],
        operation: str,
        name: object,
        *args: Any,
        settles: bool = False,
    ) -> ContextFuture[Any]:
        """`_request()` a `kind(name, *args, reply)` about context `name`, failing at once if
        the name is invalid."""
        try:
            validate_context_name(name)
        except ContextError as exc:
            return ContextFuture.failed(exc, what=f"manager.{operation}()")
        return self._request(partial(kind, name, *args), settles=settles)

    def create_context(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ContextFuture[State]:
        """Create and store a context at version 0; resolves to its first State. It starts
        inactive: `get_tracker()` activates it.

        Raises (through the future): `InvalidContextNameError`, `InvalidValueError`,
        `ContextExistsError`, `PersistenceError`.
        """
        try:
            state = State.new(validate_context_name(name), data, metadata)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="context manager.create_context()")
        return self._request(partial(CreateContext, state))

    def get_tracker(
        self,
        name: str,
        *,
        create: bool = False,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ContextFuture[ContextTracker]:
        """The tracker handle of `name`, activating the context if it is inactive.

        With `create=True`, a context that is not stored is created (at version 0, holding
        `data` and `metadata`) by the tracker as it loads: "get or create", the pattern of
        a web handler whose first request for an id makes it. The create is the first
        write of the tracker, stored by the group writer with other contexts' writes, and
        the handle comes while it is on its way: a write made through the handle before
        the writer takes the create goes in the same transaction, and nothing called
        through the handle is answered before the create is stored (if it fails, those
        calls fail with its error). If another process creates the context at the same
        moment, its context is loaded instead and the calls run on it.

        The handle of a running context comes without a round trip to the manager actor
        (which publishes it while the context runs: docs/architecture.md, "A running
        context's handle, without the manager"), in the order of the caller's own calls:
        after its `deactivate()` or `delete_context()` of the context, this asks the manager
        as before.

        Raises (through the future): `ContextNotFoundError` (not stored, and not `create`),
        `InvalidContextNameError`, `InvalidValueError` (`data` or `metadata` a State cannot
        hold), `InvalidArgumentError` (`data` or `metadata` without `create`),
        `ContextFailedError`, `PersistenceError`.
        """
        what = "manager.get_tracker()"
        seed = None
        if create:
            if data is not None or metadata is not None:  # checked as for a new context
                try:
                    seed = State.new(validate_context_name(name), data, metadata)
                except ContextError as exc:
                    return ContextFuture.failed(exc, what=what)
        elif data is not None or metadata is not None:
            given = "data" if data is not None else "metadata"
            error = InvalidArgumentError(
                f"{given}= is the content of a context created by get_tracker(create=True);"
                f" it was given without create=True for context {name!r}"
            )
            return ContextFuture.failed(error, what=what)
        # A published name is a valid one; `type() is str` keeps unhashable and str-like
        # names for the checks below. A seed is what a context not stored would be created
        # as: the manager ignores it for a running context, and so does this.
        if not self._settling and type(name) is str:
            handle = self._handles.get(name)
            if handle is not None and handle._cell.status is ContextStatus.ACTIVE:
                reply = new_reply()
                reply.set_result(handle)
                return ContextFuture(reply, timeout=self.config.ask_timeout, what=what)
        if not create:
            return self._named(GetTracker, "get_tracker", name)
        if seed is None:
            try:
                seed = State.new(validate_context_name(name))
            except ContextError as exc:
                return ContextFuture.failed(exc, what=what)
        return self._request(partial(GetTracker, seed.context, seed=seed))

    def get_states(self, names: Iterable[str]) -> ContextFuture[dict[str, State]]:
        """The States of many contexts in one call, without activating them: for reading
        contexts in bulk (a report, an export, warming a cache), where `get_tracker()` of
        each would start a tracker per context.

        Resolves to `{name: State}` for the contexts of `names` that exist, in the order
        given (a context that is not stored is left out, a name given twice read once);
        each State is the caller's own copy. It holds every update acknowledged before the
        call, and what other processes sharing the store wrote: under the durable policy
        (the default) they are read from the store in one call (one read transaction on
        SQLite, one statement on PostgreSQL, one round trip on Redis), off the manager's
        thread; under a batched policy, contexts with a running tracker are asked of it,
        since it may hold acknowledged updates not yet written.

        Raises (through the future): `InvalidContextNameError` (any name invalid: nothing is
        read), `InvalidArgumentError` (`names` a single string), `CorruptSnapshotError` (a
        context's stored head is damaged; `load()` of it recovers), `PersistenceError`.
        """
        what = "manager.get_states()"
        if isinstance(names, str | bytes):
            error = InvalidArgumentError(
                f"get_states() takes a collection of context names, not the string {names!r}"
            )
            return ContextFuture.failed(error, what=what)
        try:
            wanted = tuple(dict.fromkeys(validate_context_name(name) for name in names))
        except ContextError as exc:
            return ContextFuture.failed(exc, what=what)
        except TypeError as exc:
            error = InvalidArgumentError(f"get_states() takes an iterable of names: {exc}")
            return ContextFuture.failed(error, what=what)
        return self._request(partial(GetStates, wanted))

    def typed(self, model: type[M] | ContextSchema[M]) -> TypedContexts[M]:
        """The typed side of this manager for `model` (an attrs class or dataclass, or its
        `ContextSchema`): `manager.typed(Cart).get_tracker("cart-1")`. See
        docs/typed-contexts.md."""
        from actors._typed import TypedContexts  # noqa: PLC0415 - it imports this module

        return TypedContexts(self, model)

    def deactivate(self, name: str) -> ContextFuture[None]:
        """Write what the tracker has unsaved, then stop it."""
        return self._named(Deactivate, "deactivate", name, settles=True)

    def delete_context(self, name: str) -> ContextFuture[None]:
        """Stop the context's tracker and delete it with all its snapshots and recovery points."""
        return self._named(DeleteContext, "delete_context", name, settles=True)

    def list_contexts(self) -> ContextFuture[list[str]]:
        """The names of all stored contexts, sorted."""
        return self._request(ListContexts)

    def status(self, name: str) -> ContextFuture[ContextStatus]:
        """Whether `name` is active, inactive, failed or nonexistent."""
        return self._named(Status, "status", name)

    def active_contexts(self) -> ContextFuture[list[str]]:
        """The names of the contexts with a tracker, sorted."""
        return self._request(ActiveContexts)

    def stats(self) -> ContextFuture[list[ContextStats]]:
        """What the manager is doing: a `ContextStats` per context it knows (running,
        passivated, failed, or known from an earlier call), sorted by name: status, version,
        updates not written yet, requests waiting, restarts and the last error. A tracker
        that does not describe itself within a second (stuck in a store call) is reported
        with `answered=False` and no figures. Cheap enough to poll from a health endpoint."""
        return self._request(GetStats)

    def save(self, name: str) -> ContextFuture[int]:
        """Write what the context's tracker has unsaved; resolves to the stored version."""
        return self._named(SaveContext, "save", name)

    # -- load, history and point-in-time reads (actors/_history_ops.py) --------------------

    def load(
        self, name: str, *, version: int | None = None, at: datetime | None = None
    ) -> ContextFuture[State]:
        """The State as stored, read from the store: the head (what a restart would
        recover); with `version`, that version; with `at`, the newest version made at or
        before that moment (by `updated_at`). An old version is rebuilt from what the store
        keeps (see `history()`); reads never write.

        What a running tracker has not stored yet (a batched sync policy) is not read: save()
        first to include it.

        Raises (through the future): `InvalidContextNameError`, `InvalidArgumentError`
        (`version` not an int >= 0, `at` not a timezone-aware datetime, or both given),
        `ContextNotFoundError`, `VersionNotKeptError` (that version, or any version at or
        before `at`, is no longer kept: its `kept` lists the versions that are),
        `CorruptSnapshotError`, `PersistenceError`.
        """
        if version is None and at is None:
            return self._named(LoadContext, "load", name)
        try:
            validate_context_name(name)
            if version is not None and at is not None:
                msg = f"pass version= or at=, not both; got version={version!r}, at={at!r}"
                raise InvalidArgumentError(msg)
            version = None if version is None else check_version(version)
            at = None if at is None else check_at(at)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="manager.load()")
        return self._request(partial(LoadVersion, name, version, at))

    def history(
        self, name: str, since_version: int | None = None, limit: int | None = None
    ) -> ContextFuture[list[HistoryEntry]]:
        """The versions of `name` the store still keeps, oldest first: each a `HistoryEntry`
        with its version, `updated_at`, how it is stored (`kind`: "journal" or "snapshot")
        and the keys it changed (unknown, None, for the oldest kept snapshot). Only versions
        `since_version` and above; at most `limit` of them (None: all).

        How far back it reaches: the store keeps its last `retain_heads` snapshots and the
        journal since the oldest of them (docs/history.md). It shows what is stored: updates
        a running tracker has not stored yet (a batched sync policy) are not in it.

        Raises (through the future): `InvalidContextNameError`, `InvalidArgumentError`
        (`since_version` not an int >= 0 or None, `limit` not an int >= 1 or None),
        `ContextNotFoundError`, `CorruptSnapshotError`, `PersistenceError`.
        """
        try:
            validate_context_name(name)
            since, most = check_since(since_version), check_limit(limit)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="manager.history()")
        return self._request(partial(ReadHistory, name, since, most))

    # -- recovery points --------------------------------------------------------------------

    def create_recovery_point(
        self, name: str, label: str | None = None
    ) -> ContextFuture[RecoveryPoint]:
        """Keep a full snapshot of the context's current State until it is deleted."""
        return self._named(CreateRecoveryPoint, "create_recovery_point", name, label)

    def list_recovery_points(self, name: str) -> ContextFuture[list[RecoveryPoint]]:
        """The context's recovery points, oldest first."""
        return self._named(ListRecoveryPoints, "list_recovery_points", name)

    def restore_recovery_point(self, name: str, point: RecoveryPoint | int) -> ContextFuture[State]:
        """Write the data and metadata of `point` (the `RecoveryPoint` that
        `create_recovery_point()` returned, or its id) as the next version (versions never
        go back); resolves to the new State.

        Raises (through the future): `InvalidArgumentError` (`point` is neither, or belongs
        to another context), `RecoveryPointNotFoundError`, `CorruptSnapshotError`.
        """
        # It settles: the store call for a passivated context is a transition its next
        # get_tracker() waits behind, so that the tracker then loads the restored version.
        return self._with_point(
            RestoreRecoveryPoint, "restore_recovery_point", name, point, settles=True
        )

    def recovery_report(self, name: str) -> ContextFuture[RecoveryReport | None]:
        """How `name` was last loaded if that needed a fallback past damaged snapshots (what
        was damaged, where the data came from, which versions were lost), else None."""
        return self._named(GetRecoveryReport, "recovery_report", name)

    def delete_recovery_point(self, name: str, point: RecoveryPoint | int) -> ContextFuture[None]:
        """Delete one recovery point (a `RecoveryPoint` or its id).

        Raises (through the future): `InvalidArgumentError`, `RecoveryPointNotFoundError`.
        """
        return self._with_point(DeleteRecoveryPoint, "delete_recovery_point", name, point)

    def _with_point(
        self,
        kind: Callable[..., ManagerRequest],
        operation: str,
        name: object,
        point: object,
        *,
        settles: bool = False,
    ) -> ContextFuture[Any]:
        """`_named()` with the id of recovery `point`, checked here in the caller's thread."""
        try:
            point_id = recovery_point_id(validate_context_name(name), point)
        except ContextError as exc:
            return ContextFuture.failed(exc, what=f"manager.{operation}()")
        return self._request(partial(kind, name, point_id), settles=settles)

    def shutdown(self) -> ContextFuture[None]:
        """Write what every tracker has unsaved, stop them all, then stop the manager.

        Idempotent. Calls made after it fail with `ShutdownError`. A manager not shut down
        when the process exits is shut down by the exit hook, which waits for it at most
        `TrackerConfig.exit_timeout` seconds (see docs/architecture.md, "Exit").
        """
        if not self._ref.is_alive():
            reply = new_reply()
            resolve(reply, None)
            return ContextFuture(reply, timeout=self.config.ask_timeout, what="shutdown()")
        return self._request(Shutdown, settles=True)

    def _still_stopping(self, timeout: float) -> list[str] | None:
        """The contexts whose trackers have not stopped yet, sorted; None if the manager
        actor did not answer within `timeout` seconds (for the exit hook's report)."""
        reply: Reply[list[str]] = new_reply()
        try:
            self._ref.tell(ListStopping(reply))
            return reply.result(timeout)
        except pykka.ActorDeadError:
            return []  # stopped: so has every tracker
        except TimeoutError:
            return None
