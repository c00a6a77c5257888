"""SqliteStore: the embedded default store, one SQLite file in WAL mode.

Every write is one `BEGIN IMMEDIATE` transaction, so compare-and-set holds between threads and
between processes sharing the file. Connections come from a small pool: a thread takes one for
a single operation and gives it back, so many short-lived actor threads share few connections.
"""

from __future__ import annotations

import os
import queue
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

from storage._codec import SnapshotCodec
from storage._exceptions import (
    ConfigurationError,
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    LeaseLost,
    NotOwner,
    PersistenceError,
    RecoveryPointNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    VersionConflict,
)
from storage._store import (
    DEFAULT_RETAIN_HEADS,
    ContextExport,
    Lease,
    RecoveryPoint,
    Store,
    Write,
    latest_parts,
    take_lease,
)

_NAMES_PER_STATEMENT = 500
"""Names bound in one `IN (...)`: SQLite caps the parameters of a statement (32,766 since
3.32, 999 before), and a bulk read or a lease renewal can name every context."""

__all__ = [
    "APPLICATION_ID",
    "MAX_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "SYNCHRONOUS_LEVELS",
    "SqliteStore",
    "Synchronous",
]

APPLICATION_ID = 0x43545852
"""`PRAGMA application_id` of our databases: b"CTXR" read as a big-endian int."""

SCHEMA_VERSION = 3
"""`PRAGMA user_version` of the schema this library writes and reads."""

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

SYNCHRONOUS_LEVELS: tuple[Synchronous, ...] = ("OFF", "NORMAL", "FULL", "EXTRA")
"""The values of `SqliteStore(synchronous=...)`, least durable first."""

_LOCK_STEP = 0.005
"""Seconds SQLite's busy handler may wait at a time for the write lock before we look again
(see `SqliteStore._begin`)."""

MAX_BUSY_TIMEOUT = (2**31 - 1) / 1000
"""The longest `busy_timeout` in seconds: SQLite counts it in milliseconds, in a C int."""

_SCHEMA = """
CREATE TABLE contexts (
    name    TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE snapshots (
    context TEXT NOT NULL,
    version INTEGER NOT NULL,
    blob    BLOB NOT NULL,
    UNIQUE (context, version)
);
CREATE TABLE recovery_points (
    point_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    context    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    label      TEXT,
    created_at TEXT NOT NULL,
    blob       BLOB NOT NULL
);
CREATE INDEX recovery_points_by_context ON recovery_points (context, point_id);
CREATE TABLE journal (
    context TEXT NOT NULL,
    version INTEGER NOT NULL,
    blob    BLOB NOT NULL,
    UNIQUE (context, version)
);
CREATE TABLE leases (
    context    TEXT PRIMARY KEY NOT NULL,
    owner      TEXT,
    epoch      INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    wanted_by  TEXT
) WITHOUT ROWID;
"""

_MIGRATIONS = {
    # 1 -> 2: journaled deltas.
    1: "CREATE TABLE journal (context TEXT NOT NULL, version INTEGER NOT NULL, "
    "blob BLOB NOT NULL, UNIQUE (context, version))",
    # 2 -> 3: leases (one owner per context); a row outlives its context, so that epochs
    # only grow even across a delete and re-create.
    2: "CREATE TABLE leases (context TEXT PRIMARY KEY NOT NULL, owner TEXT, "
    "epoch INTEGER NOT NULL, expires_at REAL NOT NULL, wanted_by TEXT) WITHOUT ROWID",
}

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""The store's clock in SQL: the host's Unix time in seconds (SQLite reads it to the
millisecond). Every process sharing a file runs on its host, so all read one clock; a step of
the host's clock moves the end of every lease by as much."""


