"""Faults 2-6 of the reliability issue: tracker crashes at each point of an update, storage
faults, corrupt snapshots, restart storms, and the durability settings of every connection."""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import ExitStack, closing

import pykka
import pytest

from actors import (
    ContextFailedError,
    ContextStatus,
    ContextTimeoutError,
    OutcomeUnknownError,
    PersistenceError,
    RecoveryError,
    SupervisorConfig,
    TrackerConfig,
    create_manager,
)
from actors.testing import FaultyStore, InjectedCrash, crash
from storage import JOURNAL_FORMAT_VERSION, SqliteStore

FAST_RESTARTS = SupervisorConfig(max_restarts=3, within_seconds=30.0, backoff_initial=0.01)


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(tmp_path / "faults.db")
    yield store
    store.close()


@pytest.fixture
def faulty(sqlite_store):
    return FaultyStore(sqlite_store)


def _manager(store, **config):
    config.setdefault("supervisor", FAST_RESTARTS)
    return create_manager(store, config=TrackerConfig(**config))


def _tracker(manager, name="ctx", data=None):
    manager.create_context(name, data if data is not None else {"n": 0}).get()
    return manager.get_tracker(name).get()


# -- 2. tracker crashes at each point of an update ------------------------------------------


def test_crash_before_applying_keeps_last_acknowledged_state(faulty):
    manager = _manager(faulty)
    tracker = _tracker(manager)
    for value in range(1, 4):
        tracker.set("n", value).get()
    acknowledged = tracker.get_state().get()
    crash(tracker).get()
    assert tracker.get_state().get() == acknowledged
    assert faulty.read_head("ctx") == acknowledged


def test_crash_after_applying_before_persisting_changes_nothing(faulty):
    manager = _manager(faulty)
    tracker = _tracker(manager)
    tracker.set("n", 1).get()
    acknowledged = tracker.get_state().get()
    faulty.fail("commit", InjectedCrash("after apply, before persist"))

    # The tracker cannot tell a crash before the write from one after it: "may or may not".
    with pytest.raises(OutcomeUnknownError, match="InjectedCrash") as info:
        tracker.set("n", 2).get()
    assert isinstance(info.value.__cause__, InjectedCrash)

    # The call queued behind the fault reaches the restarted tracker.
    assert tracker.get_state().get() == acknowledged
    assert faulty.read_head("ctx") == acknowledged
    assert tracker.set("n", 3).get() == acknowledged.version + 1


def test_crash_after_persisting_before_replying_recovers_the_whole_update(faulty):
    manager = _manager(faulty)
    tracker = _tracker(manager)
    tracker.set("n", 1).get()
    before = tracker.get_state().get()
    faulty.fail("commit", InjectedCrash("after persist, before reply"), after=True)

    with pytest.raises(OutcomeUnknownError):
        tracker.update_state(_with(before, n=2, m="both")).get()

    # Not acknowledged, but stored: after the restart the update is there entirely.
    state = tracker.get_state().get()
    assert state == faulty.read_head("ctx")
    assert state.version == before.version + 1
    assert (state.get("n"), state.get("m")) == (2, "both")


def _with(state, **changes):
    copy = state.snapshot()
    for key, value in changes.items():
        copy.set(key, value)
    return copy


# -- 3. storage faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.OperationalError("database or disk is full"),
    ],
    ids=["io-error", "disk-full"],
)
def test_write_fault_is_reported_and_memory_does_not_run_ahead(faulty, error):
    manager = _manager(faulty)
    tracker = _tracker(manager)
    tracker.set("n", 1).get()
    stored = faulty.read_head("ctx")
    faulty.fail("commit", error)

    with pytest.raises(PersistenceError) as info:
        tracker.set("n", 2).get()
    assert info.value.__cause__ is error
    assert tracker.get_state().get() == stored
    assert faulty.read_head("ctx") == stored

    # The store recovered (the fault was one-shot): the tracker serves on.
    assert tracker.set("n", 3).get() == stored.version + 1
    assert faulty.read_head("ctx").get("n") == 3


