"""A process always exits: with or without `shutdown()`, when its main thread returns,
raises, or takes SIGINT or SIGTERM, within seconds, and with every acknowledged update in
the file (under a batched policy: flushed by the exit hook).

Each test runs `tests/reliability/exit_worker.py` in a child process on a real SQLite file,
reads what the child acknowledged from its stdout, waits for it to exit with a timeout, and
then opens the file itself. Nothing sleeps: the test waits on the child's lines and exit.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pykka
import pytest

import actors
from actors import ShutdownError, SyncPolicy, TrackerConfig, create_manager
from actors._exit import _managers, shut_down_at_exit
from storage import SqliteStore

ROOT = Path(__file__).resolve().parents[2]

EXIT = 10.0
"""Seconds a child has to exit once its main thread is done or signalled."""

WAIT = 30.0
"""Seconds a test waits for a line of the child (it starts Python and imports first)."""


class Child:
    """A running `exit_worker`: its stdout is read in a thread (acknowledgements are
    recorded, other lines queued), its stderr goes to a file."""

    def __init__(self, mode: str, db: Path) -> None:
        self.mode = mode
        self._stderr_path = db.with_suffix(f".{mode}.stderr")
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.exit_worker", mode, str(db)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        self.acked: dict[str, tuple[int, int]] = {}
        """The last acknowledged (version, value) per context."""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode().rstrip("\n")
            parts = line.split()
            # A line cut short by a kill is not a complete acknowledgement.
            if len(parts) == 4 and parts[0] == "ack" and raw.endswith(b"\n"):
                self.acked[parts[1]] = (int(parts[2]), int(parts[3]))
            else:
                self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, expected: str) -> list[str]:
        """Wait until the child prints the line `expected`; return the lines before it."""
        seen = []
        while True:
            try:
                line = self._lines.get(timeout=WAIT)
            except queue.Empty:
                self.kill()
                pytest.fail(f"{self.mode}: no {expected!r} within {WAIT} s; {self.stderr()}")
            if line is None:
                pytest.fail(f"{self.mode}: exited before {expected!r}; {self.stderr()}")
            if line == expected:
                return seen
            seen.append(line)

    def exit_code(self) -> int:
        """Wait up to `EXIT` seconds for the child to exit; fail (and kill it) if it does not."""
        try:
            code = self.process.wait(timeout=EXIT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.mode}: still running {EXIT} s later; {self.stderr()}")
        self._reader.join(WAIT)  # every acknowledgement is read
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=EXIT)

    def stderr(self) -> str:
        return "stderr:\n" + self._stderr_path.read_text(errors="replace")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "exit.db"


@pytest.fixture
def spawn():  # type: ignore[no-untyped-def]
    children: list[Child] = []

    def start(mode: str, db: Path) -> Child:
        child = Child(mode, db)
        children.append(child)
        return child

    yield start
    for child in children:  # a failed test leaves no process behind
        if child.process.poll() is None:
            child.kill()
        if child.process.stdout is not None:
            child.process.stdout.close()


def stored(db: Path) -> dict[str, tuple[int, int]]:
    """Every context's (version, n) as the file holds it, read by a fresh store."""
    with SqliteStore(db) as store:
        return {
            name: (state.version, state.get("n"))
            for name in store.list_contexts()
            for state in [store.read_head(name)]
        }


def assert_acknowledged_stored(child: Child, db: Path) -> None:
    """Every update the child acknowledged is in the file (or a later one of its thread)."""
    assert child.acked, f"{child.mode}: nothing acknowledged"
    heads = stored(db)
    for name, (version, value) in child.acked.items():
        assert heads[name][0] >= version, (name, heads[name], version)
        assert heads[name][1] >= value, (name, heads[name], value)


