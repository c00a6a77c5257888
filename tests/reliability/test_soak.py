"""Soak: 16 threads x 50 contexts of durable read-modify-write updates with random crashes.

The default suite runs a short soak. The long one is skipped unless SOAK_SECONDS is set:

    SOAK_SECONDS=600 uv run pytest tests/reliability/test_soak.py -k long -s

Both end by checking, in the reopened SQLite file, that every context's counter equals the
number of increments acknowledged to the threads (none lost, none doubled), and print a line
`soak: N passed, M failed` (N acknowledged updates, M calls that failed).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import pykka
import pytest

from actors import ContextError, SupervisorConfig, TrackerConfig, create_manager
from actors.testing import crash
from storage import SqliteStore

THREADS = 16
CONTEXTS = 50


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _increment(state):
    state.set("n", state.get("n") + 1)


def run_soak(db, seconds: float, seed: int = 1) -> tuple[int, int]:
    """Run the soak for `seconds`; returns (acknowledged, failed) and checks the store."""
    config = TrackerConfig(
        ask_timeout=30.0,
        supervisor=SupervisorConfig(max_restarts=1000, within_seconds=1.0, backoff_initial=0.0),
    )
    manager = create_manager(f"sqlite:///{db}", config=config)
    names = [f"soak-{i:02d}" for i in range(CONTEXTS)]
    for name in names:
        manager.create_context(name, {"n": 0}).get()
    trackers = [manager.get_tracker(name).get() for name in names]

    acked: list[Counter[str]] = [Counter() for _ in range(THREADS)]
    failed = [0] * THREADS
    crashes = [0]
    stop = threading.Event()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            tracker = rng.choice(trackers)
            try:
                tracker.modify(_increment).get()
            except ContextError:
                failed[index] += 1
            else:
                acked[index][tracker.name] += 1

    def crasher() -> None:
        rng = random.Random(seed)
        # Event.wait paces the faults; it synchronises nothing.
        while not stop.wait(0.005):
            crash(rng.choice(trackers)).get()
            crashes[0] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    chaos = threading.Thread(target=crasher)
    for thread in [*threads, chaos]:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    stop.set()
    chaos.join(timeout=30)
    assert not any(thread.is_alive() for thread in [*threads, chaos])
    manager.shutdown().get()

    total = sum(acked, Counter())
    with SqliteStore(db) as store:
        stored = {name: store.read_head(name).get("n") for name in names}
    passed, failures = sum(total.values()), sum(failed)
    print(f"soak: {passed} passed, {failures} failed ({crashes[0]} crashes injected)")
    assert crashes[0] > 0
    # A failed call may or may not have been applied; an acknowledged one always was.
    for name in names:
        assert total[name] <= stored[name] <= total[name] + failures, name
    return passed, failures


def test_soak_short(tmp_path):
    passed, failures = run_soak(tmp_path / "soak.db", seconds=3.0)
    assert passed > 0
    # crash() fails only its own message: every update queued behind it is replayed.
    assert failures == 0


@pytest.mark.skipif("SOAK_SECONDS" not in os.environ, reason="set SOAK_SECONDS to run")
@pytest.mark.timeout(0)
def test_soak_long(tmp_path):
    seconds = float(os.environ["SOAK_SECONDS"])
    passed, failures = run_soak(tmp_path / "soak.db", seconds=seconds, seed=int(time.time()))
    assert passed > 0
    assert failures == 0
