"""The scale-out benchmark works (not a test of speed: nothing here asserts a timing).

Its smallest configuration runs here: SQLite, 1 and 2 spawned processes x 2 threads, both
workloads, a fraction of a second a row. The table must print and every count be exact.
"""

from __future__ import annotations

import json

import pytest

import actors
from tests.benchmarks.scaleout import WORKLOADS, SqliteBackend, _row, _seed, main, run_scaleout

pytestmark = pytest.mark.bench  # runs a benchmark command: pytest --bench


@pytest.mark.timeout(120)
def test_smallest_table_prints_with_exact_counts(capsys):
    code = run_scaleout(["sqlite"], [1, 2], seconds=0.3, threads=2)
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.startswith("sqlite ")]
    assert [(row[1], row[3]) for row in rows] == [(w, n) for w in WORKLOADS for n in ("1", "2")]
    assert all(row[-1] == "exact" for row in rows), out
    assert all(int(row[4].replace(",", "")) > 0 for row in rows), out
    assert "counts: every counter holds what was acknowledged to it, in every row" in out


@pytest.mark.timeout(30)
def test_a_count_that_differs_from_what_was_acknowledged_is_a_failure(tmp_path):
    backend = SqliteBackend(tmp_path)
    url = backend.url("check")
    names = ["shared"]
    _seed(url, names)  # the counter holds 0
    report = {
        "process": 0,
        "updates": 3,
        "elapsed": 1.0,
        "cpu": 0.1,
        "failed": {},
        "acknowledged": {"shared": 3},  # three acknowledged, none stored: lost updates
        "unknown": {},
        "metrics": {},
    }
    row = _row(backend, "shared", 1, False, [report], 0.0, url, names)
    assert row.check == "FAILURE: shared holds 0, 3 acknowledged"
    # Three calls timed out instead: each may or may not have been stored.
    timed_out = report | {"acknowledged": {}, "unknown": {"shared": 3}}
    assert _row(backend, "shared", 1, False, [timed_out], 0.0, url, names).check == (
        "within 3 unknown"
    )


@pytest.mark.timeout(120)
def test_leases_rows_run_with_exact_counts_or_the_flag_is_refused(capsys, tmp_path):
    if not hasattr(actors, "LeasePolicy"):  # LEASES: until they land, the flag says why not
        assert main(["--leases", "--stores", "sqlite", "--processes", "1"]) == 2
        assert "manager_options()" in capsys.readouterr().err
        return
    result = tmp_path / "rows.json"
    code = run_scaleout(
        ["sqlite"], [2], 0.3, leases=True, threads=2, json_path=result, workloads=("shared",)
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = json.loads(result.read_text())
    assert [(row["leases"], row["processes"]) for row in rows] == [(False, 2), (True, 2)], out
    without, with_leases = rows
    assert (without["leases_taken"], with_leases["leases_taken"] > 0) == (0, True), out
    assert with_leases["check"] == "exact", out
    assert with_leases["failed"] == {}, out  # no VersionConflict (nor any error) reached a caller
