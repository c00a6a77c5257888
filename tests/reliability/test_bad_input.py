"""Bad input: each gets a clear, typed error naming the bad value, and changes nothing."""

from __future__ import annotations

import functools
import gc
import math
import sqlite3
import warnings
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

import pykka
import pytest

from actors import (
    ContextError,
    ContextStatus,
    ForeignStateError,
    InvalidArgumentError,
    InvalidContextNameError,
    InvalidValueError,
    RecoveryPointNotFoundError,
    ShutdownError,
    StateTooLargeError,
    TrackerConfig,
    UnsupportedFormatError,
    VersionConflict,
    create_adapter,
    create_manager,
)
from storage import SqliteStore
from storage._state import MAX_DEPTH

BAD_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "a\\b",
    "\x00",
    "x" * 10_000,
    "cafe\u0301",  # a combining accent
    "\u0430dmin",  # Cyrillic a, looks like "admin"
    "admin\n",
    None,
    42,
    b"bytes",
]


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def db(tmp_path):
    return tmp_path / "bad.db"


@pytest.fixture
def manager(db):
    manager = create_manager(f"sqlite:///{db}", config=TrackerConfig(max_state_bytes=10_000))
    yield manager
    manager.shutdown().get()


@pytest.fixture
def tracker(manager):
    manager.create_context("ctx", {"n": 1, "nested": {"list": [1, 2]}}).get()
    return manager.get_tracker("ctx").get()


def _unchanged(manager, tracker, before):
    assert tracker.get_state().get() == before
    assert manager.load("ctx").get() == before
    # The actor is healthy: the next good call works.
    assert tracker.set("ok", True).get() == before.version + 1


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda name: repr(name)[:20])
def test_bad_context_name_is_refused_everywhere(manager, name, wait):
    adapter = create_adapter(manager)
    calls = [
        lambda: manager.create_context(name),
        lambda: manager.get_tracker(name),
        lambda: manager.delete_context(name),
        lambda: manager.status(name),
        lambda: manager.save(name),
        lambda: manager.load(name),
        lambda: manager.create_recovery_point(name),
        lambda: manager.restore_recovery_point(name, 1),
        lambda: adapter.switch_context(name),
        lambda: adapter.create_and_activate_context(name),
        lambda: adapter.deactivate_context(name),
    ]
    for call in calls:
        with pytest.raises(InvalidContextNameError) as info:
            wait(call())
        long = isinstance(name, str) and len(name) > 200
        assert repr(name[:40] + "..." if long else name) in str(info.value)
    assert manager.list_contexts().get() == []


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("k", {1, 2}, "set"),
        ("k", (1, 2), "tuple"),
        ("k", object(), "object"),
        ("k", datetime.now(UTC), "datetime"),
        ("k", Decimal("1.5"), "Decimal"),
        ("k", math.nan, "not finite"),
        ("k", math.inf, "not finite"),
        ("k", 2**64, "64-bit"),
        ("k", {"deep": [{"ok": 1}, {2: "non-str key"}]}, "not a str"),
        (7, "value", "keys must be str"),
        (None, "value", "keys must be str"),
    ],
    ids=[
        "set",
        "tuple",
        "object",
        "datetime",
        "decimal",
        "nan",
        "inf",
        "bigint",
        "nested-key",
        "int-key",
        "none-key",
    ],
)
def test_bad_value_is_refused_and_changes_nothing(manager, tracker, key, value, fragment, wait):
    before = tracker.get_state().get()
    with pytest.raises(InvalidValueError, match=fragment) as info:
        wait(tracker.set(key, value))
    assert repr(key) in str(info.value)
    _unchanged(manager, tracker, before)


def test_bad_value_inside_modify_and_update_state_changes_nothing(manager, tracker, wait):
    before = tracker.get_state().get()

    def sneak(state):
        state.data["list"] = [1, {3}]  # around State.set's check

    with pytest.raises(InvalidValueError, match=r"data\['list'\]\[1\]"):
        wait(tracker.modify(sneak))
    bad = before.snapshot()
    bad.data["k"] = float("nan")
    with pytest.raises(InvalidValueError, match="not finite"):
        wait(tracker.update_state(bad))
    _unchanged(manager, tracker, before)


