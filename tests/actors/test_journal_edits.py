"""Through the runtime: a `modify` that appends to a long list or changes a nested field is
journaled as edits (entries the size of the change), checked as strictly as a whole value,
published whole to subscribers, and history reports what made each version."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import Change, InvalidValueError, State
from storage import SqliteStore
from storage._history import EARLIEST
from storage._state import copy_json_value
from tests.storage.test_history import cli
from tests.storage.test_nested_delta import changes, keys, values

from .conftest import make_manager


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "store.db", synchronous="OFF", retain_heads=2) as store:
        yield store  # closed after: Python 3.13 warns of a connection left open


def _journal(store: SqliteStore, name: str) -> dict[int, bytes]:
    _, entries, _ = store._read_changes_parts(name, EARLIEST)
    return dict(entries)


def test_appends_to_a_long_list_are_journaled_as_the_item_and_read_back_exactly(sqlite):
    manager = make_manager(sqlite, snapshot_every=1000)
    try:
        manager.create_context("cart", {"items": [f"item-{n:05}" * 4 for n in range(5000)]}).get()
        tracker = manager.get_tracker("cart").get()
        for n in range(20):
            tracker.modify(lambda state, n=n: state.data["items"].append({"sku": n})).get()
        tracker.modify(lambda state: None).get()  # no change: an entry of nothing
        last = tracker.modify(lambda state: state.data["items"].__setitem__(3, "x")).get()
        assert last.data["items"][3] == "x"
        sizes = [len(blob) for blob in _journal(sqlite, "cart").values()]
        assert len(sizes) == 22
        assert max(sizes) < 200  # the whole list is 5000 * 40 bytes
        assert manager.load("cart").get() == last
        assert sqlite.read_latest("cart") == (last, ())
    finally:
        manager.shutdown().get()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda state: state.data["items"].append((1, 2)), "data['items'][5000]"),
        (lambda state: state.data["items"].append({1: "x"}), "data['items'][5000]"),
        (lambda state: state.data["doc"]["inner"].__setitem__(2, "x"), "data['doc']['inner'][2]"),
        (lambda state: state.data["doc"].__setitem__("s", "\ud800"), "data['doc']['s']"),
        (lambda state: state.data["items"].__setitem__(9, float("nan")), "data['items'][9]"),
    ],
)
def test_a_modify_that_edits_in_a_bad_value_is_refused_and_changes_nothing(change, where):
    manager = make_manager(snapshot_every=1000)
    try:
        data = {"items": list(range(5000)), "doc": {"inner": {"a": 1}, "b": 2, "c": 3}}
        before = manager.create_context("ctx", data).get()
        tracker = manager.get_tracker("ctx").get()
        with pytest.raises(InvalidValueError) as caught:
            tracker.modify(change).get()
        assert where in str(caught.value)
        assert tracker.get_state().get() == before
    finally:
        manager.shutdown().get()


def test_an_append_nesting_past_max_depth_is_refused():
    manager = make_manager(snapshot_every=1000)
    try:
        deep: Any = []
        for _ in range(126):
            deep = [deep]
        before = manager.create_context("ctx", {"deep": [deep]}).get()  # 128 levels
        tracker = manager.get_tracker("ctx").get()

        def nest(state: State) -> None:
            inner = state.data["deep"]
            while inner:
                inner = inner[0]
            inner.append([])  # one level more

        with pytest.raises(InvalidValueError, match="nested more than 128"):
            tracker.modify(nest).get()
        assert tracker.get_state().get() == before
    finally:
        manager.shutdown().get()


def test_subscribers_receive_an_edited_value_whole():
    manager = make_manager(snapshot_every=1000)
    try:
        manager.create_context("ctx", {"items": list(range(100)), "doc": {"a": {"b": 1}}}).get()
        tracker = manager.get_tracker("ctx").get()
        received: list[Change] = []
        done = threading.Event()

        def on_change(change: Change) -> None:
            received.append(change)
            if len(received) == 2:
                done.set()

        tracker.subscribe(on_change).get()
        tracker.modify(lambda state: state.data["items"].append(100)).get()
        tracker.modify(lambda state: state.data["doc"]["a"].__setitem__("b", 2)).get()
        assert done.wait(10)
        assert received[0].changed == {"items": list(range(101))}
        assert received[1].changed == {"doc": {"a": {"b": 2}}}
    finally:
        manager.shutdown().get()


def test_history_reports_what_made_each_version(sqlite):
    manager = make_manager(sqlite, snapshot_every=1000)
    try:
        manager.create_context("ctx", {"items": [1, 2, 3]}).get()
        tracker = manager.get_tracker("ctx").get()
        point = manager.create_recovery_point("ctx").get()
        tracker.modify(lambda state: state.data["items"].append(4)).get()
        tracker.set("n", 1).get()
        manager.restore_recovery_point("ctx", point).get()
        entries = manager.history("ctx").get()
        assert [(e.version, e.kind, e.cause) for e in entries] == [
            (0, "snapshot", None),
            (1, "journal", "update"),
            (2, "journal", "update"),
            (3, "journal", "restore"),
        ]
        assert entries[1].changed == ("items",)
        assert entries[3].changed == ("items",)
        assert entries[3].removed == ("n",)
    finally:
        manager.shutdown().get()


def test_snapshots_record_their_cause_too(tmp_path):
    # A snapshot every second write: updates and restores written whole say what made them;
    # a restore of an inactive context is written by the manager itself.
    store = SqliteStore(tmp_path / "store.db", synchronous="OFF", retain_heads=10)
    manager = make_manager(store, snapshot_every=2)
    try:
        manager.create_context("ctx", {"items": [1]}).get()
        tracker = manager.get_tracker("ctx").get()
        point = manager.create_recovery_point("ctx").get()
        for n in range(3):
            tracker.modify(lambda state, n=n: state.data["items"].append(n)).get()
        manager.restore_recovery_point("ctx", point).get()
        manager.deactivate("ctx").get()
        manager.restore_recovery_point("ctx", point).get()
        entries = manager.history("ctx").get()
        assert [(e.version, e.kind, e.cause) for e in entries] == [
            (0, "snapshot", None),  # a context's first version records none
            (1, "journal", "update"),
            (2, "snapshot", "update"),
            (3, "journal", "update"),
            (4, "snapshot", "restore"),
            (5, "snapshot", "restore"),
        ]
    finally:
        manager.shutdown().get()
        store.close()


def test_the_history_command_prints_each_cause(tmp_path):
    store = SqliteStore(tmp_path / "store.db", synchronous="OFF", retain_heads=10)
    manager = make_manager(store, snapshot_every=1000)
    try:
        manager.create_context("ctx", {"items": [1]}).get()
        point = manager.create_recovery_point("ctx").get()
        manager.get_tracker("ctx").get().set("n", 1).get()
        manager.restore_recovery_point("ctx", point).get()
    finally:
        manager.shutdown().get()
        store.close()
    result = cli("history", f"sqlite:///{tmp_path / 'store.db'}", "ctx")
    assert result.returncode == 0, result.stderr
    assert [line.split()[2:4] for line in result.stdout.splitlines()] == [
        ["snapshot", "-"],
        ["journal", "update"],
        ["journal", "restore"],
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_version_a_modify_sequence_made_loads_as_acknowledged(data):
    # Random nested edits through modify (journaled as edits where the diff finds them): each
    # version read back from the store, and the head after a restart, equal what the caller
    # was acknowledged with.
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "store.db", synchronous="OFF", retain_heads=50)
        manager = make_manager(store, snapshot_every=data.draw(st.sampled_from([3, 1000])))
        try:
            start = data.draw(st.dictionaries(keys, values, max_size=4))
            acked = {0: manager.create_context("ctx", start).get()}
            tracker = manager.get_tracker("ctx").get()
            for _ in range(data.draw(st.integers(1, 8))):
                target = data.draw(changes(acked[max(acked)].data))

                def install(state: State, target: dict[str, Any] = target) -> None:
                    state.data.clear()
                    state.data.update(copy_json_value(target))

                state = tracker.modify(install).get()
                acked[state.version] = state
            for version, expected in acked.items():
                assert manager.load("ctx", version=version).get() == expected
            manager.deactivate("ctx").get()
            assert manager.get_tracker("ctx").get().get_state().get() == acked[max(acked)]
        finally:
            manager.shutdown().get()
            store.close()


def test_a_modify_that_cuts_a_list_is_journaled_as_a_truncation(sqlite):
    manager = make_manager(sqlite, snapshot_every=1000)
    try:
        manager.create_context("ctx", {"items": list(range(1000))}).get()
        tracker = manager.get_tracker("ctx").get()
        state = tracker.modify(lambda state: state.data["items"].__delitem__(-1)).get()
        assert state.data["items"] == list(range(999))
        (blob,) = _journal(sqlite, "ctx").values()
        assert len(blob) < 100
        assert manager.load("ctx", version=1).get() == state
    finally:
        manager.shutdown().get()