def test_write_fault_during_modify_and_metadata_changes_nothing(faulty):
    manager = _manager(faulty)
    tracker = _tracker(manager)
    stored = faulty.read_head("ctx")
    faulty.fail("commit", sqlite3.OperationalError("disk I/O error"), times=3)
    with pytest.raises(PersistenceError):
        tracker.modify(lambda s: s.set("n", 99)).get()
    with pytest.raises(PersistenceError):
        tracker.set_metadata("owner", "me").get()
    with pytest.raises(PersistenceError):
        tracker.delete("n").get()
    assert tracker.get_state().get() == stored


def test_read_fault_on_activation_is_retried_by_the_supervisor(faulty):
    manager = _manager(faulty)
    manager.create_context("ctx", {"n": 5}).get()
    faulty.fail("read_latest", sqlite3.OperationalError("disk I/O error"), times=2)
    tracker = manager.get_tracker("ctx").get()
    assert tracker.get("n").get() == 5
    assert faulty.calls["read_latest"] == 3


def test_slow_store_times_out_and_the_tracker_serves_afterwards(faulty):
    manager = _manager(faulty, ask_timeout=0.2)
    tracker = _tracker(manager)
    faulty.delay("commit", 0.6)
    slow = tracker.set("n", 1)
    with pytest.raises(ContextTimeoutError, match=r"tracker 'ctx'\.set\(\) did not answer"):
        slow.get()
    faulty.heal()
    # The slow write still completes; nothing runs ahead of the store.
    assert slow.get(timeout=5) == 1
    assert tracker.set("n", 2).get() == 2
    assert faulty.read_head("ctx").get("n") == 2


# -- 4. corrupt snapshots and journal entries ------------------------------------------------


