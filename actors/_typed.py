"""Typed handles: a context's State as the user's own attrs class or dataclass.

Nothing in the tracker knows about models. A typed read maps the untyped `get_state()`
future through the schema; a typed write is a plain untyped `modify()` whose function
structures the model from the State, calls the user's function and installs what it
unstructures to. So typed and untyped calls on one context are ordered by the same tracker,
and every rule of `modify()` (atomic, nothing changes when the function raises, a
conflicting write from another process re-runs it) holds for typed writes as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

from actors._future import ContextFuture
from actors._handle import ContextTracker
from actors._manager import ContextManager
from actors._migrations import SCHEMA_KEY, stored_schema_version
from actors._modify import check_modify_function, modify_result_error
from actors._typed_schema import ContextSchema, schema_of
from storage import ContextError, InvalidArgumentError, State, VersionConflict

__all__ = ["TypedContexts", "TypedTracker", "Versioned"]

M = TypeVar("M")


@attrs.frozen
class Versioned(Generic[M]):
    """A model and the version of the context it is (what a typed write resolves to)."""

    model: M
    version: int


class TypedTracker(Generic[M]):
    """A typed handle on one context: its State as a model (`manager.typed(Cart)` or
    `tracker.typed(Cart)` makes one). Cheap, shareable between threads; the untyped
    `tracker` keeps working next to it. Every method returns a `ContextFuture`.
    """

    __slots__ = ("schema", "tracker")

    def __init__(self, tracker: ContextTracker, model: type[M] | ContextSchema[M]) -> None:
        self.tracker = tracker
        """The untyped handle on the same context."""
        self.schema: ContextSchema[M] = schema_of(model)
        """The model, its schema version, migrations and converter."""

    def __repr__(self) -> str:
        return f"<TypedTracker[{self.schema.model.__qualname__}] {self.tracker.name!r}>"

    @property
    def name(self) -> str:
        """The context's name."""
        return self.tracker.name

    def get_state(self) -> ContextFuture[M]:
        """The current State as a model, migrated to the model's schema version if it was
        stored by an older one (the migrated data is stored by the next typed write only).

        Raises (through the future): `ModelMismatchError` (the data does not fit),
        `SchemaVersionError` (stored by a newer schema), `MigrationError`.
        """
        return self.tracker.get_state().map(self.schema.load, what=self._what("get_state"))

    def get_versioned(self) -> ContextFuture[Versioned[M]]:
        """The current State as a model with its version: what `update()` checks against."""
        load = self.schema.load
        return self.tracker.get_state().map(
            lambda state: Versioned(load(state), state.version), what=self._what("get_versioned")
        )

    def modify(self, fn: Callable[[M], M | None]) -> ContextFuture[Versioned[M]]:
        """Run `fn` on the current model inside the tracker and install what it gives back
        as the next version, atomically.

        `fn` returns the next model (`attrs.evolve(cart, ...)`, the way for frozen models),
        or None to install the model it was given as it changed it in place (mutable
        models). It must be a plain, quick function that does not wait on any tracker. If it
        raises, nothing changes and the future raises its exception as it is. Resolves to
        the installed model (a fresh copy, read back from what was stored) and its version.

        Raises (through the future): `InvalidArgumentError` (`fn` is not a plain function,
        or returned something else than None or a model), `ModelValueError` (the model holds
        what cannot be stored or read back), and what `get_state()` raises.
        """
        what = self._what("modify")
        try:
            check_modify_function(fn)
        except InvalidArgumentError as exc:
            return ContextFuture.failed(exc, what=what)
        schema = self.schema
        installed: list[M] = []

        def typed_fn(state: State) -> None:
            model = schema.load(state)
            result = fn(model)
            if result is None:
                result = model
            elif not isinstance(result, schema.model):
                raise _result_error(schema.model, result)
            data, fresh = schema.dump(result)
            _install(state, data, schema.version)
            installed[:] = [fresh]  # a conflict may run this again: keep the last run's

        return self.tracker.modify(typed_fn).map(
            lambda state: Versioned(installed[0], state.version), what=what
        )

    def update(self, model: M, *, version: int) -> ContextFuture[Versioned[M]]:
        """Install `model` as the next version if the context is still at `version` (as read
        by `get_versioned()`): the typed `update_state()`. `model` is copied; changing it
        afterwards changes nothing stored.

        Raises (through the future): `VersionConflict` (the context moved on),
        `ModelValueError` (`model` is not a model of this handle, or holds what cannot be
        stored), `InvalidArgumentError` (`version` not an int), `SchemaVersionError` (the
        context was stored by a newer schema: this write would lose what it knows).
        """
        what = self._what("update")
        schema = self.schema
        try:
            if type(version) is not int:
                msg = f"update() takes version=<int>, got {version!r}"
                raise InvalidArgumentError(msg)
            data, fresh = schema.dump(model)
        except ContextError as exc:
            return ContextFuture.failed(exc, what=what)

        def typed_fn(state: State) -> None:
            if state.version != version:
                raise VersionConflict(state.context, version, state.version)
            stored_schema_version(state, schema.model, schema.version)
            _install(state, data, schema.version)

        return self.tracker.modify(typed_fn).map(
            lambda state: Versioned(fresh, state.version), what=what
        )

    def _what(self, method: str) -> str:
        return f"typed tracker {self.tracker.name!r}.{method}()"


