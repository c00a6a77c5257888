"""ContextTracker: the caller's handle on one context's tracker actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from actors._change_stream import ChangeStream
from actors._changes import Change
from actors._config import SubscriptionConfig
from actors._future import ContextFuture, new_reply
from actors._messages import (
    DeleteValue,
    GetState,
    GetValue,
    Keys,
    MakeRecoveryPoint,
    Modify,
    Save,
    SetMetadata,
    SetValue,
    TrackerRequest,
    UpdateState,
)
from actors._modify import check_modify_function
from actors._subscribe import hub_registrar, open_stream, open_subscription
from actors._subscription import Subscription
from storage import (
    ForeignStateError,
    InvalidArgumentError,
    InvalidValueError,
    RecoveryPoint,
    State,
)
from storage._state import (
    check_item,
    check_key,
    check_metadata_item,
    copy_json_value,
    validate_contents,
)

if TYPE_CHECKING:
    from actors._cell import Cell
    from actors._typed import TypedTracker
    from actors._typed_schema import ContextSchema

__all__ = ["ContextTracker"]

T = TypeVar("T")
M = TypeVar("M")


class ContextTracker:
    """A handle on one context's tracker; cheap to copy around, safe to share between threads.

    Every method returns a `ContextFuture`. A handle keeps working across tracker restarts
    and re-activations; once its context is deactivated, deleted or shut down, calls fail
    with `ContextInactiveError`, `ContextNotFoundError` or `ShutdownError`.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"<ContextTracker {self._cell.name!r} {self._cell.status.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContextTracker) and other._cell is self._cell

    def __hash__(self) -> int:
        return hash(self._cell)

    @property
    def name(self) -> str:
        """The context's name."""
        return self._cell.name

    def get_state(self) -> ContextFuture[State]:
        """A private copy of the current State."""
        return self._ask(GetState, "get_state")

    def get(self, key: str, default: Any = None) -> ContextFuture[Any]:
        """A copy of the value under `key`, or `default`.

        Raises (through the future): `InvalidValueError` if `key` is not a str.
        """
        try:
            check_key(key)
        except InvalidValueError as exc:
            return ContextFuture.failed(exc, what=self._what("get"))
        return self._ask(GetValue, "get", key, default)

    def keys(self) -> ContextFuture[list[str]]:
        """The keys of the data, sorted (a read: the version does not move)."""
        return self._ask(Keys, "keys")

    def set(self, key: str, value: Any) -> ContextFuture[int]:
        """Store `value` under `key`; resolves to the new version once accepted (and stored,
        under the durable sync policy).

        Raises (through the future):
            InvalidValueError: `key` is not a str or `value` is not JSON-compatible.
        """
        try:
            check_item(key, value)
        except InvalidValueError as exc:
            return ContextFuture.failed(exc, what=self._what("set"))
        return self._ask(SetValue, "set", key, copy_json_value(value))

    def delete(self, key: str) -> ContextFuture[int]:
        """Remove `key`; resolves to the new version. A missing key fails with
        `KeyNotFoundError`, a key that is not a str with `InvalidValueError`."""
        try:
            check_key(key)
        except InvalidValueError as exc:
            return ContextFuture.failed(exc, what=self._what("delete"))
        return self._ask(DeleteValue, "delete", key)

    def set_metadata(self, key: str, value: str) -> ContextFuture[int]:
        """Store a str metadata entry; resolves to the new version."""
        try:
            check_metadata_item(key, value)
        except InvalidValueError as exc:
            return ContextFuture.failed(exc, what=self._what("set_metadata"))
        return self._ask(SetMetadata, "set_metadata", key, value)

    def update_state(self, state: State) -> ContextFuture[State]:
        """Install a copy of `state`'s data and metadata as the next version, if `state.version`
        is still the current one; resolves to (a copy of) the new State. `state` itself is
        left untouched.

        Raises (through the future):
            VersionConflict: the context moved on since `state` was read.
            ForeignStateError: `state` belongs to another context.
            InvalidValueError: `state` holds a value that is not JSON-compatible.
        """
        what = self._what("update_state")
        if not isinstance(state, State):  # callers may be untyped
            error = InvalidValueError("state", state, "update_state() takes a State")  # type: ignore[unreachable]
            return ContextFuture.failed(error, what=what)
        if state.context != self.name:
            return ContextFuture.failed(ForeignStateError(self.name, state.context), what=what)
        try:
            validate_contents(state.data, state.metadata)
        except InvalidValueError as exc:
            return ContextFuture.failed(exc, what=what)
        return self._ask(UpdateState, "update_state", state.snapshot())

    def modify(self, fn: Callable[[State], object]) -> ContextFuture[State]:
        """Run `fn` on a private copy of the State inside the actor and install the result as
        the next version, atomically: the way to read-modify-write without conflicts.

        `fn` changes the State it is given in place (`state.set(...)`) and returns None (or
        that same State). It must be a plain function, quick, and must not wait on this or
        any other tracker. If it raises, nothing changes and the future raises that
        exception as it is. Resolves to the new State.

        Raises (through the future):
            InvalidArgumentError: `fn` is not callable, is a coroutine function (it would
                only build a coroutine, never run), or returned something else than None or
                its State (a new dict, say, which would not be installed). Nothing changes
                and the version does not move.
            InvalidValueError: `fn` left a value in the State that is not JSON-compatible.
        """
        try:
            check_modify_function(fn)
        except InvalidArgumentError as exc:
            return ContextFuture.failed(exc, what=self._what("modify"))
        return self._ask(Modify, "modify", fn)

    def typed(self, model: type[M] | ContextSchema[M]) -> TypedTracker[M]:
        """A typed handle on this context: its State as `model` (an attrs class or
        dataclass, or its `ContextSchema`). See docs/typed-contexts.md."""
        from actors._typed import TypedTracker  # noqa: PLC0415 - it imports this module

        return TypedTracker(self, model)

    def save(self) -> ContextFuture[int]:
        """Write any unsaved updates (batched sync policy); resolves to the stored version."""
        return self._ask(Save, "save")

    def create_recovery_point(self, label: str | None = None) -> ContextFuture[RecoveryPoint]:
        """Keep a full snapshot of the current State until it is deleted."""
        return self._ask(MakeRecoveryPoint, "create_recovery_point", label)

    def subscribe(
        self, callback: Callable[[Change], object], config: SubscriptionConfig | None = None
    ) -> ContextFuture[Subscription[Change]]:
        """Call `callback(change)` with every change of this context, in version order and
        once each, in a thread of the subscription's own. Resolves to the `Subscription` once
        it is in place: every change accepted from then on is delivered.

        A change is published once stored (durable sync policy) or once accepted (batched).
        A slow callback never slows the tracker: changes wait in a bounded buffer and
        `config.overflow` says what a full one does. An exception the callback raises is
        logged and counted on the subscription, and delivery goes on. The subscription
        survives restarts, passivation and deactivation; it ends on `unsubscribe()`, when the
        context is deleted and when the manager shuts down.

        Raises (through the future): `ContextNotFoundError` (deleted), `ShutdownError`.
        """
        cell = self._cell
        register = hub_registrar(cell.changes, cell)
        return open_subscription(cell.name, callback, config, cell.timeout, register)

    def changes(self, config: SubscriptionConfig | None = None) -> ChangeStream[Change]:
        """An async iterator over this context's changes, delivered as by `subscribe()`.
        Call it from a coroutine: `async with tracker.changes() as changes: async for ...`."""
        cell = self._cell
        return open_stream(cell.name, config, cell.timeout, hub_registrar(cell.changes, cell))

    def _what(self, method: str) -> str:
        return f"tracker {self._cell.name!r}.{method}()"

    def _ask(
        self, kind: Callable[..., TrackerRequest], method: str, *args: Any
    ) -> ContextFuture[T]:
        reply = new_reply()
        self._cell.send(kind(*args, reply), reply)
        return ContextFuture(reply, timeout=self._cell.timeout, what=self._what(method))