class _Dict(dict):  # type: ignore[type-arg]
    """A dict subclass: equal to a dict, but not a JSON value that comes back as itself."""


@pytest.mark.parametrize(
    ("sneak", "fragment"),
    [
        (lambda s: s.get("list").append({3}), r"data\['list'\]\[2\]"),
        (lambda s: s.data.__setitem__("list", (1, 2)), "tuple"),
        (lambda s: s.data.__setitem__("list", _Dict()), "JSON-compatible"),
        (lambda s: s.data.__setitem__(5, 1), "keys must be str"),
        (lambda s: s.metadata.__setitem__("owner", 5), "metadata"),
        (lambda s: setattr(s, "data", MappingProxyType({"k": {1}})), "set"),
        (lambda s: setattr(s, "data", [1]), "mapping"),
    ],
    ids=["in-place", "equal-tuple", "dict-subclass", "int-key", "metadata", "proxy", "list"],
)
def test_modify_result_is_checked_wherever_it_changed(manager, tracker, sneak, fragment, wait):
    # modify() checks only the values that differ from the current State: every way of
    # slipping a bad value past State.set must still count as a difference.
    tracker.set("list", [1, 2]).get()
    before = tracker.get_state().get()
    with pytest.raises(InvalidValueError, match=fragment) as info:
        wait(tracker.modify(sneak))
    assert "modify() result" in str(info.value)
    _unchanged(manager, tracker, before)


def test_modify_may_replace_data_with_any_mapping_of_good_values(tracker):
    state = tracker.modify(lambda s: setattr(s, "data", MappingProxyType({"k": [1]}))).get()
    assert type(state.data) is dict
    assert tracker.get_state().get().data == {"k": [1]}


@pytest.mark.parametrize(("key", "value"), [("owner", 5), ("owner", None), (5, "v")])
def test_bad_metadata_is_refused(manager, tracker, key, value, wait):
    before = tracker.get_state().get()
    with pytest.raises(InvalidValueError, match="metadata"):
        wait(tracker.set_metadata(key, value))
    with pytest.raises(InvalidValueError, match="metadata"):
        wait(manager.create_context("other", metadata={key: value}))
    _unchanged(manager, tracker, before)
    assert manager.status("other").get() is ContextStatus.NONEXISTENT


def test_oversized_state_is_refused(manager, tracker, wait):
    before = tracker.get_state().get()
    with pytest.raises(StateTooLargeError, match="over the limit of 10000") as info:
        wait(tracker.set("blob", "x" * 20_000))
    assert info.value.name == "ctx"
    _unchanged(manager, tracker, before)


def test_stale_update_state_is_refused(manager, tracker, wait):
    stale = tracker.get_state().get()
    tracker.set("n", 2).get()
    before = tracker.get_state().get()
    stale.set("n", 99)
    with pytest.raises(VersionConflict) as info:
        wait(tracker.update_state(stale))
    assert (info.value.name, info.value.expected, info.value.actual) == (
        "ctx",
        stale.version,
        before.version,
    )
    _unchanged(manager, tracker, before)


def test_state_of_another_context_is_refused(manager, tracker, wait):
    manager.create_context("other").get()
    foreign = manager.get_tracker("other").get().get_state().get()
    foreign.version = tracker.get_state().get().version  # even with a matching version
    before = tracker.get_state().get()
    with pytest.raises(ForeignStateError, match="'other'"):
        wait(tracker.update_state(foreign))
    _unchanged(manager, tracker, before)


def test_restore_of_unknown_recovery_point_is_refused(manager, tracker, wait):
    before = tracker.get_state().get()
    with pytest.raises(RecoveryPointNotFoundError, match="12345"):
        wait(manager.restore_recovery_point("ctx", 12345))
    _unchanged(manager, tracker, before)


