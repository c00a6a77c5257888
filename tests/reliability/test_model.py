"""A model test: random sequences of operations on a manager and its adapters, on a real SQLite
file, checked step by step against a plain-dict model of what every context should hold.

Hypothesis drives a `RuleBasedStateMachine` through creating, deleting, activating,
deactivating and switching contexts, setting and deleting keys, `update_state` with fresh and
stale versions, recovery points, injected tracker crashes and restarts of the whole manager,
with invalid names and values mixed in, and through tracker handles that may have gone stale.
Pairs of lifecycle calls are also issued before waiting for either, as two components sharing
a manager would; their outcome must be that of running them in order. After every step an
invariant compares everything the runtime shows (stored and in-memory States, statuses,
current contexts, recovery points) with the model, and every rule checks the value or error
its call returned.

The default run is short (`MODEL_EXAMPLES`, 25 examples of up to 30 steps, a few seconds). A
longer search (500 examples, a few minutes; the test's timeout grows with `MODEL_EXAMPLES`):

    MODEL_EXAMPLES=500 uv run pytest tests/reliability/test_model.py
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pykka
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
)

from actors import (
    ContextExistsError,
    ContextInactiveError,
    ContextNotFoundError,
    ContextStatus,
    ContextTracker,
    InvalidContextNameError,
    InvalidValueError,
    KeyNotFoundError,
    NoCurrentContextError,
    RecoveryError,
    RecoveryPointNotFoundError,
    ShutdownError,
    State,
    SupervisorConfig,
    TrackerConfig,
    VersionConflict,
    create_adapter,
    create_manager,
)
from actors.testing import crash

# A small alphabet, so that creates collide and operations meet missing contexts.
NAMES = ["a", "b-1", "c.d", "default"]
INVALID_NAMES = ["", ".hidden", "..", "a b", "a/b", "ü", "x" * 201, None, 7]
KEYS = ["k", "x", "y"]
ADAPTERS = 2

# Restarts must never give up by the clock: only the number of crashes decides, so the
# model can tell exactly when a context becomes FAILED.
SUPERVISOR = SupervisorConfig(max_restarts=3, within_seconds=3600.0, backoff_initial=0.01)
CONFIG = TrackerConfig(supervisor=SUPERVISOR, ask_timeout=15.0)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='ab\u00e9\u4e2d\U0001f600"\\', max_size=4)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="ab", max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
)
json_data = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3)
metadata = st.dictionaries(st.sampled_from(["owner", "tag"]), st.sampled_from(["", "x", "é"]))

INVALID_VALUES = [
    {1, 2},
    (1, 2),
    math.nan,
    math.inf,
    2**64,
    -(2**63) - 1,
    b"bytes",
    "\ud800",
    {"nested": [1, {"deeper": {3}}]},
    {1: "int key"},
    object(),
]


_adapter_index = st.integers(0, ADAPTERS - 1)


def _lifecycle_op(name: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """One lifecycle operation on `name` as (method, *arguments); a switch to None is
    `initialize()`."""
    return st.one_of(
        st.tuples(
            st.just("create"), st.just(name), json_data, metadata, st.none() | _adapter_index
        ),
        st.tuples(st.just("delete"), st.just(name)),
        st.tuples(st.just("activate"), st.just(name)),
        st.tuples(st.just("deactivate"), st.just(name), _adapter_index),
        st.tuples(st.just("switch"), st.just(name) | st.none(), _adapter_index),
    )


@st.composite
def op_pairs(draw: st.DrawFn) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Two lifecycle operations, on the same context half of the time."""
    name = draw(st.sampled_from(NAMES))
    other = draw(st.just(name) | st.sampled_from(NAMES))
    return draw(_lifecycle_op(name)), draw(_lifecycle_op(other))


def canonical(value: Any) -> Any:
    """`value` in a form that compares types too: 1, 1.0 and True must not pass for each other."""
    if type(value) is dict:
        return ("dict", tuple(sorted((key, canonical(item)) for key, item in value.items())))
    if type(value) is list:
        return ("list", tuple(canonical(item) for item in value))
    return (type(value).__name__, value)


