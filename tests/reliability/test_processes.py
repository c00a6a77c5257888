"""Many processes, one context: the store's compare-and-set arbitrates, nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from actors import TrackerConfig, VersionConflict, create_manager
from storage import open_store
from tests.postgres_server import postgres_server  # noqa: F401 - pytest finds fixtures by name
from tests.redis_cluster import (  # noqa: F401 - pytest finds fixtures by name
    redis_cluster,
    valkey_cluster,
)
from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
from tests.reliability.process_worker import run_workers

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, THREADS, INCREMENTS = 2, 4, 250
COUNTS = [str(THREADS), str(INCREMENTS)]


def _check(url: str) -> None:
    outputs = run_workers(url, PROCESSES, THREADS, INCREMENTS)
    assert outputs == [f"done {THREADS * INCREMENTS}"] * PROCESSES
    store = open_store(url)
    try:
        head = store.read_head("shared")
    finally:
        store.close()
    assert head.get("n") == PROCESSES * THREADS * INCREMENTS
    assert head.version == PROCESSES * THREADS * INCREMENTS  # one version per increment


@pytest.mark.timeout(180)
def test_two_processes_share_a_counter_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.timeout(180)
def test_two_processes_share_a_counter_on_redis(redis_server):  # noqa: F811 - the fixture
    _check(f"{redis_server.url}?prefix=procs-{uuid.uuid4().hex[:8]}")


@pytest.mark.timeout(180)
def test_two_processes_share_a_counter_on_redis_cluster(redis_cluster):  # noqa: F811 - fixture
    _check(f"{redis_cluster.url}?prefix=procs-{uuid.uuid4().hex[:8]}")


@pytest.mark.timeout(180)
def test_two_processes_share_a_counter_on_postgres(postgres_server):  # noqa: F811 - the fixture
    _check(postgres_server.url())


def _two_managers(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    first, second = create_manager(url), create_manager(url)
    first.create_context("shared", {"n": 0, "who": "nobody"}).get()
    return first, second


def test_modify_reruns_on_the_fresh_state_after_another_writer(tmp_path):
    first, second = _two_managers(tmp_path)
    try:
        mine = first.get_tracker("shared").get()
        theirs = second.get_tracker("shared").get()
        assert mine.get("n").get() == 0  # loaded at version 0
        theirs.modify(lambda s: s.set("n", s.get("n") + 10)).get()
        # Our cached version is stale: the write conflicts, we reload and run fn again.
        state = mine.modify(lambda s: s.set("n", s.get("n") + 1)).get()
        assert (state.get("n"), state.version) == (11, 2)
        assert mine.set("who", "me").get() == 3
    finally:
        first.shutdown().get()
        second.shutdown().get()


def test_stale_update_state_after_another_writer_is_a_conflict_and_reloads(tmp_path):
    first, second = _two_managers(tmp_path)
    try:
        mine = first.get_tracker("shared").get()
        theirs = second.get_tracker("shared").get()
        read = mine.get_state().get()
        theirs.set("who", "them").get()
        read.set("who", "me")
        with pytest.raises(VersionConflict):
            mine.update_state(read).get()
        fresh = mine.get_state().get()
        assert (fresh.get("who"), fresh.version) == ("them", 1)
        fresh.set("who", "me")
        assert mine.update_state(fresh).get().version == 2
    finally:
        first.shutdown().get()
        second.shutdown().get()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "backend", ["sqlite", "redis", "redis_cluster", "valkey_cluster", "postgres"]
)
def test_a_subscriber_sees_every_version_another_process_writes(tmp_path, request, backend):
    """redis_cluster (6.2) is the fallback: the watcher polls head versions. valkey_cluster
    has sharded pub/sub: the watcher reads heads only when a message on the context's shard
    channel came, so without those messages it would see nothing after the first read."""
    cluster = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'watched.db'}"
    elif backend == "valkey_cluster":
        cluster = request.getfixturevalue(backend)
        url = f"{cluster.url}?prefix=watch-{uuid.uuid4().hex[:8]}"
    elif backend in ("redis", "redis_cluster"):
        server = request.getfixturevalue(f"{backend}_server" if backend == "redis" else backend)
        url = f"{server.url}?prefix=watch-{uuid.uuid4().hex[:8]}"
    else:
        url = request.getfixturevalue("postgres_server").url()
    # A watcher that falls further behind than the store keeps history for is told of the gap
    # (a change with `missed`), and on a loaded machine it can: keep the whole run's history
    # (about 20 x 100 versions), so that what this test checks is delivery, not retention.
    url += f"{'&' if '?' in url else '?'}retain_heads=20"
    total = THREADS * INCREMENTS
    seen: list[tuple[int, int, int]] = []
    all_seen = threading.Event()

    def collect(change):
        seen.append((change.old_version, change.new_version, change.changed.get("n", -1)))
        if change.new_version >= total:
            all_seen.set()

    manager = create_manager(url, config=TrackerConfig(watch_interval=0.05))
    try:
        manager.create_context("shared", {"n": 0}).get()
        tracker = manager.get_tracker("shared").get()
        tracker.subscribe(collect).get()
        counts = cluster.publish_counts() if cluster is not None else (0, 0)
        # Another OS process writes every version; this one only watches.
        child = subprocess.run(
            [sys.executable, "-m", "tests.reliability.process_worker", url, *COUNTS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        assert all_seen.wait(30), f"saw up to {seen[-1] if seen else None}"
        if cluster is not None:
            # Every script that moved the head (a write, or a chain of journal entries the
            # writer sent as one) published to the one replica of its shard; none over the
            # whole bus.
            publish, shard = cluster.publish_counts()
            assert publish == counts[0]
            assert 0 < shard - counts[1] <= total * cluster.replicas_per_master
    finally:
        manager.shutdown().get()
    # In order, no gap, each version once, and each holds the counter the other wrote.
    assert [new for _, new, _ in seen] == list(range(1, total + 1))
    assert all(old == new - 1 for old, new, _ in seen)
    assert all(n == new for _, new, n in seen)
    assert tracker_state_matches(url, total)


def tracker_state_matches(url: str, total: int) -> bool:
    store = open_store(url)
    try:
        return store.read_head("shared").get("n") == total
    finally:
        store.close()