def test_calls_after_shutdown_fail_with_shutdown_error(db, wait):
    manager = create_manager(f"sqlite:///{db}")
    manager.create_context("ctx").get()
    tracker = manager.get_tracker("ctx").get()
    manager.shutdown().get()
    for call in [
        lambda: tracker.set("k", 1),
        tracker.get_state,
        manager.list_contexts,
        lambda: manager.get_tracker("ctx"),
        lambda: create_adapter(manager).initialize(),
    ]:
        with pytest.raises(ShutdownError):
            wait(call())
    with SqliteStore(db) as store:
        assert store.read_head("ctx").version == 0


def test_sqlite_file_of_another_application_is_refused(tmp_path):
    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        conn.commit()
    with pytest.raises(UnsupportedFormatError, match="another application"):
        create_manager(f"sqlite:///{foreign}")
    with closing(sqlite3.connect(foreign)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_sqlite_file_from_a_newer_schema_is_refused(db):
    SqliteStore(db).close()
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(UnsupportedFormatError, match="schema version 99"):
        create_manager(f"sqlite:///{db}")


@pytest.mark.parametrize("user_version", [0, -1])
def test_sqlite_file_of_a_schema_we_never_wrote_is_refused(db, user_version):
    SqliteStore(db).close()
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {user_version}")
    with pytest.raises(UnsupportedFormatError, match=f"schema version {user_version},") as info:
        create_manager(f"sqlite:///{db}")
    assert str(db) in str(info.value)


def test_every_refusal_is_a_context_error():
    for error in (
        InvalidContextNameError,
        InvalidValueError,
        StateTooLargeError,
        VersionConflict,
        ForeignStateError,
        RecoveryPointNotFoundError,
        ShutdownError,
        UnsupportedFormatError,
    ):
        assert issubclass(error, ContextError)


async def _async_increment(state):
    state.set("n", state.get("n") + 1)


class _AsyncCallable:
    async def __call__(self, state):
        state.set("n", 99)


@pytest.mark.parametrize(
    ("fn", "fragment"),
    [
        (_async_increment, "coroutine function"),
        (functools.partial(_async_increment), "coroutine function"),
        (_AsyncCallable(), "coroutine function"),
        (lambda s: _async_increment(s), "returned an awaitable"),  # noqa: PLW0108 - not a coroutine function itself
        (lambda s: {**s.data, "n": 2}, "returned dict"),
        (lambda s: s.snapshot(), "returned State"),
        (lambda s: 0, "returned int"),
        (42, "takes a function"),
    ],
    ids=[
        "async",
        "partial-async",
        "async-call",
        "returns-coroutine",
        "dict",
        "other-state",
        "int",
        "not-callable",
    ],
)
def test_modify_refuses_what_it_cannot_do(manager, tracker, fn, fragment, wait):
    before = tracker.get_state().get()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited" either
        with pytest.raises(InvalidArgumentError, match=fragment):
            wait(tracker.modify(fn))
        gc.collect()
    _unchanged(manager, tracker, before)


def test_modify_may_return_the_state_it_was_given(tracker, wait):
    def increment(state):
        state.set("n", state.get("n") + 1)
        return state

    assert wait(tracker.modify(increment)).get("n") == 2


def test_restore_recovery_point_takes_the_point_or_its_id(manager, tracker, wait):
    point = wait(manager.create_recovery_point("ctx", "before"))
    tracker.set("n", 2).get()
    assert wait(manager.restore_recovery_point("ctx", point)).get("n") == 1
    tracker.set("n", 3).get()
    assert wait(manager.restore_recovery_point("ctx", point.point_id)).get("n") == 1
    wait(manager.delete_recovery_point("ctx", point))
    assert manager.list_recovery_points("ctx").get() == []


@pytest.mark.parametrize(
    ("point", "fragment"),
    [
        ("1", "got str '1'"),
        (None, "got NoneType None"),
        (1.0, "got float 1.0"),
        (True, "got bool True"),
    ],
    ids=["str", "none", "float", "bool"],
)
def test_restore_recovery_point_refuses_what_is_not_a_point(
    manager, tracker, point, fragment, wait
):
    manager.create_recovery_point("ctx").get()
    before = tracker.get_state().get()
    for call in (manager.restore_recovery_point, manager.delete_recovery_point):
        with pytest.raises(InvalidArgumentError, match=fragment):
            wait(call("ctx", point))
    _unchanged(manager, tracker, before)
    assert len(manager.list_recovery_points("ctx").get()) == 1


def test_restore_recovery_point_refuses_a_point_of_another_context(manager, tracker, wait):
    manager.create_context("other").get()
    foreign = manager.create_recovery_point("other").get()
    before = tracker.get_state().get()
    with pytest.raises(InvalidArgumentError, match="belongs to context 'other', not 'ctx'"):
        wait(manager.restore_recovery_point("ctx", foreign))
    _unchanged(manager, tracker, before)


def _nested(depth):
    """A list nested `depth` lists deep."""
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_value_nested_to_the_limit_is_stored(manager, tracker, wait):
    assert wait(tracker.set("deep", _nested(MAX_DEPTH))) == 1
    assert manager.load("ctx").get().get("deep") == _nested(MAX_DEPTH)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 256, 900, 5000])