def assert_same_data(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert canonical(actual) == canonical(expected), f"{actual!r} != {expected!r}"


def _maybe(handle: Handle | None) -> Any:
    """What a rule with a target returns: the handle, or nothing for the bundle."""
    return multiple() if handle is None else handle


@attrs.define
class ModelContext:
    """What one context should hold."""

    version: int
    data: dict[str, Any]
    metadata: dict[str, str]
    status: ContextStatus = ContextStatus.INACTIVE
    crashes: int = 0
    """Crashes since the context was activated: the supervisor restarts three, then gives up."""
    points: dict[int, tuple[dict[str, Any], dict[str, str], int]] = attrs.field(factory=dict)
    """Recovery points: id -> (data, metadata, version)."""


@attrs.frozen
class Handle:
    """A tracker handle the test obtained, with what identifies the runtime's cell behind it."""

    tracker: ContextTracker = attrs.field(repr=False)
    name: str
    cell: int
    manager: int


Finish = Callable[[], "Handle | None"]
"""Waits for an issued call, checks its outcome against the model and updates the model."""


class ContextModel(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="context-model-"))
        self.url = f"sqlite:///{self.tmp / 'model.db'}"
        self.manager = create_manager(self.url, config=CONFIG)
        self.adapters = [create_adapter(self.manager) for _ in range(ADAPTERS)]
        self.model: dict[str, ModelContext] = {}
        self.current: list[str | None] = [None] * ADAPTERS
        # The runtime keeps one cell per context per manager, and a new one after a delete;
        # handles lead to their cell, so the model numbers cells to predict what a handle does.
        self.generation = 0
        self.cells: dict[str, int] = {}
        self.deleted_cells: set[int] = set()
        self._cell_ids = itertools.count()

    def teardown(self) -> None:
        try:
            self.manager.shutdown().get()
        finally:
            pykka.ActorRegistry.stop_all()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- model helpers ----------------------------------------------------------------------

    def _cell(self, name: str) -> int:
        if name not in self.cells:
            self.cells[name] = next(self._cell_ids)
        return self.cells[name]

    def _handle(self, tracker: ContextTracker, name: str) -> Handle:
        assert isinstance(tracker, ContextTracker)
        assert tracker.name == name
        return Handle(tracker, name, self._cell(name), self.generation)

    def _becomes_inactive(self, name: str) -> None:
        ctx = self.model[name]
        ctx.status = ContextStatus.INACTIVE
        ctx.crashes = 0
        self.current = [None if current == name else current for current in self.current]

    def _activation_error(self, name: str) -> type[Exception] | None:
        """What activating `name` (activate, switch, initialize) fails with, if anything."""
        ctx = self.model.get(name)
        if ctx is None:
            return ContextNotFoundError
        if ctx.status is ContextStatus.FAILED:
            return RecoveryError
        return None

    def _activated(self, name: str) -> None:
        self._cell(name)
        self.model[name].status = ContextStatus.ACTIVE

    def _handle_errors(self, handle: Handle) -> tuple[type[Exception], ...]:
        """What a call through `handle` fails with; () if it reaches a running tracker."""
        errors = self._expected_handle_errors(handle)
        event(f"handle call: {' or '.join(e.__name__ for e in errors) or 'served'}")
        return errors

    def _expected_handle_errors(self, handle: Handle) -> tuple[type[Exception], ...]:
        if handle.manager != self.generation:
            if handle.cell in self.deleted_cells:
                # A deleted context's cell is either orphaned (not found) or was still the
                # manager's when it shut down (shut down): both are right.
                return (ContextNotFoundError, ShutdownError)
            return (ShutdownError,)
        if handle.cell in self.deleted_cells:
            return (ContextNotFoundError,)
        assert self.cells.get(handle.name) == handle.cell
        status = self.model[handle.name].status
        if status is ContextStatus.INACTIVE:
            return (ContextInactiveError,)
        if status is ContextStatus.FAILED:
            return (RecoveryError,)
        return ()

    def _check_state(self, state: State, name: str) -> None:
        ctx = self.model[name]
        assert isinstance(state, State)
        assert state.context == name
        assert state.version == ctx.version, (name, state.version, ctx.version)
        assert_same_data(state.data, ctx.data)
        assert state.metadata == ctx.metadata

    def _unchanged(self, name: str) -> None:
        """Check the store still holds exactly what the model says (after a refused call)."""
        if name in self.model:
            self._check_state(self.manager.load(name).get(), name)

    # -- contexts: each operation issues its call and returns what checks and applies it -----
    #
    # Split that way, one rule runs an operation and waits for it, and another issues two
    # operations before waiting for either, as two components sharing a manager would. The
    # manager takes calls in the order they arrive, so the outcome must be that of running
    # them one after the other. A finish therefore checks only its own call's result: the
    # runtime may be ahead of it (the invariant checks the runtime once both are done).

    def _create(self, name, data, meta, adapter) -> Finish:
        """Create a context; with an adapter, create_and_activate_context makes it current."""
        if adapter is None:
            future = self.manager.create_context(name, data, meta)
        else:
            future = self.adapters[adapter].create_and_activate_context(name, data, meta)

        def finish() -> Handle | None:
            if name in self.model:
                with pytest.raises(ContextExistsError):
                    future.get()
                return None  # the invariant checks that nothing changed
            result = future.get()
            self.model[name] = ModelContext(0, copy.deepcopy(data), dict(meta))
            self.cells.pop(name, None)  # a context created anew gets a new cell
            self._cell(name)
            if adapter is None:
                self._check_state(result, name)
                return None
            self._activated(name)
            self.current[adapter] = name
            return self._handle(result, name)

        return finish

    def _delete(self, name) -> Finish:
        future = self.manager.delete_context(name)

        def finish() -> None:
            if name not in self.model:
                with pytest.raises(ContextNotFoundError):
                    future.get()
                return
            assert future.get() is None
            self._becomes_inactive(name)
            del self.model[name]
            cell = self.cells.pop(name, None)
            if cell is not None:
                self.deleted_cells.add(cell)

        return finish

    def _activate(self, name) -> Finish:
        future = self.adapters[0].activate_context(name)

        def finish() -> Handle | None:
            error = self._activation_error(name)
            if error is not None:
                with pytest.raises(error):
                    future.get()
                return None
            tracker = future.get()
            self._activated(name)
            return self._handle(tracker, name)

        return finish

    def _deactivate(self, name, adapter) -> Finish:
        future = self.adapters[adapter].deactivate_context(name)

        def finish() -> None:
            if name not in self.model:
                with pytest.raises(ContextNotFoundError):
                    future.get()
                return
            assert future.get() is None
            self._becomes_inactive(name)

        return finish

    def _switch(self, name, adapter) -> Finish:
        """Switch an adapter to `name`; `name=None` is `initialize()`, which creates the
        context "default" if absent and switches to it."""
        if name is None:
            future = self.adapters[adapter].initialize()
        else:
            future = self.adapters[adapter].switch_context(name)

        def finish() -> Handle | None:
            target = name
            if target is None:
                target = "default"
                if target not in self.model:
                    self.model[target] = ModelContext(0, {}, {})
                    self.cells.pop(target, None)
            error = self._activation_error(target)
            if error is not None:
                with pytest.raises(error):
                    future.get()
                return None
            tracker = future.get()
            self._activated(target)
            self.current[adapter] = target
            return self._handle(tracker, target)

        return finish

    @rule(
        target=handles,
        name=st.sampled_from(NAMES),
        data=json_data,
        meta=metadata,
        adapter=st.none() | st.integers(0, ADAPTERS - 1),
    )
    def create(self, name, data, meta, adapter):
        return _maybe(self._create(name, data, meta, adapter)())

    @rule(name=st.sampled_from(NAMES))
    def delete_context(self, name):
        self._delete(name)()

    @rule(target=handles, name=st.sampled_from(NAMES))
    def activate(self, name):
        return _maybe(self._activate(name)())

    @rule(name=st.sampled_from(NAMES), adapter=st.integers(0, ADAPTERS - 1))
    def deactivate(self, name, adapter):
        self._deactivate(name, adapter)()

    @rule(target=handles, name=st.sampled_from(NAMES), adapter=st.integers(0, ADAPTERS - 1))
    def switch(self, name, adapter):
        return _maybe(self._switch(name, adapter)())

    @rule(target=handles, adapter=st.integers(0, ADAPTERS - 1))
    def initialize_adapter(self, adapter):
        return _maybe(self._switch(None, adapter)())

    @rule(target=handles, ops=op_pairs())
    def pipelined(self, ops):
        """Issue two operations before waiting for either."""
        first, second = ops
        event(f"pipelined: {first[0]} then {second[0]}")
        finish_first = getattr(self, f"_{first[0]}")(*first[1:])
        finish_second = getattr(self, f"_{second[0]}")(*second[1:])
        results = [finish_first(), finish_second()]
        return multiple(*(handle for handle in results if handle is not None))

    @rule(name=st.sampled_from(INVALID_NAMES), data=json_data, via_adapter=st.booleans())
    def create_invalid_name(self, name, data, via_adapter):
        if via_adapter:
            future = self.adapters[0].create_and_activate_context(name, data)
        else:
            future = self.manager.create_context(name, data)
        with pytest.raises(InvalidContextNameError):
            future.get()

    @rule(
        name=st.sampled_from(INVALID_NAMES),
        op=st.sampled_from(
            [
                "get_tracker",
                "deactivate",
                "delete_context",
                "status",
                "load",
                "create_recovery_point",
                "list_recovery_points",
                "switch",
            ]
        ),
    )
    def other_call_with_invalid_name(self, name, op):
        if op == "switch":
            future = self.adapters[0].switch_context(name)
        elif op == "create_recovery_point":
            future = self.manager.create_recovery_point(name, None)
        else:
            future = getattr(self.manager, op)(name)
        with pytest.raises(InvalidContextNameError):
            future.get()

    # -- data through tracker handles, which may be stale -----------------------------------

    @rule(handle=handles, key=st.sampled_from(KEYS), value=json_values)
    def set_key(self, handle, key, value):
        future = handle.tracker.set(key, value)
        errors = self._handle_errors(handle)
        if errors:
            with pytest.raises(errors):
                future.get()
            self._unchanged(handle.name)
            return
        ctx = self.model[handle.name]
        ctx.version += 1
        ctx.data[key] = copy.deepcopy(value)
        assert future.get() == ctx.version

    @rule(
        handle=handles,
        key=st.sampled_from([*KEYS, 3]),
        value=st.sampled_from(INVALID_VALUES),
        via_update=st.booleans(),
    )
    def set_invalid_value(self, handle, key, value, via_update):
        """Invalid keys and values are refused before anything is sent: nothing changes."""
        if via_update:
            state = State(handle.name, version=0, data={key: value})
            future = handle.tracker.update_state(state)
        else:
            future = handle.tracker.set(key, value)
        with pytest.raises(InvalidValueError):
            future.get()
        self._unchanged(handle.name)

    @rule(handle=handles, key=st.sampled_from(KEYS))
    def delete_key(self, handle, key):
        future = handle.tracker.delete(key)
        errors = self._handle_errors(handle)
        ctx = self.model.get(handle.name)
        if not errors and key not in ctx.data:
            errors = (KeyNotFoundError,)
        if errors:
            with pytest.raises(errors):
                future.get()
            self._unchanged(handle.name)
            return
        ctx.version += 1
        del ctx.data[key]
        assert future.get() == ctx.version

    @rule(handle=handles, data=json_data, offset=st.sampled_from([0, 0, -1, -2, 1]))
    def update_state(self, handle, data, offset):
        """`update_state` with the version just read (offset 0) or a stale or future one."""
        errors = self._handle_errors(handle)
        if errors:
            state = State(handle.name, version=0, data=data)
        else:
            state = handle.tracker.get_state().get()
            self._check_state(state, handle.name)
            state.data = copy.deepcopy(data)
            state.version += offset
            if offset:
                errors = (VersionConflict,)
        future = handle.tracker.update_state(state)
        if errors:
            with pytest.raises(errors) as info:
                future.get()
            if isinstance(info.value, VersionConflict):
                assert info.value.expected == state.version
                assert info.value.actual == self.model[handle.name].version
            self._unchanged(handle.name)
            return
        ctx = self.model[handle.name]
        ctx.version += 1
        ctx.data = copy.deepcopy(data)
        self._check_state(future.get(), handle.name)
        assert state.data == data, "update_state() must leave its argument alone"

    @rule(handle=handles)
    def crash_tracker(self, handle):
        """Crash the tracker: with the durable policy nothing acknowledged is lost; the
        fourth crash since activation makes the supervisor give up (FAILED)."""
        future = crash(handle.tracker)
        errors = self._handle_errors(handle)
        if not errors:
            ctx = self.model[handle.name]
            ctx.crashes += 1
            if ctx.crashes > SUPERVISOR.max_restarts:
                ctx.status = ContextStatus.FAILED
                errors = (RecoveryError,)
                event("crash: the supervisor gave up")
        if errors:
            with pytest.raises(errors):
                future.get()
            return
        assert future.get() is None
        self._check_state(handle.tracker.get_state().get(), handle.name)

    # -- recovery points --------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), label=st.sampled_from([None, "x", "before the storm"]))
    def create_recovery_point(self, name, label):
        future = self.manager.create_recovery_point(name, label)
        ctx = self.model.get(name)
        if ctx is None:
            with pytest.raises(ContextNotFoundError):
                future.get()
            return
        if ctx.status is ContextStatus.FAILED:
            with pytest.raises(RecoveryError):
                future.get()
            return
        point = future.get()
        assert point.context == name
        assert point.version == ctx.version
        assert point.label == label
        assert point.point_id not in ctx.points
        ctx.points[point.point_id] = (copy.deepcopy(ctx.data), dict(ctx.metadata), ctx.version)

    @rule(name=st.sampled_from(NAMES), data=st.data())
    def restore_recovery_point(self, name, data):
        """Restore one of the context's points, another context's, or an id never issued."""
        ctx = self.model.get(name)
        own = sorted(ctx.points) if ctx is not None else []
        others = sorted(
            point for other, c in self.model.items() if other != name for point in c.points
        )
        if own and data.draw(st.booleans(), label="own point"):
            point_id = data.draw(st.sampled_from(own), label="point_id")
        else:
            point_id = data.draw(st.sampled_from([*others, 10**9]), label="point_id")
        future = self.manager.restore_recovery_point(name, point_id)
        if ctx is None:
            error: type[Exception] | None = ContextNotFoundError
        elif ctx.status is ContextStatus.FAILED:
            error = RecoveryError
        elif point_id not in ctx.points:
            error = RecoveryPointNotFoundError
        else:
            error = None
        if error is not None:
            with pytest.raises(error):
                future.get()
            self._unchanged(name)
            return
        assert ctx is not None
        point_data, point_metadata, _ = ctx.points[point_id]
        ctx.version += 1
        ctx.data = copy.deepcopy(point_data)
        ctx.metadata = dict(point_metadata)
        self._check_state(future.get(), name)

    # -- the whole manager ------------------------------------------------------------------

    @rule()
    def restart_manager(self):
        """Shut down and start a new manager on the same file: everything stored survives,
        every context comes back inactive, adapters start with no current context."""
        assert self.manager.shutdown().get() is None
        with pytest.raises(ShutdownError):
            self.manager.list_contexts().get()
        self.manager = create_manager(self.url, config=CONFIG)
        self.adapters = [create_adapter(self.manager) for _ in range(ADAPTERS)]
        self.generation += 1
        self.cells.clear()
        self.current = [None] * ADAPTERS
        for ctx in self.model.values():
            ctx.status = ContextStatus.INACTIVE
            ctx.crashes = 0
        assert self.manager.active_contexts().get() == []
        for name in self.model:
            self._check_state(self.manager.load(name).get(), name)
        assert [adapter.current_context().get() for adapter in self.adapters] == self.current

    # -- after every step -------------------------------------------------------------------

    @invariant()
    def runtime_agrees_with_model(self):
        manager = self.manager
        assert manager.list_contexts().get() == sorted(self.model)
        active = sorted(n for n, c in self.model.items() if c.status is ContextStatus.ACTIVE)
        assert manager.active_contexts().get() == active
        for name in NAMES:
            ctx = self.model.get(name)
            expected = ctx.status if ctx is not None else ContextStatus.NONEXISTENT
            assert manager.status(name).get() is expected, name
        for name, ctx in self.model.items():
            self._check_state(manager.load(name).get(), name)
            if ctx.status is ContextStatus.ACTIVE:
                tracker = manager.get_tracker(name).get()
                self._check_state(tracker.get_state().get(), name)
            points = manager.list_recovery_points(name).get()
            assert [p.point_id for p in points] == sorted(ctx.points)
            assert [p.version for p in points] == [ctx.points[p][2] for p in sorted(ctx.points)]
        for adapter, current in zip(self.adapters, self.current, strict=True):
            assert adapter.current_context().get() == current
            future = adapter.get_current_tracker()
            if current is None:
                with pytest.raises(NoCurrentContextError):
                    future.get()
                continue
            tracker = future.get()
            assert tracker.name == current
            if self.model[current].status is ContextStatus.ACTIVE:
                self._check_state(tracker.get_state().get(), current)


EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "25"))

SECONDS_PER_EXAMPLE = 1.0
"""The time budget of one example (30 steps), about three times what one takes on a busy
machine: the run's timeout grows with `MODEL_EXAMPLES` instead of pyproject's 60 s."""

ContextModel.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None
)
TestContextModel = pytest.mark.timeout(max(60.0, EXAMPLES * SECONDS_PER_EXAMPLE))(
    ContextModel.TestCase
)
