"""Two OS processes racing compare-and-set on one store: the check every durable store runs.

The worker must be importable at module level, since spawned processes import it.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

from storage import NotOwner, State, VersionConflict, open_store

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


def take_turns(url: str, name: str, worker: int, times: int, barrier: Any) -> None:
    """`times` times: take the lease of `name` (retrying while the other holds it), append
    `[worker, epoch]` to the context's log with a write fenced by the lease, give it up.
    Runs in a child process; a refused fenced write fails it."""
    owner = f"worker-{worker}"
    with open_store(url) as store:
        barrier.wait(TIMEOUT)
        for _ in range(times):
            while True:
                try:
                    epoch = store.acquire_lease(name, owner, TIMEOUT).epoch
                except NotOwner:
                    continue  # the other holds it, briefly: ask again
                break
            head = store.read_head(name)
            state = head.snapshot()
            state.version = head.version + 1
            state.set("log", [*head.get("log"), [worker, epoch]])
            write = store.prepare_snapshot(state, head.version, lease=epoch)
            assert store.commit([write]) == [None]
            store.release_lease(name, owner, epoch)


def assert_two_processes_take_turns_with_a_lease(url: str, times: int = 50) -> None:
    """Two processes contend for one context's lease `times` times each: every epoch is
    handed out once, in order, and every fenced write of its holder goes in."""
    with open_store(url) as store:
        store.create(State.new("shared", {"log": []}))

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=take_turns, args=(url, "shared", worker, times, barrier))
        for worker in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(TIMEOUT * 2)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(TIMEOUT)

    with open_store(url) as store:
        head = store.read_head("shared")
        lease = store.read_leases(["shared"])["shared"]
    log = head.get("log")
    # One write per lease taken, each with the next epoch: no epoch went to both processes.
    assert [epoch for _, epoch in log] == list(range(1, 2 * times + 1))
    assert Counter(worker for worker, _ in log) == {0: times, 1: times}
    assert (lease.owner, lease.epoch) == (None, 2 * times)
