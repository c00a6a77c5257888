"""PostgresStore: contexts in a PostgreSQL database, shared by every process that reaches it.

Tables, the write functions and the version stamp are in `storage/_postgres_schema.py`; the
layout is SQLite's, in one schema per store. Every write is one call of `write_head`
(compare-and-set under the context row's lock), and `commit()` sends a whole batch as one
statement (`write_heads`), on an autocommit connection: one transaction, one round trip, one
WAL flush for the batch. Connections come from a `psycopg_pool` pool, each with the store's
schema first on its `search_path`. Heads that move are announced with NOTIFY;
`change_token()` LISTENs on a connection of its own.

psycopg 3 and psycopg_pool are an optional dependency (`pip install
'context-runtime[postgres]'`); `storage` imports this module only when a PostgresStore is
asked for.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Literal

try:
    import psycopg
    import psycopg.conninfo
    import psycopg_pool
    from psycopg import sql
except ImportError as exc:  # psycopg is an optional extra
    msg = "PostgresStore needs psycopg 3 and psycopg_pool: pip install 'context-runtime[postgres]'"
    raise ImportError(msg) from exc

from storage._checks import positive_seconds
from storage._codec import SnapshotCodec
from storage._exceptions import (
    ConfigurationError,
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    LeaseLost,
    NotOwner,
    PersistenceError,
    RecoveryPointNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    VersionConflict,
    WriteOutcomeUnknownError,
)
from storage._postgres_schema import (
    APPLICATION,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATEMENTS,
)
from storage._store import (
    DEFAULT_RETAIN_HEADS,
    ContextExport,
    Lease,
    RecoveryPoint,
    Store,
    Write,
    latest_parts,
)

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_SCHEMA",
    "DEFAULT_TIMEOUT",
    "POSTGRES_ERRORS",
    "SYNCHRONOUS_COMMIT_LEVELS",
    "PostgresStore",
    "SynchronousCommit",
]

DEFAULT_SCHEMA = "context_runtime"
"""The PostgreSQL schema (namespace) a PostgresStore keeps its tables in unless told."""

DEFAULT_TIMEOUT = 5.0
"""Seconds a connect, a wait for a pooled connection or a wait for a row lock may take."""

DEFAULT_POOL_SIZE = 10
"""The most connections one PostgresStore holds (besides the one `change_token()` uses)."""

SynchronousCommit = Literal["on", "off", "local", "remote_write", "remote_apply"]

SYNCHRONOUS_COMMIT_LEVELS: tuple[SynchronousCommit, ...] = (
    "off",
    "local",
    "remote_write",
    "on",
    "remote_apply",
)
"""The values of `PostgresStore(synchronous_commit=...)`, least durable first."""

POSTGRES_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, OSError)
"""What `PostgresStore` maps to `PersistenceError`: every psycopg and psycopg_pool error
(`PoolTimeout` and `PoolClosed` are psycopg errors too), and socket errors."""

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}", re.ASCII)
_MAX_BIGINT = 2**63 - 1
_OPEN_LOCK = 0x43545852
"""The first key of the advisory lock that makes opening a schema one at a time: b"CTXR"."""
_SECRET = re.compile(r"(://[^/?#:@]*:)[^/?#@]*@|(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def _masked(text: str) -> str:
    """`text` with any password in a URL or key=value conninfo replaced by ***."""
    return _SECRET.sub(lambda m: f"{m.group(1)}***@" if m.group(1) else f"{m.group(2)}***", text)


class PostgresStore(Store):
    """A store in a PostgreSQL database, safe to share between threads and processes.

    Args:
        conninfo: where the server is, as libpq takes it: a `postgresql://` URL or a
            `host=... dbname=...` string, with any libpq parameters (`sslmode`,
            `application_name`, ...). Unset `connect_timeout` and TCP keepalive parameters
            default from `timeout`.
        schema: the schema (namespace) of the store's tables, created if missing; 1 to 48
            lowercase ASCII letters, digits and `_`, not starting with a digit. Stores with
            different schemas share a database without seeing each other.
        timeout: seconds to connect, to wait for a free pooled connection and to wait for
            another transaction's row lock before failing with `PersistenceError`. A server
            that vanishes without closing the connection is noticed by TCP keepalives within
            about this long too.
        pool_size: the most connections the store opens for its calls.
        synchronous_commit: PostgreSQL's `synchronous_commit` for the store's connections.
            `on` (the default) makes a returned write survive a crash of the server or its
            host; `off` acknowledges before the WAL flush, so such a crash may lose the last
            few hundred milliseconds of acknowledged writes (the database stays consistent).

    A write is never retried: a write whose reply is lost (the connection broke) raises
    `WriteOutcomeUnknownError` and may or may not have been applied; read the head to know.

    Raises:
        ConfigurationError: a bad conninfo, schema, timeout, pool size, synchronous_commit or
            `retain_heads`.
        PersistenceError: the server cannot be reached or refuses the connection.
        UnsupportedFormatError: the schema holds tables of another application, or a newer
            layout version.
    """

    supports_journal = True
    supports_leases = True
    commits_in_batches = True
    shared_between_processes = True

    def __init__(
        self,
        conninfo: str = "",
        *,
        schema: str = DEFAULT_SCHEMA,
        timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        synchronous_commit: SynchronousCommit = "on",
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
    ) -> None:
        super().__init__(codec=codec, retain_heads=retain_heads)
        if not isinstance(schema, str) or _SCHEMA_NAME.fullmatch(schema) is None:
            msg = (
                "schema must be 1 to 48 lowercase ASCII letters, digits and '_', not "
                f"starting with a digit, not {schema!r}"
            )
            raise ConfigurationError(msg)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            msg = f"pool_size must be a whole number of at least 1, not {pool_size!r}"
            raise ConfigurationError(msg)
        if synchronous_commit not in SYNCHRONOUS_COMMIT_LEVELS:  # callers may be untyped
            msg = (
                f"synchronous_commit must be one of {', '.join(SYNCHRONOUS_COMMIT_LEVELS)}, "
                f"not {synchronous_commit!r}"
            )
            raise ConfigurationError(msg)
        self.schema = schema
        self.timeout = positive_seconds("timeout", timeout)
        self.pool_size = pool_size
        self.synchronous_commit: SynchronousCommit = synchronous_commit
        self.channel = f"{schema}:changes"
        """The NOTIFY channel of every write that moves a head (docs/storage-postgres.md)."""
        self._params = _connection_params(conninfo, self.timeout)
        self._closed = False
        self._watch_lock = threading.Lock()  # guards the two fields below
        self._listener: psycopg.Connection[Any] | None = None  # change_token()'s connection
        self._changes = 0  # notifications read, plus one per LISTEN
        self._checking = threading.Lock()  # held while a pool check runs
        with self._translate("open"):
            # One plain connection first: a refused or unreachable server fails here with
            # libpq's own reason, where a pool would only time out.
            with self._connect() as conn:
                self._ensure_schema(conn)
            self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
                kwargs={**self._params, "autocommit": True},
                min_size=1,
                max_size=pool_size,
                timeout=self.timeout,
                configure=self._configure,
                name=f"context-runtime:{schema}",
                open=False,
            )
            self._pool.open(wait=False)

    def __repr__(self) -> str:
        params = self._params
        where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        user = f"{params['user']}@" if params.get("user") else ""
        return (
            f"PostgresStore('postgresql://{user}{where}/{params.get('dbname') or ''}', "
            f"schema={self.schema!r})"
        )

    # -- connections, errors and the schema ------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(**self._params, autocommit=True)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Settings of every connection, in one round trip: our schema first (a schema that
        does not exist yet is skipped by PostgreSQL, so this also serves the opening one),
        the row-lock wait, durability, and UTC for recovery points' times."""
        conn.execute(
            "SELECT set_config('search_path', %s, false), set_config('lock_timeout', %s, false),"
            " set_config('synchronous_commit', %s, false), set_config('TimeZone', 'UTC', false)",
            (
                sql.Identifier(self.schema).as_string(conn),
                f"{round(self.timeout * 1000)}ms",
                self.synchronous_commit,
            ),
        )

    @contextmanager
    def _translate(
        self, op: str, *, outcome_unknown: Callable[[], bool] = lambda: False
    ) -> Iterator[None]:
        """Map every psycopg error to `PersistenceError`, chained; ours pass through. The
        one place where driver errors become the contract's.

        An error for which `outcome_unknown()` is true (a write whose connection broke while
        in use: COMMIT may have reached the server and run, and only its reply was lost)
        becomes `WriteOutcomeUnknownError`.
        """
        try:
            yield
        except ContextError:
            raise
        except POSTGRES_ERRORS as exc:
            detail = _masked(f"{type(exc).__name__}: {exc}".strip())
            if outcome_unknown():
                raise WriteOutcomeUnknownError(
                    f"postgres {op} on {self!r}: the connection failed while the write was "
                    f"under way, so it may or may not have been applied ({detail})"
                ) from exc
            if isinstance(exc, psycopg_pool.PoolTimeout):
                # The pool only waited; why it could not connect is in its log.
                detail += (
                    " (the server is down or unreachable, or all "
                    f"{self.pool_size} connections were busy; psycopg.pool logs why it "
                    "could not connect)"
                )
            raise PersistenceError(f"postgres {op} on {self!r} failed: {detail}") from exc

    @contextmanager
    def _connection(self, op: str, *, writes: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for one operation, with its errors translated (a write's
        broken connection: outcome unknown).

        A broken connection also has the pool check its idle ones (in the background), so
        that after a server restart one failed call, not one per pooled connection, finds
        out.
        """
        if self._closed:
            raise PersistenceError(f"{self!r} is closed")
        conn: psycopg.Connection[Any] | None = None
        with self._translate(
            op, outcome_unknown=lambda: writes and conn is not None and conn.broken
        ):
            conn = self._pool.getconn()
            try:
                yield conn
            except psycopg.Error:
                if conn.broken:
                    self._check_pool_soon()
                raise
            finally:
                # putconn rolls back anything left open and discards broken connections.
                self._pool.putconn(conn)

    def _check_pool_soon(self) -> None:
        """Have the pool test its idle connections and drop the dead ones, in a thread of
        its own (one at a time): against a server that vanished without a word each test
        can take `timeout`, which the failing call must not wait out."""
        if self._checking.acquire(blocking=False):
            threading.Thread(
                target=self._check_pool, name="postgres-pool-check", daemon=True
            ).start()

    def _check_pool(self) -> None:
        try:
            with suppress(*POSTGRES_ERRORS):  # a closed pool, a server still down
                self._pool.check()
        finally:
            self._checking.release()

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and our tables if missing, migrate an older layout, or refuse a
        schema that is not ours. One opener at a time (a transaction-scoped advisory lock),
        so processes opening a new database together create it once."""
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_OPEN_LOCK, self.schema)
            )
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.schema,),
                )
            }
            if not tables:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                self._configure(conn)  # the schema exists now: put it on the search_path
                for statement in STATEMENTS:
                    # bytes: psycopg's types take a str query only as a literal.
                    conn.execute(statement.encode())
                conn.execute(
                    "INSERT INTO store_info (application, schema_version) VALUES (%s, %s)",
                    (APPLICATION, SCHEMA_VERSION),
                )
                return
            version = self._stamped_version(conn, tables)
            if version < SCHEMA_VERSION:
                # Only a migration writes: a current schema opens without writing.
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        conn.execute(statement.encode())
                conn.execute("UPDATE store_info SET schema_version = %s", (SCHEMA_VERSION,))

    def _stamped_version(self, conn: psycopg.Connection[Any], tables: set[str]) -> int:
        """The layout version the schema's stamp names, if this library reads it."""
        where = f"schema {self.schema!r} of {self!r}"
        rows = (
            conn.execute("SELECT application, schema_version FROM store_info").fetchall()
            if "store_info" in tables
            else []
        )
        if len(rows) != 1 or rows[0][0] != APPLICATION:
            found = rows[0][0] if len(rows) == 1 else f"{len(rows)} stamps"
            raise UnsupportedFormatError(
                f"{where} holds tables of another application ({', '.join(sorted(tables))}; "
                f"store_info: {found!r}); choose another schema"
            )
        version: int = rows[0][1]
        if version > SCHEMA_VERSION:
            raise UnsupportedFormatError(
                f"{where} has layout version {version}; this library reads up to {SCHEMA_VERSION}"
            )
        if version < min(MIGRATIONS, default=SCHEMA_VERSION):
            raise UnsupportedFormatError(
                f"{where} is stamped ours but with layout version {version}, which this "
                f"library never wrote (it writes 1 to {SCHEMA_VERSION})"
            )
        return version

    def close(self) -> None:
        """Close the pool and the change listener; later calls raise `PersistenceError`."""
        if self._closed:
            return
        self._closed = True
        with self._watch_lock:
            self._stop_listening()
        self._pool.close()

    # -- change notification ---------------------------------------------------------------

    def change_token(self) -> object | None:
        """A counter of the NOTIFY messages on `channel`: it changes iff a transaction that
        moved a head (of this process or another) committed since the last call.

        The first call LISTENs on a connection of its own (LISTEN takes effect before it
        returns, so no commit after it goes unnoticed) and returns a new token. Later calls
        read the notifications already received, without a round trip. If the connection
        fails (the server restarted; TCP keepalives found it dead), the call returns None
        (read the heads) and the next call listens again, with a token unlike any before.

        Raises:
            PersistenceError: the store is closed.
        """
        with self._watch_lock:
            if self._closed:
                raise PersistenceError(f"{self!r} is closed")
            try:
                with self._translate("watch changes"):
                    return self._read_changes()
            except PersistenceError:
                self._stop_listening()
                return None

    def _read_changes(self) -> int:
        if self._listener is None:
            self._listener = self._connect()
            self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._changes += 1  # commits before now were not counted: look at the heads
            return self._changes
        # What has arrived, without waiting: libpq's socket never blocks, and a connection
        # the server closed raises here. (psycopg's notifies(timeout=0) gives up before it
        # reads the socket at all, so it would never see the connection close.)
        pgconn = self._listener.pgconn
        pgconn.consume_input()
        while pgconn.notifies() is not None:
            self._changes += 1
        return self._changes

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(*POSTGRES_ERRORS):  # it is being thrown away
                listener.close()

    def _head_versions(self, names: list[str]) -> dict[str, int]:
        with self._connection("read versions") as conn:
            rows = conn.execute(
                "SELECT name, version FROM contexts WHERE name = ANY(%s)", (names,)
            ).fetchall()
        return dict(rows)

    # -- primitives ------------------------------------------------------------------------

    def _create(self, name: str, version: int, blob: bytes) -> None:
        # One statement, so one transaction and one round trip: the snapshot and the
        # notification only if the context row was inserted (a taken name inserts nothing).
        with self._connection("create", writes=True) as conn:
            row = conn.execute(
                "WITH made AS (INSERT INTO contexts (name, version) VALUES (%(n)s, %(v)s) "
                "ON CONFLICT DO NOTHING RETURNING name), "
                "kept AS (INSERT INTO snapshots (context, version, blob) "
                "SELECT name, %(v)s, %(b)s FROM made) "
                "SELECT pg_notify(%(c)s, '') FROM made",
                {"n": name, "v": version, "b": blob, "c": self.channel},
            ).fetchone()
        if row is None:
            raise ContextExistsError(name)

    def _read_head(self, name: str) -> tuple[int, bytes]:
        with self._connection("read head") as conn:
            row = conn.execute(
                "SELECT version, blob FROM snapshots WHERE context = %s "
                "ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
        if row is None:
            raise ContextNotFoundError(name)
        return row[0], row[1]

    def _head_version(self, name: str) -> int:
        with self._connection("read version") as conn:
            row = conn.execute("SELECT version FROM contexts WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ContextNotFoundError(name)
        version: int = row[0]
        return version

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        # Group commit: the batch is one statement, `write_heads`, which runs `write_head`
        # (compare-and-set, write, retention, NOTIFY) for each write in order. On an
        # autocommit connection one statement is one transaction: one round trip and one WAL
        # flush acknowledge the batch. A stale write is refused alone; an error of the
        # statement fails every write.
        #
        # Writes run sorted by context name (a stable sort keeps each context's own order,
        # and writes of different contexts do not depend on each other): every batch then
        # takes its row locks in one global order, so two processes' batches never deadlock.
        if not writes:
            return []
        order = sorted(range(len(writes)), key=lambda i: writes[i].context)
        batch = [writes[i] for i in order]
        with self._connection("commit", writes=True) as conn:
            row = conn.execute(
                "SELECT * FROM write_heads(%s::text[], %s::bigint[], %s::bigint[], "
                "%s::bytea[], %s::boolean[], %s, %s, %s::bigint[])",
                (
                    [write.context for write in batch],
                    [write.expected for write in batch],
                    [write.version for write in batch],
                    [write.blob for write in batch],
                    [write.journal for write in batch],
                    self.retain_heads,
                    self.channel,
                    [write.lease for write in batch],  # NULL: unfenced
                ),
            ).fetchone()
        assert row is not None  # SELECT of a function returns one row
        found: list[int | None] = row[0]
        lost: list[int | None] = row[1]
        # Read as write_heads ran: a write after a refused one of its context was refused
        # too (Store.commit), though the head it reports may be the version it expected.
        results: list[ContextError | None] = [None] * len(writes)
        refused: set[str] = set()
        for i, current, epoch in zip(order, found, lost, strict=True):
            write = writes[i]
            if current is None:
                results[i] = ContextNotFoundError(write.context)
                refused.add(write.context)
            elif epoch is not None:
                assert write.lease is not None  # only a fenced write is refused so
                results[i] = LeaseLost(write.context, write.lease, epoch)
                refused.add(write.context)
            elif current != write.expected or write.context in refused:
                results[i] = VersionConflict(write.context, write.expected, current)
                refused.add(write.context)
        return results

    # -- leases: a row of `leases` per context, by the server's clock_timestamp() ------------

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        with self._connection("acquire lease", writes=True) as conn:
            row = conn.execute(
                "SELECT * FROM acquire_lease(%s, %s, %s::double precision)", (name, owner, ttl)
            ).fetchone()
        assert row is not None  # SELECT of a function returns one row
        taken, holder, epoch, left, wanted = row
        if not taken:
            raise NotOwner(name, holder, left)
        return Lease(name, owner, epoch, ttl, wanted)

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        with self._connection("renew leases", writes=True) as conn:
            rows = conn.execute(
                "SELECT * FROM renew_leases(%s, %s::text[], %s::bigint[], %s::double precision)",
                (owner, list(epochs), list(epochs.values()), ttl),
            ).fetchall()
        return {row[0]: _lease(*row) for row in rows}

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        with self._connection("read leases") as conn:
            rows = conn.execute(
                "WITH now AS (SELECT clock_timestamp() AS t) "
                "SELECT r.name, l.owner, l.epoch, "
                "extract(epoch FROM l.expires_at - now.t)::double precision, l.wanted_by "
                "FROM now, unnest(%s::text[]) AS r (name) "
                "LEFT JOIN leases AS l ON l.context = r.name",
                (names,),
            ).fetchall()
        return {row[0]: _lease(*row) for row in rows}

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        # The epoch stays: the next taker gets epoch + 1, and a write fenced with this one
        # is refused from now on.
        with self._connection("release lease", writes=True) as conn:
            conn.execute(
                "UPDATE leases SET owner = NULL, wanted_by = NULL, expires_at = clock_timestamp() "
                "WHERE context = %s AND owner = %s AND epoch = %s "
                "AND expires_at > clock_timestamp()",
                (name, owner, epoch),
            )

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        with self._connection("read journal") as conn:
            rows: list[tuple[int, bytes]] = conn.execute(
                "SELECT version, blob FROM journal WHERE context = %s AND version > %s "
                "ORDER BY version",
                (name, after),
            ).fetchall()
        return rows

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        # One statement sees the database as of one moment, whatever commits meanwhile.
        with self._connection("read changes") as conn:
            rows = conn.execute(
                "WITH head AS (SELECT version FROM contexts WHERE name = %(n)s) "
                "SELECT 0, version, NULL::bytea FROM head "
                "UNION ALL SELECT 1, j.version, j.blob FROM journal j, head "
                "WHERE j.context = %(n)s AND j.version > %(a)s AND j.version <= head.version "
                "UNION ALL SELECT 2, s.version, s.blob FROM snapshots s, head "
                "WHERE s.context = %(n)s AND s.version > %(a)s AND s.version <= head.version",
                {"n": name, "a": after},
            ).fetchall()
        heads = [version for kind, version, _ in rows if kind == 0]
        if not heads:
            raise ContextNotFoundError(name)
        entries = sorted((version, blob) for kind, version, blob in rows if kind == 1)
        snapshots = sorted((version, blob) for kind, version, blob in rows if kind == 2)
        return heads[0], entries, snapshots

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        # One statement: the head, the newest snapshot and the entries after it as of one
        # moment, whatever another connection commits (and compacts) meanwhile.
        with self._connection("read latest") as conn:
            rows = conn.execute(
                "WITH newest AS (SELECT version, blob FROM snapshots WHERE context = %(n)s "
                "ORDER BY version DESC LIMIT 1) "
                "SELECT 0, version, NULL::bytea FROM contexts WHERE name = %(n)s "
                "UNION ALL SELECT 1, version, blob FROM newest "
                "UNION ALL SELECT 2, j.version, j.blob FROM journal j, newest "
                "WHERE j.context = %(n)s AND j.version > newest.version",
                {"n": name},
            ).fetchall()
        heads = [version for kind, version, _ in rows if kind == 0]
        if not heads:
            raise ContextNotFoundError(name)
        newest = [(version, blob) for kind, version, blob in rows if kind == 1]
        if not newest:
            raise CorruptSnapshotError(
                f"context {name!r}: no snapshot at or below head version {heads[0]}"
            )
        entries = sorted((version, blob) for kind, version, blob in rows if kind == 2)
        return heads[0], newest[0][0], newest[0][1], entries

    def _read_latest_parts_many(
        self, names: list[str]
    ) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
        # One statement for all, as of one moment, as `_read_latest_parts` reads one.
        with self._connection("read latest") as conn:
            rows = conn.execute(
                "WITH newest AS (SELECT DISTINCT ON (context) context, version, blob "
                "FROM snapshots WHERE context = ANY(%(n)s) ORDER BY context, version DESC) "
                "SELECT 0, name, version, NULL::bytea FROM contexts WHERE name = ANY(%(n)s) "
                "UNION ALL SELECT 1, context, version, blob FROM newest "
                "UNION ALL SELECT 2, j.context, j.version, j.blob FROM journal j "
                "JOIN newest ON j.context = newest.context AND j.version > newest.version",
                {"n": names},
            ).fetchall()
        heads: dict[str, int] = {}
        newest: dict[str, tuple[int, bytes]] = {}
        journal: dict[str, list[tuple[int, bytes]]] = {}
        for kind, name, version, blob in rows:
            if kind == 0:
                heads[name] = version
            elif kind == 1:
                newest[name] = (version, blob)
            else:
                journal.setdefault(name, []).append((version, blob))
        return latest_parts(heads, newest, journal)

    def _export_context(self, name: str) -> ContextExport:
        # One statement: every table as of one moment, whatever another connection commits
        # (and compacts) meanwhile. Kinds: 0 the head, 1 snapshots, 2 journal, 3 points.
        with self._connection("export") as conn:
            rows = conn.execute(
                "SELECT 0, version, NULL::bytea, NULL::bigint, NULL::text, NULL::timestamptz "
                "FROM contexts WHERE name = %(n)s "
                "UNION ALL SELECT 1, version, blob, NULL, NULL, NULL FROM snapshots "
                "WHERE context = %(n)s "
                "UNION ALL SELECT 2, version, blob, NULL, NULL, NULL FROM journal "
                "WHERE context = %(n)s "
                "UNION ALL SELECT 3, version, blob, point_id, label, created_at "
                "FROM recovery_points WHERE context = %(n)s",
                {"n": name},
            ).fetchall()
        heads = [version for kind, version, *_ in rows if kind == 0]
        if not heads:
            raise ContextNotFoundError(name)
        return ContextExport(
            name,
            heads[0],
            tuple((version, blob) for kind, version, blob, *_ in rows if kind == 1),
            tuple((version, blob) for kind, version, blob, *_ in rows if kind == 2),
            tuple(
                (RecoveryPoint(name, point_id, version, label, created_at), blob)
                for kind, version, blob, point_id, label, created_at in rows
                if kind == 3
            ),
        )

    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        name = export.name
        with self._connection("import", writes=True) as conn, conn.transaction():
            if replace:
                # Replaced whole, in this transaction: nothing of the old context stays.
                conn.execute("DELETE FROM contexts WHERE name = %s", (name,))
                conn.execute("DELETE FROM snapshots WHERE context = %s", (name,))
                conn.execute("DELETE FROM journal WHERE context = %s", (name,))
                conn.execute("DELETE FROM recovery_points WHERE context = %s", (name,))
            inserted = conn.execute(
                "INSERT INTO contexts (name, version) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (name, export.head),
            ).rowcount
            if inserted == 0:
                raise ContextExistsError(name)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO snapshots (context, version, blob) VALUES (%s, %s, %s)",
                    [(name, version, blob) for version, blob in export.snapshots],
                )
                cursor.executemany(
                    "INSERT INTO journal (context, version, blob) VALUES (%s, %s, %s)",
                    [(name, version, blob) for version, blob in export.journal],
                )
            point_ids = []
            for point, blob in export.recovery_points:
                row = conn.execute(
                    "INSERT INTO recovery_points (context, version, label, created_at, blob) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING point_id",
                    (name, point.version, point.label, point.created_at, blob),
                ).fetchone()
                assert row is not None  # INSERT ... RETURNING of one row
                point_ids.append(row[0])
            conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        return point_ids

    def _delete(self, name: str) -> None:
        with self._connection("delete", writes=True) as conn, conn.transaction():
            if conn.execute("DELETE FROM contexts WHERE name = %s", (name,)).rowcount == 0:
                raise ContextNotFoundError(name)
            conn.execute("DELETE FROM snapshots WHERE context = %s", (name,))
            conn.execute("DELETE FROM journal WHERE context = %s", (name,))
            conn.execute("DELETE FROM recovery_points WHERE context = %s", (name,))
            conn.execute("SELECT pg_notify(%s, '')", (self.channel,))

    def _exists(self, name: str) -> bool:
        with self._connection("exists") as conn:
            row = conn.execute("SELECT 1 FROM contexts WHERE name = %s", (name,)).fetchone()
        return row is not None

    def _list_contexts(self) -> list[str]:
        with self._connection("list contexts") as conn:
            return [row[0] for row in conn.execute("SELECT name FROM contexts")]

    def _list_versions(self, name: str) -> list[int]:
        with self._connection("list versions") as conn:
            versions = [
                row[0]
                for row in conn.execute("SELECT version FROM snapshots WHERE context = %s", (name,))
            ]
        if not versions:
            raise ContextNotFoundError(name)
        return versions

    def _read_version(self, name: str, version: int) -> bytes:
        # A version beyond bigint is stored nowhere; still ask, to tell which error it is.
        stored = version if -_MAX_BIGINT <= version <= _MAX_BIGINT else None
        with self._connection("read snapshot") as conn:
            row = conn.execute(
                "SELECT (SELECT blob FROM snapshots WHERE context = %(n)s AND version = %(v)s),"
                " EXISTS (SELECT 1 FROM contexts WHERE name = %(n)s)",
                {"n": name, "v": stored},
            ).fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        blob, exists = row
        if blob is None:
            if exists:
                raise SnapshotNotFoundError(name, version)
            raise ContextNotFoundError(name)
        result: bytes = blob
        return result

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        with self._connection("create recovery point", writes=True) as conn:
            # One statement: the point is inserted only if the context exists. The row lock
            # makes a concurrent delete wait for this commit, so that its own delete of the
            # context's points sees this one too: none outlives its context.
            row = conn.execute(
                "INSERT INTO recovery_points (context, version, label, created_at, blob) "
                "SELECT name, %s, %s, %s, %s FROM contexts WHERE name = %s FOR KEY SHARE "
                "RETURNING point_id",
                (version, label, created_at, blob, name),
            ).fetchone()
        if row is None:
            raise ContextNotFoundError(name)
        point_id: int = row[0]
        return point_id

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        with self._connection("list recovery points") as conn:
            rows = conn.execute(
                "SELECT c.name, p.point_id, p.version, p.label, p.created_at "
                "FROM contexts c LEFT JOIN recovery_points p ON p.context = c.name "
                "WHERE c.name = %s",
                (name,),
            ).fetchall()
        if not rows:
            raise ContextNotFoundError(name)
        return [
            RecoveryPoint(name, point_id, version, label, created_at)
            for _, point_id, version, label, created_at in rows
            if point_id is not None
        ]

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        if not isinstance(point_id, int) or not 0 < point_id <= _MAX_BIGINT:
            raise RecoveryPointNotFoundError(name, point_id)
        with self._connection("read recovery point") as conn:
            row = conn.execute(
                "SELECT version, blob FROM recovery_points WHERE context = %s AND point_id = %s",
                (name, point_id),
            ).fetchone()
        if row is None:
            raise RecoveryPointNotFoundError(name, point_id)
        return row[0], row[1]

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        if not isinstance(point_id, int) or not 0 < point_id <= _MAX_BIGINT:
            raise RecoveryPointNotFoundError(name, point_id)
        with self._connection("delete recovery point", writes=True) as conn:
            deleted = conn.execute(
                "DELETE FROM recovery_points WHERE context = %s AND point_id = %s",
                (name, point_id),
            ).rowcount
        if deleted == 0:
            raise RecoveryPointNotFoundError(name, point_id)


def _one_per_context(writes: list[Write], indexes: list[int]) -> tuple[list[int], list[int]]:
    """Split `indexes` into the first write of each context and the rest, keeping order."""
    seen: set[str] = set()
    now: list[int] = []
    later: list[int] = []
    for i in indexes:
        (later if writes[i].context in seen else now).append(i)
        seen.add(writes[i].context)
    return now, later


def _connection_params(conninfo: str, timeout: float) -> dict[str, Any]:
    """libpq's parameters of `conninfo`, with defaults from `timeout` where unset: the
    connect timeout, and TCP keepalives and a TCP user timeout, so that a server that
    vanished without closing the connection (a crashed host, a lost network) makes calls
    fail within about `timeout` instead of hanging."""
    if not isinstance(conninfo, str):  # callers may be untyped
        msg = f"conninfo must be a str, not {type(conninfo).__name__}"  # type: ignore[unreachable]
        raise ConfigurationError(msg)
    try:
        params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        msg = f"bad PostgreSQL conninfo {_masked(conninfo)!r}: {_masked(str(exc))}"
        raise ConfigurationError(msg) from None
    whole = max(1, math.ceil(timeout))
    defaults = {
        "connect_timeout": whole,
        "keepalives": 1,
        "keepalives_idle": whole,
        "keepalives_interval": max(1, whole // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": round(timeout * 1000),
    }
    return {**defaults, **params}


def _lease(
    name: str, owner: str | None, epoch: int | None, left: float | None, wanted: str | None
) -> Lease:
    """The `Lease` of a row of `leases` (all None: never taken)."""
    if epoch is None or left is None or epoch == 0:
        return Lease(name, None, 0, 0.0)
    return Lease(name, owner, epoch, left, wanted)