# -- the main thread ends without shutdown() ------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "code"), [("return", 0), ("raise", 1)])
def test_exits_without_shutdown_with_every_acknowledged_update(spawn, db, mode, code):
    """(a), (b): the main thread returns, or raises, and never called shutdown(): the
    process still exits, with the usual exit code, and every durable update it
    acknowledged is in the file, exactly."""
    child = spawn(mode, db)
    child.wait_for("done")
    assert child.exit_code() == code, child.stderr()
    assert stored(db) == {"a": (20, 20), "b": (20, 20)}
    assert child.acked == {"a": (20, 20), "b": (20, 20)}
    if mode == "raise":
        assert "RuntimeError: the main thread fails" in child.stderr()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "code"), [("batched-return", 0), ("batched-raise", 1)])
def test_exit_flushes_unsaved_batched_updates(spawn, db, mode, code):
    """(c): under a batched policy that never writes by itself, 20 acknowledged updates
    per context are still unsaved when the main thread ends; the exit hook writes them."""
    child = spawn(mode, db)
    before = child.wait_for("done")
    assert before == ["stored 0", "stored 0"]  # nothing was written before the exit
    assert child.exit_code() == code, child.stderr()
    assert stored(db) == {"a": (20, 20), "b": (20, 20)}
    assert child.acked == {"a": (20, 20), "b": (20, 20)}


# -- signals --------------------------------------------------------------------------------

SIGNALLED = [
    # mode, signal, exit code
    pytest.param("threads", signal.SIGINT, -signal.SIGINT, id="durable-SIGINT"),
    # SIGTERM's default action: the process dies at once; durable writes lose nothing.
    pytest.param("threads", signal.SIGTERM, -signal.SIGTERM, id="durable-SIGTERM-default"),
    pytest.param("threads-exit-on-sigterm", signal.SIGTERM, 143, id="durable-SIGTERM-exit"),
    pytest.param("batched-threads", signal.SIGINT, -signal.SIGINT, id="batched-SIGINT"),
    pytest.param("batched-threads-exit-on-sigterm", signal.SIGTERM, 143, id="batched-SIGTERM-exit"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "signum", "code"), SIGNALLED)
def test_signal_exits_with_every_acknowledged_update(spawn, db, mode, signum, code):
    """(d): three threads update three contexts as fast as they can; one signal ends the
    process within seconds, and every update it acknowledged is in the file. Under the
    batched policy (which never writes by itself here) that takes the exit hook's flush:
    Ctrl-C triggers it, and so does SIGTERM with the documented `sys.exit(143)` handler."""
    child = spawn(mode, db)
    child.wait_for("ready")
    child.process.send_signal(signum)
    assert child.exit_code() == code, child.stderr()
    assert set(child.acked) == {"a", "b", "c"}
    assert_acknowledged_stored(child, db)


@pytest.mark.timeout(60)
def test_one_sigint_stops_a_main_thread_waiting_on_a_write(spawn, db):
    """(f): the main thread and two others write durably; one SIGINT, which finds the main
    thread waiting on a write, ends the process: no second Ctrl-C is needed."""
    child = spawn("main-writes", db)
    child.wait_for("ready")
    child.process.send_signal(signal.SIGINT)
    assert child.exit_code() == -signal.SIGINT, child.stderr()
    assert "KeyboardInterrupt" in child.stderr()
    assert_acknowledged_stored(child, db)


@pytest.mark.timeout(60)
def test_uvicorn_app_whose_lifespan_skips_shutdown_exits_on_ctrl_c(spawn, db):
    """The case of issue 10: a uvicorn app starts a manager (batched policy) in its lifespan
    and never shuts it down. One Ctrl-C stops the server, the process exits, and the
    update it acknowledged is flushed at exit."""
    pytest.importorskip("uvicorn")
    child = spawn("uvicorn", db)
    child.wait_for("ready")
    child.process.send_signal(signal.SIGINT)
    # uvicorn shuts down gracefully, then raises the signal again, which asyncio's runner
    # may turn into a cancellation: exit code 0 or death by SIGINT, by version.
    assert child.exit_code() in (0, -signal.SIGINT), child.stderr()
    assert stored(db) == {"a": (1, 1)}
    assert child.acked == {"a": (1, 1)}


# -- what the exit hook cannot finish -------------------------------------------------------