def _install(state: State, data: dict[str, Any], version: int) -> None:
    # The model is the whole data; other metadata is the user's and stays.
    state.data = data
    state.metadata[SCHEMA_KEY] = str(version)


def _result_error(model: type, result: object) -> InvalidArgumentError:
    if inspect.isawaitable(result):
        return modify_result_error(result)  # closes it, so Python does not warn as well
    return InvalidArgumentError(
        f"the typed modify() function returned {type(result).__name__}: it must return a "
        f"{model.__qualname__} or None (the model it was given, changed in place); "
        "nothing was changed"
    )


class TypedContexts(Generic[M]):
    """The typed side of a manager for one model (`manager.typed(Cart)` makes one): typed
    trackers, typed creation and typed reads of stored versions."""

    __slots__ = ("manager", "schema")

    def __init__(self, manager: ContextManager, model: type[M] | ContextSchema[M]) -> None:
        self.manager = manager
        """The untyped manager."""
        self.schema: ContextSchema[M] = schema_of(model)
        """The model, its schema version, migrations and converter."""

    def __repr__(self) -> str:
        return f"<TypedContexts[{self.schema.model.__qualname__}] {self.manager!r}>"

    def tracker(self, tracker: ContextTracker) -> TypedTracker[M]:
        """The typed handle on an untyped one."""
        return TypedTracker(tracker, self.schema)

    def create_context(self, name: str, initial: M) -> ContextFuture[Versioned[M]]:
        """Create and store context `name` holding `initial` at version 0 (inactive, as
        `manager.create_context()`). Raises (through the future): `ModelValueError`, and what
        `manager.create_context()` raises."""
        try:
            data, _ = self.schema.dump(initial)
        except ContextError as exc:
            return ContextFuture.failed(exc, what="manager.typed().create_context()")
        future = self.manager.create_context(name, data, self._metadata())
        return future.map(lambda state: Versioned(self.schema.load(state), state.version))

    def get_tracker(
        self, name: str, *, create: bool = False, initial: M | None = None
    ) -> ContextFuture[TypedTracker[M]]:
        """The typed tracker of `name`, activating it; with `create=True`, a context that is
        not stored is created holding `initial` (required then). Nothing is read: a context
        that does not fit the model fails its first typed call, not this one.

        Raises (through the future): `InvalidArgumentError` (`create` without `initial`, or
        `initial` without `create`), `ModelValueError`, and what `manager.get_tracker()`
        raises.
        """
        what = "manager.typed().get_tracker()"
        if not create:
            if initial is not None:
                error = InvalidArgumentError(
                    f"initial= is the content of a context created by get_tracker(create=True);"
                    f" it was given without create=True for context {name!r}"
                )
                return ContextFuture.failed(error, what=what)
            return self.manager.get_tracker(name).map(self.tracker)
        if initial is None:
            msg = f"get_tracker(create=True) needs initial=<a {self.schema.model.__qualname__}>"
            return ContextFuture.failed(InvalidArgumentError(msg), what=what)
        try:
            data, _ = self.schema.dump(initial)
        except ContextError as exc:
            return ContextFuture.failed(exc, what=what)
        future = self.manager.get_tracker(name, create=True, data=data, metadata=self._metadata())
        return future.map(self.tracker)

    def load(
        self, name: str, *, version: int | None = None, at: datetime | None = None
    ) -> ContextFuture[M]:
        """`manager.load()` as a model: the stored head, or a kept older version (`version`,
        or the newest at or before `at`), migrated as a read is. Raises (through the
        future): what `manager.load()` and `TypedTracker.get_state()` raise."""
        return self.manager.load(name, version=version, at=at).map(self.schema.load)

    def get_states(self, names: Iterable[str]) -> ContextFuture[dict[str, M]]:
        """`manager.get_states()` as models: the stored contexts of `names` read in one call
        without activating them, each migrated as a read is. Raises (through the future):
        what `manager.get_states()` and `TypedTracker.get_state()` raise (the first context
        that does not convert fails the call, naming it)."""
        load = self.schema.load
        return self.manager.get_states(names).map(
            lambda states: {name: load(state) for name, state in states.items()},
            what=f"typed({self.schema.model.__qualname__}).get_states()",
        )

    def _metadata(self) -> dict[str, str]:
        return {SCHEMA_KEY: str(self.schema.version)}
