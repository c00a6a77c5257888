"""A PostgreSQL server killed with SIGKILL under load, through the whole runtime: calls fail
with `PersistenceError` in time, writes resume after the restart, nothing acknowledged is lost.

tests/storage/test_postgres.py does the same at the store's level; this is what a caller of
trackers sees.
"""

from __future__ import annotations

import threading
import time

import pytest

from actors import PersistenceError, SupervisorConfig, create_manager
from storage import open_store
from tests.postgres_server import PostgresServer

STORE_TIMEOUT = 0.5
CALL_TIMEOUT = 30.0
THREADS, CONTEXTS = 8, 4
WAIT = 60.0
"""Seconds the test waits for something the load makes happen (it polls, never paces)."""


def wait_for(condition, timeout: float = WAIT) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds or `timeout` passes (bounds the wait only)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        pause.wait(0.02)
    return bool(condition())


@pytest.mark.timeout(120)
def test_kill_9_of_the_server_under_modify_load_loses_nothing_acknowledged():
    server = PostgresServer()
    try:
        server.start()
        url = f"{server.url()}&timeout={STORE_TIMEOUT}"
        names = [f"c{i}" for i in range(CONTEXTS)]
        acknowledged = dict.fromkeys(names, 0)
        unknown = dict.fromkeys(names, 0)  # failed calls: applied or not, no one can say
        failures: list[tuple[float, BaseException]] = []
        others: list[BaseException] = []
        stop = threading.Event()
        lock = threading.Lock()
        # Each failed reload counts as a tracker failure: a restart budget that outlasts the
        # outage keeps the contexts alive (the default of 3 in 10 s would mark them failed).
        manager = create_manager(url, supervisor=SupervisorConfig(max_restarts=1000))
        try:
            for name in names:
                manager.create_context(name, {"n": 0}).get()
            trackers = {name: manager.get_tracker(name).get() for name in names}

            def load(index: int) -> None:
                name = names[index % CONTEXTS]
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        trackers[name].modify(lambda s: s.set("n", s.get("n") + 1)).get(
                            timeout=CALL_TIMEOUT
                        )
                    except PersistenceError as exc:
                        with lock:
                            failures.append((time.monotonic() - started, exc))
                            unknown[name] += 1
                        time.sleep(0.05)  # a caller's pause before trying again
                    except Exception as exc:  # collected, asserted below
                        with lock:
                            others.append(exc)
                        return
                    else:
                        with lock:
                            acknowledged[name] += 1

            workers = [threading.Thread(target=load, args=(i,)) for i in range(THREADS)]
            for worker in workers:
                worker.start()
            assert wait_for(lambda: min(acknowledged.values()) >= 20), "no load before the kill"
            server.kill()
            # Calls fail meanwhile, each within its timeouts: wait until every context has.
            assert wait_for(lambda: min(unknown.values()) > 0), "no call failed while down"
            with lock:
                before_restart = dict(acknowledged)
                failed_while_down = len(failures)
            server.start()
            # Writes resume on every context (after its tracker's restart backoff, which
            # grows with the failed reloads while the server was down).
            resumed = wait_for(lambda: all(acknowledged[n] > before_restart[n] + 5 for n in names))
            stop.set()
            for worker in workers:
                worker.join(timeout=CALL_TIMEOUT)
        finally:
            stop.set()
            manager.shutdown().get()

        assert others == []
        assert failed_while_down > 0, "no call failed while the server was down"
        assert resumed, f"writes did not resume within {WAIT} s: {acknowledged}"
        # Each failed within a few store timeouts (a write, then the tracker's reload), far
        # inside the caller's own timeout (the bound leaves room for a loaded machine).
        assert max(took for took, _ in failures) < CALL_TIMEOUT / 3
        with open_store(url) as store:
            for name in names:
                stored = store.read_head(name).get("n")
                # Every acknowledged increment is there; a failed one may be too.
                assert acknowledged[name] <= stored <= acknowledged[name] + unknown[name]
                assert acknowledged[name] > before_restart[name], f"{name} never resumed"
    finally:
        server.remove()
