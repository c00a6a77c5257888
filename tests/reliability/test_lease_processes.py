"""Leases across real OS processes: one owner per context at a time, nothing acknowledged
lost, and a former owner frozen past its lease (SIGSTOP) cannot write when it wakes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from actors import LeasePolicy, State, create_manager
from storage import open_store
from tests.postgres_server import postgres_server  # noqa: F401 - pytest finds fixtures by name
from tests.redis_cluster import redis_cluster  # noqa: F401 - pytest finds fixtures by name
from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
from tests.reliability.process_worker import run_workers

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, THREADS, INCREMENTS = 2, 8, 60


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'leased.db'}"
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_server").url()
        return url
    server = request.getfixturevalue(backend if backend == "redis_cluster" else "redis_server")
    return f"{server.url}?prefix=lease-{uuid.uuid4().hex[:8]}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["sqlite", "redis", "redis_cluster", "postgres"])
def test_two_processes_with_leases_share_a_hot_context_exactly(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(backend, tmp_path, request)
    # A VersionConflict (or any error) reaching a caller fails its child.
    outputs = run_workers(url, PROCESSES, THREADS, INCREMENTS, "leases")
    assert outputs == [f"done {THREADS * INCREMENTS}"] * PROCESSES
    store = open_store(url)
    try:
        head = store.read_head("shared")
        lease = store.read_leases(["shared"])["shared"]
    finally:
        store.close()
    assert head.get("n") == PROCESSES * THREADS * INCREMENTS
    assert head.version == PROCESSES * THREADS * INCREMENTS
    assert not lease.held  # both gave it up as they shut down


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    assert ready, f"no line from the child within {timeout} s"
    return child.stdout.readline().strip()


def _bump(state: State) -> None:
    state.set("n", state.get("n") + 1)


@pytest.mark.timeout(120)
def test_a_former_owner_frozen_past_its_lease_has_its_writes_refused_and_loses_nothing(
    redis_server: object,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    # Redis: a frozen client holds no lock there. (On SQLite and PostgreSQL a process frozen
    # inside a write transaction holds the database's write lock or the lease row's lock, so
    # no one can take the lease over until it resumes: docs/architecture.md, "Leases".)
    url = f"{redis_server.url}?prefix=frozen-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    ttl = 1.0
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.lease_worker", url, "4", str(ttl)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    manager = None
    try:
        assert _read_line(child, 60) == "ready"
        os.kill(child.pid, signal.SIGSTOP)
        store = open_store(url)
        try:
            frozen = store.read_leases(["shared"])["shared"]
        finally:
            store.close()
        assert frozen.held
        # Another process wants to write: it waits until the frozen owner's lease ends by
        # the store's clock (nobody renews it), takes it over and writes.
        manager = create_manager(url, leases=LeasePolicy(ttl=ttl, hold=0.05, wait=30))
        tracker = manager.get_tracker("shared").get()
        started = time.monotonic()
        mine = 0
        for _ in range(20):
            tracker.modify(_bump).get(timeout=30)
            mine += 1
        assert time.monotonic() - started < 30
        os.kill(child.pid, signal.SIGCONT)
        # Both go on: the woken one's writes under its ended lease are refused, and it takes
        # the lease back (we hand it over) before writing again.
        for _ in range(20):
            tracker.modify(_bump).get(timeout=30)
            mine += 1
        assert child.stdin is not None
        child.stdin.write("stop\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=90)
        assert child.returncode == 0, err[-3000:]
        _, theirs, refused = out.split()[-3:]
        manager.shutdown().get()
        manager = None
        store = open_store(url)
        try:
            head = store.read_head("shared")
            final = store.read_leases(["shared"])["shared"]
        finally:
            store.close()
        assert head.get("n") == int(theirs) + mine  # nothing acknowledged lost, none twice
        assert int(refused) >= 1, "the frozen owner's writes were not refused by the store"
        assert final.epoch >= frozen.epoch + 2  # taken over, then back
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait(10)
        if manager is not None:
            manager.shutdown().get()