def test_a_value_nested_too_deep_is_refused_by_every_entry_point(manager, tracker, depth, wait):
    # orjson refuses to write more than 255 levels and Python's own limit is about 1,000:
    # the value is refused in the caller's thread, before any actor sees it.
    before = tracker.get_state().get()
    deep = _nested(depth)
    too_deep = f"nested more than {MAX_DEPTH} deep"
    stale = before.snapshot()
    stale.data["deep"] = deep
    calls = [
        lambda: tracker.set("deep", deep),
        lambda: tracker.set("deep", {"inside": deep}),
        lambda: tracker.update_state(stale),
        lambda: tracker.modify(lambda s: s.data.__setitem__("deep", deep)),
        lambda: manager.create_context("other", {"deep": deep}),
    ]
    for call in calls:
        with pytest.raises(InvalidValueError, match=too_deep):
            wait(call())
    _unchanged(manager, tracker, before)
    assert manager.status("other").get() is ContextStatus.NONEXISTENT
    assert manager.status("ctx").get() is ContextStatus.ACTIVE


@pytest.mark.parametrize("key", [123, None, ("a",)], ids=["int", "none", "tuple"])
def test_a_key_that_is_not_a_str_is_refused_by_get_and_delete(manager, tracker, key, wait):
    before = tracker.get_state().get()
    for call in (tracker.get, tracker.delete):
        with pytest.raises(InvalidValueError, match="keys must be str"):
            wait(call(key))
    _unchanged(manager, tracker, before)


def test_subscribe_refuses_what_cannot_be_a_callback_or_a_config(manager, tracker, wait):
    with pytest.raises(InvalidArgumentError, match="takes a callable, got int 42"):
        wait(tracker.subscribe(42))
    with pytest.raises(InvalidArgumentError, match="SubscriptionConfig or None, got str"):
        wait(tracker.subscribe(print, config="big"))
    adapter = create_adapter(manager)
    with pytest.raises(InvalidArgumentError, match="takes a callable"):
        wait(adapter.subscribe_current(None))


@pytest.mark.parametrize(
    "timeout", [-1, "soon", math.nan, True], ids=["negative", "str", "nan", "bool"]
)
def test_a_wait_with_a_bad_timeout_is_refused_and_the_call_goes_on(tracker, timeout):
    future = tracker.set("n", 5)
    with pytest.raises(InvalidArgumentError, match="timeout must be None or a number"):
        future.get(timeout=timeout)
    assert future.get() == 1


def test_an_adapter_needs_a_manager():
    with pytest.raises(InvalidArgumentError, match="fronts a ContextManager, not str"):
        create_adapter("sqlite:///x.db")
