"""The web-service benchmark command works: `python -m tests.benchmarks.web` with tiny settings
(one second of load per run, 4 connections). Not a test of speed: no timing is asserted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench  # runs a benchmark command: pytest --bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_web_benchmark_prints_the_table_and_every_count_check_passes():
    command = [sys.executable, "-m", "tests.benchmarks.web", "--quick", "--seconds", "1"]
    result = subprocess.run(
        [*command, "--connections", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    client = "wrk" if shutil.which("wrk") else "httpx"
    assert f"load: {client}, 4 connections, 1 s per run" in lines[0], output
    assert lines[2].split()[:3] == ["workload", "server", "req/s"], output
    for workload in ("200 carts ", "100,000 cart ids "):
        rows = {
            line[len(workload) :].split()[0]: line for line in lines if line.startswith(workload)
        }
        assert rows.keys() == {"ours", "baseline", "ratio"}, output
        for server in ("ours", "baseline"):
            columns = rows[server][len(workload) :].split()
            assert float(columns[1].replace(",", "")) > 0, rows[server]  # requests/s
            assert " ok: " in rows[server], rows[server]  # stored == acknowledged
    assert "FAILED" not in output