@pytest.mark.timeout(60)
def test_blocking_subscriber_callback_does_not_keep_the_process_alive(spawn, db):
    """(e): a subscriber's callback blocks forever on an event nobody sets. After
    shutdown() resolved, the exit hook lets the callback run for the manager's
    `exit_timeout` (1 s here), logs it and exits."""
    child = spawn("blocking-callback", db)
    child.wait_for("shut down")
    assert child.exit_code() == 0, child.stderr()
    assert "its callback was still running 1.0 s after exit began" in child.stderr()
    assert stored(db) == {"a": (1, 1)}


@pytest.mark.timeout(60)
def test_manager_that_cannot_finish_in_time_is_logged_and_left(spawn, db):
    """A `modify()` function that never returns holds a tracker with an unsaved batched
    update: the exit hook waits `exit_timeout` (1 s), logs which context's updates are
    lost, and the process exits anyway."""
    child = spawn("stuck", db)
    child.wait_for("stuck")
    assert child.exit_code() == 0, child.stderr()
    log = child.stderr()
    assert "did not shut down within 1.0 s at exit" in log, log
    assert "the trackers of 'a' had not stopped" in log, log
    assert "the updates they had not written yet are lost (batched policy)" in log, log
    assert stored(db) == {"a": (0, 0)}  # the documented loss


# -- in this process --------------------------------------------------------------------------


def _actor_classes(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_actor_classes(sub))
    return found


def test_every_actor_of_ours_runs_on_a_daemon_thread():
    """A new actor class that forgot the flag would keep the process alive again."""
    ours = [
        cls
        for cls in _actor_classes(pykka.ThreadingActor)
        if cls.__module__.split(".")[0] == actors.__name__
    ]
    assert len(ours) >= 6, ours  # tracker, manager, writer, watcher, hub, callback runner
    assert [cls for cls in ours if not cls.use_daemon_thread] == []


def test_exit_hook_shuts_down_live_managers_and_forgets_stopped_ones(tmp_path):
    """The hook itself, called in this process: a batched update is written, the manager is
    shut down (calls then fail with `ShutdownError`), and a shut-down manager is no longer
    registered."""
    config = TrackerConfig(sync=SyncPolicy.batched(max_updates=1000, max_delay=3600.0))
    manager = create_manager(f"sqlite:///{tmp_path / 'hook.db'}", config=config)
    manager.create_context("a").get()
    tracker = manager.get_tracker("a").get()
    tracker.set("n", 1).get()
    stopped = create_manager()
    stopped.shutdown().get()
    assert manager._ref.actor_urn in _managers
    assert stopped._ref.actor_urn not in _managers

    shut_down_at_exit()

    assert manager._ref.actor_urn not in _managers
    with pytest.raises(ShutdownError):
        tracker.get("n").get()
    with SqliteStore(tmp_path / "hook.db") as store:
        assert store.read_head("a").get("n") == 1


def test_exit_timeout_is_validated():
    assert TrackerConfig(exit_timeout=0).exit_timeout == 0
    with pytest.raises(ValueError, match="exit_timeout"):
        TrackerConfig(exit_timeout=-1)


def test_timers_refused_at_interpreter_exit_fail_no_tracker(tmp_path, monkeypatch):
    """Python 3.12 starts no thread once the main thread has ended, so a tracker's flush
    timer may be refused while the program's own threads still write: the update is still
    accepted (not a tracker failure that would drop the batch) and written at shutdown."""
    config = TrackerConfig(sync=SyncPolicy.batched(max_updates=1000, max_delay=0.1))
    manager = create_manager(f"sqlite:///{tmp_path / 'timers.db'}", config=config)
    manager.create_context("a").get()
    tracker = manager.get_tracker("a").get()

    def refuse(_timer: threading.Timer) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Timer, "start", refuse)
    assert tracker.set("n", 1).get() == 1
    assert tracker.set("n", 2).get() == 2
    monkeypatch.undo()
    manager.shutdown().get()
    with SqliteStore(tmp_path / "timers.db") as store:
        assert store.read_head("a").get("n") == 2