def _damage(path, name, version, how, table="snapshots"):
    with closing(sqlite3.connect(path)) as conn, conn:
        (blob,) = conn.execute(
            f"SELECT blob FROM {table} WHERE context = ? AND version = ?", (name, version)
        ).fetchone()
        blob = bytearray(blob)
        if how == "flip":
            blob[len(blob) // 2] ^= 0x55
        elif how == "truncate":
            blob = blob[: len(blob) - 7]
        elif how == "format":
            blob[4] = JOURNAL_FORMAT_VERSION + 1  # a format this library does not know
        conn.execute(
            f"UPDATE {table} SET blob = ? WHERE context = ? AND version = ?",
            (bytes(blob), name, version),
        )


SNAPSHOTS_ONLY = TrackerConfig(snapshot_every=1)
JOURNALED = TrackerConfig(snapshot_every=100)


def _history(store, name="ctx", versions=3, config=SNAPSHOTS_ONLY):
    with create_manager(store, config=config) as manager:
        tracker = _tracker(manager, name)
        for value in range(1, versions + 1):
            tracker.set("n", value).get()


@pytest.mark.parametrize("how", ["flip", "truncate", "format"])
def test_damaged_head_falls_back_to_newest_intact_snapshot(sqlite_store, how, caplog):
    _history(sqlite_store)  # versions 0..3, snapshots 1..3 retained
    _damage(sqlite_store.path, "ctx", 3, how)
    caplog.set_level(logging.ERROR, logger="actors.recovery")

    with create_manager(sqlite_store) as manager:
        tracker = manager.get_tracker("ctx").get()
        state = tracker.get_state().get()
        report = manager.recovery_report("ctx").get()

    assert state.get("n") == 2  # the data of version 2
    assert state.version == 4  # written above the damaged head: versions never go back
    assert sqlite_store.read_head("ctx") == state
    assert report.source_version == 2
    assert list(report.lost_versions) == [3]
    assert [(d.kind, d.ident) for d in report.damage] == [("snapshot", 3)]
    assert "head version 3 is damaged" in caplog.text


@pytest.mark.parametrize("how", ["flip", "truncate", "format"])
def test_damaged_journal_entry_ends_replay_at_the_last_intact_version(sqlite_store, how):
    _history(sqlite_store, versions=4, config=JOURNALED)  # snapshot 0, journal 1..4
    assert sqlite_store.list_versions("ctx") == [0]
    _damage(sqlite_store.path, "ctx", 3, how, table="journal")

    with create_manager(sqlite_store, config=JOURNALED) as manager:
        tracker = manager.get_tracker("ctx").get()
        state = tracker.get_state().get()
        report = manager.recovery_report("ctx").get()
        assert tracker.set("n", 99).get() == 6  # the tracker writes on from the repair

    assert (state.get("n"), state.version) == (2, 5)
    assert list(report.lost_versions) == [3, 4]
    assert [(d.kind, d.ident) for d in report.damage] == [("journal entry", 3)]
    assert sqlite_store.read_head("ctx").get("n") == 99


def test_all_snapshots_damaged_falls_back_to_recovery_point(sqlite_store):
    with create_manager(sqlite_store, config=SNAPSHOTS_ONLY) as manager:
        tracker = _tracker(manager)
        tracker.set("n", 1).get()
        point = tracker.create_recovery_point("safe").get()
        tracker.set("n", 2).get()
        tracker.set("n", 3).get()
    for version in sqlite_store.list_versions("ctx"):
        _damage(sqlite_store.path, "ctx", version, "flip")

    with create_manager(sqlite_store) as manager:
        state = manager.get_tracker("ctx").get().get_state().get()
        report = manager.recovery_report("ctx").get()
    assert state.get("n") == 1
    assert report.source == f"recovery point {point.point_id}"
    assert len(report.damage) == 3


def test_nothing_intact_raises_recovery_error_and_other_contexts_are_served(sqlite_store):
    _history(sqlite_store, "broken")
    _history(sqlite_store, "fine")
    for version in sqlite_store.list_versions("broken"):
        _damage(sqlite_store.path, "broken", version, "truncate")

    with create_manager(sqlite_store) as manager:
        with pytest.raises(ContextFailedError, match="context 'broken' has no intact snapshot"):
            manager.get_tracker("broken").get()
        assert manager.status("broken").get() is ContextStatus.FAILED
        fine = manager.get_tracker("fine").get()
        assert fine.get("n").get() == 3
        assert fine.set("n", 4).get() == 4
        assert manager.list_contexts().get() == ["broken", "fine"]


# -- 5. restart storms ---------------------------------------------------------------------


def test_tracker_failing_every_start_is_marked_failed_and_others_keep_working(faulty):
    manager = _manager(faulty)
    storm = _tracker(manager, "storm")
    calm = _tracker(manager, "calm")
    faulty.fail("read_latest", InjectedCrash("fails on every start"), times=1000)

    with pytest.raises(ContextFailedError, match="failed 4 times"):
        crash(storm).get()
    assert manager.status("storm").get() is ContextStatus.FAILED
    with pytest.raises(RecoveryError):
        storm.get("n").get()
    # Two activations, then one load per restart until the limit.
    assert faulty.calls["read_latest"] == 2 + FAST_RESTARTS.max_restarts

    assert calm.set("n", 1).get() == 1
    assert manager.active_contexts().get() == ["calm"]

    # After the fault is gone, deactivate + activate brings the context back.
    faulty.heal()
    manager.deactivate("storm").get()
    assert manager.get_tracker("storm").get().get("n").get() == 0


def test_manager_answers_while_a_tracker_waits_out_its_backoff(faulty):
    slow_backoff = SupervisorConfig(max_restarts=2, within_seconds=60, backoff_initial=5.0)
    manager = _manager(faulty, supervisor=slow_backoff)
    tracker = _tracker(manager)
    faulty.fail("read_latest", InjectedCrash("first restart fails"), times=1)
    crash_done = crash(tracker)
    answered = threading.Event()

    def ask_manager():
        assert manager.status("ctx").get(timeout=2) is ContextStatus.ACTIVE
        assert manager.list_contexts().get(timeout=2) == ["ctx"]
        answered.set()

    # The first restart is immediate and fails; the second waits 5 s of backoff, during
    # which the manager must keep answering.
    helper = threading.Thread(target=ask_manager)
    helper.start()
    helper.join(timeout=4)
    assert answered.is_set()
    assert not crash_done.done()


# -- 6. power loss: durability settings on every connection ----------------------------------


@pytest.mark.parametrize(("synchronous", "code"), [("FULL", 2), ("NORMAL", 1), ("EXTRA", 3)])
def test_every_pooled_connection_uses_the_configured_sync_settings(tmp_path, synchronous, code):
    store = SqliteStore(tmp_path / "sync.db", synchronous=synchronous)
    try:
        with ExitStack() as stack:
            # Hold several connections at once so the pool has to open new ones.
            connections = [stack.enter_context(store._connection()) for _ in range(4)]
            assert len({id(conn) for conn in connections}) == 4
            for conn in connections:
                assert conn.execute("PRAGMA synchronous").fetchone() == (code,)
                assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        store.close()
