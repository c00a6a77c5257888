"""The peer benchmark works (not a test of speed: nothing here asserts a timing).

With the `bench` dependency group installed, the command itself runs (`--peers --quick`,
every system). Without it (as in CI, whose `uv sync --locked` installs the dev group only),
the same code runs on the systems that need no bench package: ours, the hand-rolled baseline
and Redis. Either way the table must print and every count must be exact.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.peers import run_peers

pytestmark = pytest.mark.bench  # runs a benchmark command: pytest --bench

ROOT = Path(__file__).resolve().parents[2]
BENCH_MODULES = ["diskcache", "sqlitedict", "ZODB", "lmdb"]
HEADER = "ours vs each peer: ratio = ours ops/s / peer ops/s (> 1: ours is faster); one run"


def bench_group_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in BENCH_MODULES)


def check_table(out: str, peers: list[str]) -> None:
    lines = out.splitlines()
    assert HEADER in lines, out
    header = next(line for line in lines if line.startswith("workload "))
    assert [f"vs {peer}" in header for peer in peers] == [True] * len(peers), header
    rows = [line for line in lines if line.startswith(("durable", "16 threads", "cold open"))]
    assert len(rows) == 4, out
    assert "counts: exact on every system and workload" in lines, out
    assert "FAILURE" not in out


@pytest.mark.timeout(60)
def test_peer_table_prints_with_exact_counts(capsys):
    if bench_group_installed():
        result = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks", "--peers", "--quick"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=55,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        check_table(result.stdout, ["baseline", "diskcache", "sqlitedict", "ZODB", "LMDB", "Redis"])
    else:
        code = run_peers(systems=["ours", "baseline", "Redis"], seconds=0.1, contexts=10, rounds=2)
        out = capsys.readouterr().out
        assert code == 0, out
        check_table(out, ["baseline", "Redis"])
