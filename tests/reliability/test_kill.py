"""Fault 1: a process killed with SIGKILL mid-work loses no acknowledged update."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from storage import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20
CONTEXTS = 4


def _run_and_kill(db: Path, acks_before_kill: int) -> dict[str, tuple[int, int]]:
    """Start the worker, kill it after it acknowledged `acks_before_kill` updates, and
    return the last acknowledged (version, value) per context, read from its pipe."""
    acked: dict[str, tuple[int, int]] = {}
    with subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.kill_worker", str(db), str(CONTEXTS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as child:
        assert child.stdout is not None
        _read_then_kill(child, acked, acks_before_kill)
    assert child.returncode == -signal.SIGKILL
    return acked


def _read_then_kill(child, acked, acks_before_kill):
    try:
        assert child.stdout.readline() == b"ready\n"
        seen = 0
        while seen < acks_before_kill:
            line = child.stdout.readline()
            assert line, "worker died on its own"
            name, version, value = line.split()
            acked[name.decode()] = (int(version), int(value))
            seen += 1
    finally:
        os.kill(child.pid, signal.SIGKILL)
        # Lines written before the kill are acknowledged too: drain the pipe.
        for line in child.stdout:
            parts = line.split()
            if len(parts) == 3:  # a line cut by the kill was never fully acknowledged
                acked[parts[0].decode()] = (int(parts[1]), int(parts[2]))
        child.wait(timeout=10)


@pytest.mark.timeout(240)
def test_sigkill_loses_no_acknowledged_update(tmp_path):
    db = tmp_path / "kill.db"
    rng = random.Random(20261125)
    last: dict[str, tuple[int, int]] = {}
    for round_ in range(ROUNDS):
        acked = _run_and_kill(db, rng.randint(1, 200))
        assert acked, f"round {round_}: nothing acknowledged"
        last.update(acked)
        with SqliteStore(db) as store:
            for name, (version, value) in last.items():
                state = store.read_head(name)
                assert state.version >= version, (round_, name, state.version, version)
                assert state.get("n") >= value, (round_, name, state.get("n"), value)
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(last) == CONTEXTS
