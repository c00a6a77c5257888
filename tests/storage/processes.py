"""Two OS processes racing compare-and-set on one store: the check every durable store runs.

The worker must be importable at module level, since spawned processes import it.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

from storage import State, VersionConflict, open_store

TIMEOUT = 30.0
"""Seconds a worker may take to start or finish before it counts as hung."""


def increment(url: str, name: str, worker: int, times: int, barrier: Any) -> None:
    """Add 1 to a counter `times` times by read-modify-compare-and-set, retrying conflicts,
    and log `worker` with each increment. Runs in a child process."""
    with open_store(url) as store:
        barrier.wait(TIMEOUT)
        for _ in range(times):
            while True:
                head = store.read_head(name)
                state = head.snapshot()
                state.version = head.version + 1
                state.set("count", head.get("count") + 1)
                state.set("log", [*head.get("log"), worker])
                try:
                    store.compare_and_set(state, head.version)
                except VersionConflict:
                    continue
                break


def assert_two_processes_never_lose_an_update(url: str, times: int = 100) -> None:
    """Two processes each increment one counter `times` times; none is lost or overwritten."""
    with open_store(url) as store:
        store.create(State.new("counter", {"count": 0, "log": []}))

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=increment, args=(url, "counter", worker, times, barrier))
        for worker in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(TIMEOUT)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(TIMEOUT)

    with open_store(url) as store:
        head = store.read_head("counter")
    assert head.get("count") == 2 * times
    assert head.version == 2 * times
    # Every increment of each process is in the log: none was overwritten by the other.
    assert Counter(head.get("log")) == {0: times, 1: times}
