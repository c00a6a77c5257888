"""SqliteStore specifics: URLs, durability settings, foreign files, error mapping, processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from storage import (
    ContextExistsError,
    MemoryStore,
    PersistenceError,
    SqliteStore,
    State,
    UnsupportedFormatError,
    open_store,
)
from storage import _sqlite as sqlite_module
from storage._delta import Delta
from storage._sqlite import APPLICATION_ID, SCHEMA_VERSION
from storage._state import utc_now
from tests.storage.processes import (
    assert_two_processes_never_lose_an_update,
    assert_two_processes_take_turns_with_a_lease,
)

TIMEOUT = 30.0
"""Seconds any wait in these tests may take before it counts as a hang."""


def raw(path: Path) -> sqlite3.Connection:
    """A plain autocommit connection to the file, as another program would open it."""
    return sqlite3.connect(path, isolation_level=None)


# -- open_store URLs ------------------------------------------------------------------------


def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with open_store("sqlite:///rel.db") as store:
        assert isinstance(store, SqliteStore)
        store.create(State.new("ctx"))

    assert (tmp_path / "rel.db").is_file()


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    url = f"sqlite:///{path}"
    assert url.startswith("sqlite:////")

    with open_store(url) as store:
        assert isinstance(store, SqliteStore)
        assert store.path == path
        store.create(State.new("ctx"))

    assert path.is_file()


def test_url_options_reach_the_store(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/o.db", synchronous="NORMAL", retain_heads=7) as store:
        assert isinstance(store, SqliteStore)
        assert store.synchronous == "NORMAL"
        assert store.retain_heads == 7


def test_memory_url() -> None:
    with open_store("memory://", retain_heads=2) as store:
        assert isinstance(store, MemoryStore)
        assert store.retain_heads == 2


@pytest.mark.parametrize(
    "url",
    [
        "",
        "rel.db",
        "/abs/path.db",
        "nosuch:///x.db",
        "memory://somewhere",
        "memory:///path",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/x.db",
        "sqlite:rel.db",
        "sqlite:/rel.db",
        "sqlite:///x.db?synchronous=sometimes",
        "sqlite:///x.db?journal_mode=delete",
        "sqlite:///data#1.db",
    ],
)
def test_bad_urls_are_value_errors(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ValueError, match="URL"):
        open_store(url)

    assert list(tmp_path.iterdir()) == []


def test_non_str_url_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        open_store(Path("x.db"))  # type: ignore[arg-type]


# -- the file -------------------------------------------------------------------------------


def test_file_persists_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    with SqliteStore(path) as store:
        store.create(State.new("ctx", {"n": 0}))
        head = store.read_head("ctx")
        point = store.create_recovery_point(head, "start")
        written = head.snapshot()
        written.version = 1
        written.set("n", 1)
        store.compare_and_set(written, 0)

    with SqliteStore(path) as store:
        assert store.list_contexts() == ["ctx"]
        assert store.read_head("ctx") == written
        assert store.list_versions("ctx") == [1, 0]
        assert store.list_recovery_points("ctx") == [point]
        assert store.read_recovery_point("ctx", point.point_id) == head


def test_new_file_is_stamped_as_ours(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(path).close()

    conn = raw(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"contexts", "snapshots", "recovery_points"} <= tables


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()

    with SqliteStore(path) as store:
        store.create(State.new("ctx"))
        assert store.exists("ctx")


@pytest.mark.parametrize(
    ("synchronous", "level"), [("FULL", 2), ("NORMAL", 1), ("OFF", 0), ("EXTRA", 3)]
)
def test_pragmas_match_the_configuration(tmp_path: Path, synchronous: Any, level: int) -> None:
    with SqliteStore(tmp_path / "p.db", synchronous=synchronous) as store:
        pragmas = store.pragmas()
    assert pragmas == {"journal_mode": "wal", "synchronous": level, "busy_timeout": 10_000}


def test_synchronous_is_per_store_not_per_file(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with SqliteStore(path) as store:
        assert store.pragmas()["synchronous"] == 2  # FULL is the default
    with SqliteStore(path, synchronous="NORMAL") as store:
        assert store.pragmas()["synchronous"] == 1


def test_unknown_synchronous_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "p.db", synchronous="FAST")  # type: ignore[arg-type]


# -- files that are not ours ----------------------------------------------------------------


def test_database_of_another_application_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    conn = raw(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.execute("PRAGMA application_id = 0x12345678")
    conn.close()
    before = path.read_bytes()

    with pytest.raises(UnsupportedFormatError, match="application_id 0x12345678"):
        SqliteStore(path)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]


def test_database_without_application_id_but_with_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    conn = raw(path)
    conn.execute("CREATE TABLE contexts (name TEXT)")
    conn.close()

    with pytest.raises(UnsupportedFormatError, match="another application"):
        SqliteStore(path)


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SqliteStore(path).close()
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(UnsupportedFormatError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SqliteStore(path)


def test_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "random.db"
    before = os.urandom(8192)
    path.write_bytes(before)

    with pytest.raises(UnsupportedFormatError) as caught:
        SqliteStore(path)

    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == before


# -- sqlite3 errors surface as PersistenceError ---------------------------------------------


def test_unopenable_path_is_a_persistence_error(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError) as caught:
        SqliteStore(tmp_path)  # a directory, not a file

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="does not exist; create it first") as caught:
        SqliteStore(tmp_path / "no-such-dir" / "x.db")
    assert repr(str(tmp_path / "no-such-dir")) in str(caught.value)
    assert not (tmp_path / "no-such-dir").exists()


def test_a_missing_directory_of_a_relative_url_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PersistenceError, match="relative to the working directory") as caught:
        open_store("sqlite:///data/app.db")
    assert repr(str(tmp_path / "data")) in str(caught.value)


def test_missing_table_is_a_persistence_error(tmp_path: Path) -> None:
    path = tmp_path / "dropped.db"
    with SqliteStore(path) as store:
        store.create(State.new("ctx"))
        conn = raw(path)
        conn.execute("DROP TABLE snapshots")
        conn.close()

        with pytest.raises(PersistenceError) as caught:
            store.read_head("ctx")

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert "no such table" in str(caught.value)


def test_locked_database_is_a_persistence_error_and_the_store_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with SqliteStore(path, busy_timeout=0.05) as store:
        store.create(State.new("ctx"))
        state = store.read_head("ctx").snapshot()
        state.version = 1
        other = raw(path)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        try:
            with pytest.raises(PersistenceError) as caught:
                store.compare_and_set(state, 0)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert "locked" in str(caught.value)
        finally:
            other.execute("ROLLBACK")
            other.close()

        store.compare_and_set(state, 0)
        assert store.head_version("ctx") == 1


def test_failed_commit_is_rolled_back_and_the_store_recovers(tmp_path: Path) -> None:
    # A deferred foreign key is checked at COMMIT, so this trigger makes COMMIT itself fail
    # with the transaction still open, as a full disk or an I/O error can.
    path = tmp_path / "commit.db"
    with SqliteStore(path) as store:
        store.create(State.new("ctx"))
        other = raw(path)
        other.executescript(
            """
            CREATE TABLE parent (id INTEGER PRIMARY KEY);
            CREATE TABLE child (
                parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
            );
            CREATE TRIGGER fail_commit AFTER INSERT ON snapshots
                BEGIN INSERT INTO child VALUES (42); END;
            """
        )
        state = store.read_head("ctx").snapshot()
        state.version = 1
        # The store's schema has no foreign keys and does not turn them on; this test does,
        # on the one pooled connection (single-threaded, every call gets it back).
        with store._connection() as conn:
            conn.execute("PRAGMA foreign_keys=ON")

        with pytest.raises(PersistenceError) as caught:
            store.compare_and_set(state, 0)

        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        # Nothing was written, and no pooled connection kept the write lock.
        other.execute("DROP TRIGGER fail_commit")
        other.close()
        assert store.head_version("ctx") == 0
        store.compare_and_set(state, 0)
        assert store.read_head("ctx") == state


# -- two processes --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_two_processes_never_lose_an_update(tmp_path: Path) -> None:
    assert_two_processes_never_lose_an_update(f"sqlite:///{tmp_path / 'counter.db'}")


@pytest.mark.timeout(120)
def test_two_processes_contend_for_one_lease(tmp_path: Path) -> None:
    assert_two_processes_take_turns_with_a_lease(f"sqlite:///{tmp_path / 'lease.db'}")


def test_a_version_2_file_gains_the_leases_table_and_keeps_its_contexts(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with SqliteStore(path) as store:
        store.create(State.new("a", {"n": 1}))
    with raw(path) as conn:  # the file as version 2 of the schema left it
        conn.execute("DROP TABLE leases")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with SqliteStore(path) as store:
        assert store.read_head("a").get("n") == 1
        assert store.acquire_lease("a", "p1", 30).epoch == 1
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    conn.close()


def test_a_lease_outlives_its_context_so_epochs_only_grow(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "a.db") as store:
        store.create(State.new("a"))
        store.acquire_lease("a", "p1", 30)
        store.delete("a")
        store.create(State.new("a"))
        store.release_lease("a", "p1", 1)
        assert store.acquire_lease("a", "p2", 30).epoch == 2


def test_change_token_moves_when_another_connection_commits(tmp_path):
    path = tmp_path / "token.db"
    with SqliteStore(path) as watcher, SqliteStore(path) as writer:
        writer.create(State.new("a"))
        before = watcher.change_token()
        assert watcher.change_token() == before  # nothing written since
        writer.compare_and_set(State(context="a", version=1), 0)
        assert watcher.change_token() != before


def _open_fresh(paths: list[str], start: Any, results: Any) -> None:
    """In a child: for each path, wait for the others at `start`, then open it (new) and
    create one context there; put each outcome (None or the error) on `results`."""
    for path in paths:
        try:
            start.wait(timeout=30)
            with SqliteStore(path) as store, contextlib.suppress(ContextExistsError):
                store.create(State.new("shared"))
            results.put(None)
        except Exception as exc:  # reported to the parent
            results.put(repr(exc))


@pytest.mark.timeout(120)
def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    # Switching a new file to WAL needs it to itself; SQLite's busy handler does not wait
    # that out, so opening retries "database is locked" (this failed 3 rounds in 25 before).
    # The same 4 processes meet at a barrier before each of 10 new files: 10 races, 4 starts.
    spawn = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"fresh-{round_}.db") for round_ in range(10)]
    start, results = spawn.Barrier(4), spawn.Queue()
    workers = [spawn.Process(target=_open_fresh, args=(paths, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in range(len(paths) * len(workers))]
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == [None] * len(outcomes), outcomes
    for path in paths:
        with SqliteStore(path) as store:
            assert store.list_contexts() == ["shared"]


def test_read_latest_reads_one_snapshot_while_another_connection_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Head version, snapshot and journal are three statements; a writer that snapshots and
    # compacts between them (retain_heads=1 drops the journal the reader is about to read)
    # must not make intact entries look missing.
    path = tmp_path / "contexts.db"
    reader, writer = SqliteStore(path, retain_heads=1), SqliteStore(path, retain_heads=1)
    reader.create(State.new("ctx", {"n": 0}))
    for version in range(1, 4):
        reader.append(Delta("ctx", version, utc_now(), {"n": version}), version - 1)
    original = sqlite_module._select_newest_snapshot
    compacted = []

    def newest_then_compact(conn: sqlite3.Connection, name: str) -> tuple[int, bytes]:
        result = original(conn, name)
        if not compacted:
            compacted.append(True)
            head = writer.read_head(name)
            head.version, head.data["n"] = 4, 4
            writer.compare_and_set(head, 3)  # snapshot 4; snapshot 0 and entries 1-3 dropped
        return result

    monkeypatch.setattr(sqlite_module, "_select_newest_snapshot", newest_then_compact)
    try:
        state, damage = reader.read_latest("ctx")
        assert compacted == [True]
        assert damage == ()
        assert (state.version, state.data) == (3, {"n": 3})  # as of the reader's snapshot
        assert reader.read_head("ctx").data == {"n": 4}  # and the next read sees the write
    finally:
        reader.close()
        writer.close()


def test_a_write_cuts_the_lock_wait_once_and_a_read_waits_the_full_busy_timeout(
    tmp_path: Path,
) -> None:
    # A write waits for another connection's write lock in steps of at most 5 ms (SQLite's
    # own handler sleeps up to 100 ms at a time); the connection keeps that setting for the
    # writes after it, and a read on it gets the full busy_timeout back.
    statements: list[str] = []
    with SqliteStore(tmp_path / "b.db", busy_timeout=2.0) as store:
        store.create(State.new("ctx"))
        conn = store._pool.get_nowait()
        conn.set_trace_callback(statements.append)
        store._pool.put(conn)
        state = store.read_head("ctx").snapshot()
        for version in (1, 2, 3):
            state.version = version
            store.compare_and_set(state, version - 1)
        assert store.pragmas()["busy_timeout"] == 2000
    timeouts = [s for s in statements if s.startswith("PRAGMA busy_timeout=")]
    assert timeouts[-2:] == ["PRAGMA busy_timeout=5", "PRAGMA busy_timeout=2000"]
    assert statements.count("PRAGMA busy_timeout=5") == 1  # not once per write
    assert statements.count("BEGIN IMMEDIATE") == 3