class _Connection(sqlite3.Connection):
    """A pooled connection, and the busy timeout its statements run under now (see
    `SqliteStore._begin`), so that it is set only when it has to change."""

    wal = False
    """Whether the file is in WAL mode on it: then a write, once begun, waits for no lock."""
    stepping = False
    """Whether its busy timeout is cut to `_LOCK_STEP` (for writes) rather than the full
    `busy_timeout` (which every read waits under)."""


class SqliteStore(Store):
    """A store in one SQLite file, safe to share between threads and processes.

    Args:
        path: the database file; created with our schema if missing or empty.
        synchronous: `PRAGMA synchronous` for every connection. `FULL` (the default) makes
            a returned write survive power loss; `NORMAL` in WAL mode can lose the last
            transactions on power loss but never corrupts; `OFF` trusts the OS entirely;
            `EXTRA` is `FULL` plus a directory sync SQLite only needs outside WAL mode.
        busy_timeout: seconds (0 to about 24 days) a write waits for another connection's
            write lock before failing with `PersistenceError`; 0 fails at once.

    Raises:
        ConfigurationError: a bad `synchronous`, `busy_timeout` or `retain_heads`.
        UnsupportedFormatError: the file is not a SQLite database, belongs to another
            application, or was written by a newer schema.
        PersistenceError: the file cannot be opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 10.0,
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
    ) -> None:
        super().__init__(codec=codec, retain_heads=retain_heads)
        if synchronous not in SYNCHRONOUS_LEVELS:  # callers may be untyped
            msg = f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}"
            raise ConfigurationError(msg)
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, int | float)
            or not 0 <= busy_timeout <= MAX_BUSY_TIMEOUT  # also refuses NaN
        ):
            msg = (
                f"busy_timeout must be a number of seconds from 0 to {MAX_BUSY_TIMEOUT}, "
                f"not {busy_timeout!r}"
            )
            raise ConfigurationError(msg)
        self.path = Path(path)
        self._path_name = os.fspath(self.path)  # stat()ed on every write: no Path per call
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self._pool: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        self._closed = False
        self._watch: sqlite3.Connection | None = None  # change_token()'s own connection
        directory = self.path.absolute().parent
        if not directory.is_dir():
            # SQLite would say only "unable to open database file".
            relative = "" if self.path.is_absolute() else ", relative to the working directory"
            msg = (
                f"cannot open SQLite file {str(self.path)!r}: directory {str(directory)!r} "
                f"does not exist{relative}; create it first"
            )
            raise PersistenceError(msg)
        with self._translate("open"):
            self._open_checked()
            self._file = _identity(self.path)

    def _open_checked(self) -> None:
        """Check the file is ours (or empty, then create the schema), then switch it to WAL.

        The check comes first because WAL mode rewrites the file header: a foreign database
        must be left as it was. Processes opening a new file at the same moment can find it
        locked in ways SQLite's busy handler does not wait out (the switch to WAL needs the
        file to itself), so "database is locked" is retried until `busy_timeout` runs out.
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                conn = self._open()
                try:
                    self._ensure_schema(conn)
                finally:
                    conn.close()
                self._pool.put(self._connect())
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)  # another process holds the file; not a test's pacing
                pause = min(pause * 2, 0.2)
            else:
                return

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    # -- connections and transactions -----------------------------------------------------

    def _open(self) -> _Connection:
        conn: _Connection = sqlite3.connect(  # factory=_Connection
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,  # we issue BEGIN IMMEDIATE ourselves
            check_same_thread=False,  # a pooled connection serves one thread at a time
            factory=_Connection,
        )
        return conn

    def _connect(self) -> _Connection:
        conn = self._open()
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.wal = str(mode).lower() == "wal"
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _take(self) -> _Connection:
        if self._closed:
            raise PersistenceError(f"{self!r} is closed")
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    @contextmanager
    def _connection(self) -> Iterator[_Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._release(conn)

    def _release(self, conn: _Connection) -> None:
        # close() may have run while the connection was out: then it is ours to close.
        if self._closed:
            conn.close()
        else:
            self._pool.put(conn)

    @contextmanager
    def _transaction(self, op: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE, COMMIT, ROLLBACK on any exception.
        (`_translate` and `_connection` written out: this runs on every durable write.)"""
        try:
            conn = self._take()
            try:
                self._begin(conn)
                try:
                    self._check_file_is_ours()
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT can leave the transaction open, and a connection must
                    # not go back to the pool holding the write lock.
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                self._release(conn)
        except ContextError:
            raise
        except sqlite3.Error as exc:
            raise self._translated(op, exc) from exc

    def _begin(self, conn: _Connection) -> None:
        """BEGIN IMMEDIATE, waiting for another connection's write lock for up to
        `busy_timeout` in short jittered steps (at most `_LOCK_STEP`).

        SQLite's own busy handler sleeps in growing steps of up to 100 ms and does not queue
        waiters: a write that meets the lock (a tracker creating a context while the group
        writer commits, or another process's back-to-back commits) waited far longer than
        the lock was held, and could lose to the same writer again and again. Here SQLite's
        handler is cut to `_LOCK_STEP` and the rest of the wait is ours. In WAL mode a write
        that holds the lock waits for nothing else, so the connection stays cut until a read
        needs the full `busy_timeout` again (`_read`): a connection that only writes, as the
        group writer's does, sets it once, not twice per transaction.
        """
        if not conn.stepping:
            conn.execute(f"PRAGMA busy_timeout={min(int(_LOCK_STEP * 1000), self._busy_ms)}")
            conn.stepping = True
        try:
            self._begin_stepping(conn)
        finally:
            if not conn.wal:  # COMMIT waits for readers outside WAL mode: the full timeout
                self._full_timeout(conn)

    def _begin_stepping(self, conn: _Connection) -> None:
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            else:
                return
            # Jitter, so that waiting connections do not wake in step; not a test's pacing.
            time.sleep(random.uniform(0, _LOCK_STEP / 2))

    @property
    def _busy_ms(self) -> int:
        return int(self.busy_timeout * 1000)

    def _full_timeout(self, conn: _Connection) -> None:
        """Give `conn` back its full `busy_timeout` if a write cut it."""
        if conn.stepping:
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.stepping = False

    def _check_file_is_ours(self) -> None:
        """Refuse to write if the path no longer names the file we opened.

        A file deleted (or replaced) under an open connection stays writable through it, so
        every write would be acknowledged into a file nobody can open again. One stat() per
        transaction, under the write lock, finds it first.
        """
        try:
            info = os.stat(self._path_name)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except FileNotFoundError:
            identity = None
        if identity != self._file:
            msg = (
                f"the SQLite file {str(self.path)!r} was deleted or replaced while open; "
                "writes are refused, since the file they would go to is gone"
            )
            raise PersistenceError(msg)

    @contextmanager
    def _read(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._translate(op), self._connection() as conn:
            self._full_timeout(conn)
            yield conn

    @contextmanager
    def _translate(self, op: str) -> Iterator[None]:
        """Map every sqlite3 error to `PersistenceError`, chained; ours pass through."""
        try:
            yield
        except ContextError:
            raise
        except sqlite3.Error as exc:
            raise self._translated(op, exc) from exc

    def _translated(self, op: str, exc: sqlite3.Error) -> PersistenceError:
        if isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in str(exc):
            return UnsupportedFormatError(f"{self.path} is not a SQLite database ({op}): {exc}")
        return PersistenceError(f"sqlite {op} on {self.path} failed: {exc}")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            problem = self._initialise_or_check(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if problem is not None:
            conn.execute("ROLLBACK")
            raise UnsupportedFormatError(problem)
        conn.execute("COMMIT")

    def _initialise_or_check(self, conn: sqlite3.Connection) -> str | None:
        """Create our schema in an empty file, or say why the file is not ours to open."""
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (user_version,) = conn.execute("PRAGMA user_version").fetchone()
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if app_id == 0 and tables == 0:
            # executescript() would COMMIT first; run the statements inside our transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return None
        if app_id != APPLICATION_ID:
            return (
                f"{self.path} is a SQLite database of another application "
                f"(application_id {app_id:#x}, ours is {APPLICATION_ID:#x})"
            )
        if user_version > SCHEMA_VERSION:
            return (
                f"{self.path} has schema version {user_version}; this library reads up "
                f"to {SCHEMA_VERSION}"
            )
        if user_version < min(_MIGRATIONS, default=SCHEMA_VERSION):
            # Our application_id with a schema version we never wrote: damage or a forgery.
            return (
                f"{self.path} has our application_id but schema version {user_version}, "
                f"which this library never wrote (it writes 1 to {SCHEMA_VERSION})"
            )
        if user_version < SCHEMA_VERSION:
            # Only a migration writes: a current file opens without writing a byte, so a
            # store on a full disk still opens and reads.
            for version in range(user_version, SCHEMA_VERSION):
                conn.execute(_MIGRATIONS[version])
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return None

    def pragmas(self) -> dict[str, object]:
        """The settings in effect on a pooled connection, for checks and tests: journal
        mode, synchronous level (0 OFF to 3 EXTRA) and busy timeout (milliseconds)."""
        with self._read("pragmas") as conn:
            return {
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
                "busy_timeout": conn.execute("PRAGMA busy_timeout").fetchone()[0],
            }

    def change_token(self) -> object | None:
        """`PRAGMA data_version` of a connection kept for it: it changes when any other
        connection (this process's pool included) commits to the file."""
        with self._translate("data_version"):
            watch = self._watch
            if watch is None:
                watch = self._watch = self._connect()
            token: int = watch.execute("PRAGMA data_version").fetchone()[0]
            return token

    def _head_versions(self, names: list[str]) -> dict[str, int]:
        versions: dict[str, int] = {}
        with self._read("read versions") as conn:
            for chunk, marks in _chunks(names):
                versions.update(
                    conn.execute(
                        f"SELECT name, version FROM contexts WHERE name IN ({marks})",  # noqa: S608 - placeholders only
                        chunk,
                    )
                )
        return versions

    def close(self) -> None:
        """Close every pooled connection; later calls raise `PersistenceError`."""
        self._closed = True
        if self._watch is not None:
            self._watch.close()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # -- primitives ------------------------------------------------------------------------

    def _create(self, name: str, version: int, blob: bytes) -> None:
        with self._transaction("create") as conn:
            if _select_exists(conn, name):
                raise ContextExistsError(name)
            self._insert_context(conn, name, version, blob)

    @staticmethod
    def _insert_context(conn: sqlite3.Connection, name: str, version: int, blob: bytes) -> None:
        conn.execute("INSERT INTO contexts (name, version) VALUES (?, ?)", (name, version))
        conn.execute(
            "INSERT INTO snapshots (context, version, blob) VALUES (?, ?, ?)",
            (name, version, blob),
        )

    def _read_head(self, name: str) -> tuple[int, bytes]:
        with self._read("read head") as conn:
            return _select_newest_snapshot(conn, name)

    def _head_version(self, name: str) -> int:
        with self._read("read version") as conn:
            return _select_head_version(conn, name)

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        with self._read("read changes") as conn:
            conn.execute("BEGIN")  # one read transaction: as of one moment
            try:
                head = _select_head_version(conn, name)
                entries = [e for e in _select_journal_after(conn, name, after) if e[0] <= head]
                snapshots: list[tuple[int, bytes]] = conn.execute(
                    "SELECT version, blob FROM snapshots "
                    "WHERE context = ? AND version > ? AND version <= ? ORDER BY version",
                    (name, after, head),
                ).fetchall()
                return head, entries, snapshots
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to keep

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        # One read transaction: the three reads see the file as of one moment, whatever
        # another connection commits (and compacts) meanwhile.
        with self._read("read latest") as conn:
            conn.execute("BEGIN")
            try:
                head = _select_head_version(conn, name)
                newest, blob = _select_newest_snapshot(conn, name)
                return head, newest, blob, _select_journal_after(conn, name, newest)
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to keep

    def _read_latest_parts_many(
        self, names: list[str]
    ) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
        # One read transaction for all: each context as of one moment, as above, in three
        # statements per chunk of names instead of three per context.
        heads: dict[str, int] = {}
        newest: dict[str, tuple[int, bytes]] = {}
        journal: dict[str, list[tuple[int, bytes]]] = {}
        with self._read("read latest") as conn:
            conn.execute("BEGIN")
            try:
                for chunk, marks in _chunks(names):
                    heads.update(
                        conn.execute(
                            f"SELECT name, version FROM contexts WHERE name IN ({marks})",  # noqa: S608 - placeholders only
                            chunk,
                        )
                    )
                    newest_of = (
                        "(SELECT context, MAX(version) AS version FROM snapshots "  # noqa: S608 - placeholders only
                        f"WHERE context IN ({marks}) GROUP BY context) AS newest"
                    )
                    for name, version, blob in conn.execute(
                        f"SELECT s.context, s.version, s.blob FROM snapshots AS s JOIN {newest_of} "  # noqa: S608 - placeholders only
                        "ON s.context = newest.context AND s.version = newest.version",
                        chunk,
                    ):
                        newest[name] = (version, blob)
                    for name, version, blob in conn.execute(
                        f"SELECT j.context, j.version, j.blob FROM journal AS j JOIN {newest_of} "  # noqa: S608 - placeholders only
                        "ON j.context = newest.context AND j.version > newest.version "
                        "ORDER BY j.context, j.version",
                        chunk,
                    ):
                        journal.setdefault(name, []).append((version, blob))
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to keep
        return latest_parts(heads, newest, journal)

    supports_journal = True
    commits_in_batches = True
    commits_creates = True

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        # Group commit: the whole batch is one transaction, so one fsync acknowledges it all.
        # A stale write is refused alone; an error of the transaction fails every write.
        # A write after a refused one of its context is refused too (see Store.commit).
        results: list[ContextError | None] = []
        refused: set[str] = set()
        with self._transaction("commit") as conn:
            for write in writes:
                name = write.context
                if not write.create and write.lease is None and name not in refused:
                    # The usual write: move the head only if it is the one expected, and
                    # look at the row only if it was not (one statement fewer per write).
                    moved = conn.execute(
                        "UPDATE contexts SET version = ? WHERE name = ? AND version = ?",
                        (write.version, name, write.expected),
                    ).rowcount
                    if moved:
                        self._insert_write(conn, write)
                        results.append(None)
                        continue
                row = conn.execute(
                    "SELECT version FROM contexts WHERE name = ?", (name,)
                ).fetchone()
                if write.create:
                    if row is not None or name in refused:
                        refused.add(name)
                        results.append(ContextExistsError(name))
                    else:
                        self._insert_context(conn, name, write.version, write.blob)
                        results.append(None)
                    continue
                if row is None:
                    results.append(ContextNotFoundError(name))
                    continue
                if write.lease is not None and name not in refused:
                    lost = _check_fence(conn, name, write.lease)
                    if lost is not None:
                        refused.add(name)
                        results.append(lost)
                        continue
                if row[0] != write.expected or name in refused:
                    refused.add(name)
                    results.append(VersionConflict(name, write.expected, row[0]))
                    continue
                conn.execute(
                    "UPDATE contexts SET version = ? WHERE name = ?", (write.version, name)
                )
                self._insert_write(conn, write)
                results.append(None)
        return results

    def _insert_write(self, conn: sqlite3.Connection, write: Write) -> None:
        """Store `write`'s blob (the head already moved to its version, in `conn`'s
        transaction); a snapshot drops what it makes obsolete."""
        table = "journal" if write.journal else "snapshots"
        conn.execute(
            f"INSERT INTO {table} (context, version, blob) VALUES (?, ?, ?)",  # noqa: S608 - table is one of two literals
            (write.context, write.version, write.blob),
        )
        if not write.journal:
            self._drop_old(conn, write.context)

    # -- leases: a row of `leases` per context, changed under the write lock -----------------

    supports_leases = True

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        refusal: NotOwner | None = None
        with self._transaction("acquire lease") as conn:
            now = _select_now(conn)
            try:
                lease = take_lease(_select_lease(conn, name, now), name, owner, ttl)
            except NotOwner as exc:
                # Noted in the same transaction, and committed: the holder learns that
                # someone waits. Only the first asker is kept until the lease changes hands.
                conn.execute(
                    "UPDATE leases SET wanted_by = ? WHERE context = ? AND wanted_by IS NULL",
                    (owner, name),
                )
                refusal = exc
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO leases (context, owner, epoch, expires_at, wanted_by) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, owner, lease.epoch, now + ttl, lease.wanted_by),
                )
        if refusal is not None:
            raise refusal
        return lease

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        # One transaction for every lease: one lock, one fsync, however many contexts.
        with self._transaction("renew leases") as conn:
            now = _select_now(conn)
            conn.executemany(
                "UPDATE leases SET expires_at = ? "
                "WHERE context = ? AND owner = ? AND epoch = ? AND expires_at > ?",
                [(now + ttl, name, owner, epoch, now) for name, epoch in epochs.items()],
            )
            return _select_leases(conn, list(epochs), now)

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        with self._read("read leases") as conn:
            conn.execute("BEGIN")  # every lease as of one moment and one reading of the clock
            try:
                return _select_leases(conn, names, _select_now(conn))
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to keep

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        with self._transaction("release lease") as conn:
            # The epoch stays: the next taker gets epoch + 1, and a write fenced with this
            # one is refused from now on.
            conn.execute(
                f"UPDATE leases SET owner = NULL, wanted_by = NULL, expires_at = {_NOW} "  # noqa: S608 - a constant
                f"WHERE context = ? AND owner = ? AND epoch = ? AND expires_at > {_NOW}",
                (name, owner, epoch),
            )

    def _drop_old(self, conn: sqlite3.Connection, name: str) -> None:
        """Keep the newest `retain_heads` snapshots (by count: a writer may skip versions)
        and the journal entries that some retained snapshot still needs."""
        conn.execute(
            "DELETE FROM snapshots WHERE context = ? AND version NOT IN ("
            "SELECT version FROM snapshots WHERE context = ? ORDER BY version DESC LIMIT ?)",
            (name, name, self.retain_heads),
        )
        conn.execute(
            "DELETE FROM journal WHERE context = ? AND version <= "
            "(SELECT min(version) FROM snapshots WHERE context = ?)",
            (name, name),
        )

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        with self._read("read journal") as conn:
            return _select_journal_after(conn, name, after)

    def _export_context(self, name: str) -> ContextExport:
        # One read transaction: every table as of one moment, whatever another connection
        # commits (and compacts) meanwhile; in WAL mode it holds up no writer.
        with self._read("export") as conn:
            conn.execute("BEGIN")
            try:
                head = _select_head_version(conn, name)
                snapshots = conn.execute(
                    "SELECT version, blob FROM snapshots WHERE context = ?", (name,)
                ).fetchall()
                journal = conn.execute(
                    "SELECT version, blob FROM journal WHERE context = ?", (name,)
                ).fetchall()
                points = conn.execute(
                    "SELECT point_id, version, label, created_at, blob FROM recovery_points "
                    "WHERE context = ?",
                    (name,),
                ).fetchall()
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to keep
        return ContextExport(
            name,
            head,
            tuple(snapshots),
            tuple(journal),
            tuple(
                (RecoveryPoint(name, pid, v, label, datetime.fromisoformat(created)), blob)
                for pid, v, label, created, blob in points
            ),
        )

    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        name = export.name
        with self._transaction("import") as conn:
            if _select_exists(conn, name):
                if not replace:
                    raise ContextExistsError(name)
                # Replaced whole, in this transaction: nothing of the old context stays.
                conn.execute("DELETE FROM contexts WHERE name = ?", (name,))
                conn.execute("DELETE FROM snapshots WHERE context = ?", (name,))
                conn.execute("DELETE FROM journal WHERE context = ?", (name,))
                conn.execute("DELETE FROM recovery_points WHERE context = ?", (name,))
            conn.execute("INSERT INTO contexts (name, version) VALUES (?, ?)", (name, export.head))
            conn.executemany(
                "INSERT INTO snapshots (context, version, blob) VALUES (?, ?, ?)",
                [(name, version, blob) for version, blob in export.snapshots],
            )
            conn.executemany(
                "INSERT INTO journal (context, version, blob) VALUES (?, ?, ?)",
                [(name, version, blob) for version, blob in export.journal],
            )
            point_ids = []
            for point, blob in export.recovery_points:
                cursor = conn.execute(
                    "INSERT INTO recovery_points (context, version, label, created_at, blob) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, point.version, point.label, point.created_at.isoformat(), blob),
                )
                assert cursor.lastrowid is not None
                point_ids.append(cursor.lastrowid)
        return point_ids

    def _delete(self, name: str) -> None:
        with self._transaction("delete") as conn:
            if conn.execute("DELETE FROM contexts WHERE name = ?", (name,)).rowcount == 0:
                raise ContextNotFoundError(name)
            conn.execute("DELETE FROM snapshots WHERE context = ?", (name,))
            conn.execute("DELETE FROM journal WHERE context = ?", (name,))
            conn.execute("DELETE FROM recovery_points WHERE context = ?", (name,))

    def _exists(self, name: str) -> bool:
        with self._read("exists") as conn:
            return _select_exists(conn, name)

    def _list_contexts(self) -> list[str]:
        with self._read("list contexts") as conn:
            return [row[0] for row in conn.execute("SELECT name FROM contexts")]

    def _list_versions(self, name: str) -> list[int]:
        with self._read("list versions") as conn:
            versions = [
                row[0]
                for row in conn.execute("SELECT version FROM snapshots WHERE context = ?", (name,))
            ]
        if not versions:
            raise ContextNotFoundError(name)
        return versions

    def _read_version(self, name: str, version: int) -> bytes:
        with self._read("read snapshot") as conn:
            row = conn.execute(
                "SELECT blob FROM snapshots WHERE context = ? AND version = ?", (name, version)
            ).fetchone()
            if row is None:
                if _select_exists(conn, name):
                    raise SnapshotNotFoundError(name, version)
                raise ContextNotFoundError(name)
        blob: bytes = row[0]
        return blob

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        with self._transaction("create recovery point") as conn:
            if not _select_exists(conn, name):
                raise ContextNotFoundError(name)
            cursor = conn.execute(
                "INSERT INTO recovery_points (context, version, label, created_at, blob) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, version, label, created_at.isoformat(), blob),
            )
            point_id = cursor.lastrowid
        assert point_id is not None
        return point_id

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        with self._read("list recovery points") as conn:
            if not _select_exists(conn, name):
                raise ContextNotFoundError(name)
            rows = conn.execute(
                "SELECT point_id, version, label, created_at FROM recovery_points "
                "WHERE context = ?",
                (name,),
            ).fetchall()
        return [
            RecoveryPoint(name, point_id, version, label, datetime.fromisoformat(created_at))
            for point_id, version, label, created_at in rows
        ]

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        with self._read("read recovery point") as conn:
            row = conn.execute(
                "SELECT version, blob FROM recovery_points WHERE context = ? AND point_id = ?",
                (name, point_id),
            ).fetchone()
        if row is None:
            raise RecoveryPointNotFoundError(name, point_id)
        return row[0], row[1]

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        with self._transaction("delete recovery point") as conn:
            deleted = conn.execute(
                "DELETE FROM recovery_points WHERE context = ? AND point_id = ?",
                (name, point_id),
            ).rowcount
            if deleted == 0:
                raise RecoveryPointNotFoundError(name, point_id)


def _chunks(names: list[str]) -> Iterator[tuple[list[str], str]]:
    """`names` in chunks of `_NAMES_PER_STATEMENT`, each with its `?,?,...` placeholders."""
    for start in range(0, len(names), _NAMES_PER_STATEMENT):
        chunk = names[start : start + _NAMES_PER_STATEMENT]
        yield chunk, ",".join("?" * len(chunk))


def _select_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM contexts WHERE name = ?", (name,)).fetchone() is not None


def _select_head_version(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT version FROM contexts WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ContextNotFoundError(name)
    version: int = row[0]
    return version


def _select_newest_snapshot(conn: sqlite3.Connection, name: str) -> tuple[int, bytes]:
    row = conn.execute(
        "SELECT version, blob FROM snapshots WHERE context = ? ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    if row is None:
        raise ContextNotFoundError(name)
    return row[0], row[1]


def _select_journal_after(
    conn: sqlite3.Connection, name: str, after: int
) -> list[tuple[int, bytes]]:
    rows: list[tuple[int, bytes]] = conn.execute(
        "SELECT version, blob FROM journal WHERE context = ? AND version > ? ORDER BY version",
        (name, after),
    ).fetchall()
    return rows


def _select_now(conn: sqlite3.Connection) -> float:
    now: float = conn.execute(f"SELECT {_NOW}").fetchone()[0]
    return now


def _select_lease(conn: sqlite3.Connection, name: str, now: float) -> Lease | None:
    """The lease of `name` as stored (None: never taken), its end counted from `now`."""
    row = conn.execute(
        "SELECT owner, epoch, expires_at, wanted_by FROM leases WHERE context = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    owner, epoch, expires_at, wanted_by = row
    return Lease(name, owner, epoch, expires_at - now, wanted_by)


def _select_leases(conn: sqlite3.Connection, names: list[str], now: float) -> dict[str, Lease]:
    """The leases of `names` (never taken: epoch 0), their ends counted from `now`."""
    stored: dict[str, Lease] = {}
    # In chunks: a manager renews all its contexts at once.
    for chunk, marks in _chunks(names):
        rows = conn.execute(
            "SELECT context, owner, epoch, expires_at, wanted_by FROM leases "  # noqa: S608 - placeholders only
            f"WHERE context IN ({marks})",
            chunk,
        ).fetchall()
        stored.update(
            (name, Lease(name, owner, epoch, expires_at - now, wanted_by))
            for name, owner, epoch, expires_at, wanted_by in rows
        )
    return {name: stored.get(name) or Lease(name, None, 0, 0.0) for name in names}


def _check_fence(conn: sqlite3.Connection, name: str, epoch: int) -> LeaseLost | None:
    """None if the lease of `name` is held with `epoch` by the store's clock now, else the
    `LeaseLost` that refuses a write fenced with it."""
    row = conn.execute(
        f"SELECT epoch, owner IS NOT NULL AND expires_at > {_NOW} FROM leases "  # noqa: S608 - a constant
        "WHERE context = ?",
        (name,),
    ).fetchone()
    if row is None:
        return LeaseLost(name, epoch, 0)
    current, held = row
    return None if held and current == epoch else LeaseLost(name, epoch, current)


def _identity(path: Path) -> tuple[int, int]:
    """What names one file for as long as it exists: its device and inode numbers."""
    info = path.stat()
    return info.st_dev, info.st_ino
