"""The benchmark command works (it is not a test of speed: nothing here asserts a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench  # runs a benchmark command: pytest --bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_quick_benchmarks_print_the_table_and_write_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        # Every row, each measured for a moment: the command works, whatever the figures.
        [sys.executable, "-m", "tests.benchmarks", "--seconds", "0.05", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout.splitlines()[1]
    rows = json.loads(out.read_text())
    assert {row["name"] for row in rows} >= {
        "in-memory set, 1 caller",
        "recover 10,000 keys + 1,000 updates",
    }
    assert all(row["ours"] > 0 and row["baseline"] > 0 for row in rows)


@pytest.mark.timeout(120)
def test_stages_script_prints_each_section():
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.stages", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        "durable set, 1 caller: wall time per stage",
        "durable set, 16 callers x 16 contexts: CPU per update",
        "in-memory modify, 8 callers: CPU per update",
        "in-memory get, 8 callers: CPU per call",
    ]
    assert any(line.split()[0] == "total" for line in lines if line.strip())
