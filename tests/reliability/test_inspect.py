"""`python -m storage verify` and `ls` on a store with planted damage."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from storage import SqliteStore, State
from storage.__main__ import main
from storage._delta import Delta
from storage._state import utc_now

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def damaged_db(tmp_path):
    db = tmp_path / "damaged.db"
    with SqliteStore(db) as store:
        for name in ("alpha", "beta"):
            state = State.new(name, {"n": 0})
            store.create(state)
            for version in (1, 2):
                state = state.successor(State.new(name, {"n": version}))
                store.compare_and_set(state, version - 1)
            store.create_recovery_point(state, "nightly")
    with closing(sqlite3.connect(db)) as conn, conn:
        (blob,) = conn.execute(
            "SELECT blob FROM snapshots WHERE context = 'beta' AND version = 1"
        ).fetchone()
        conn.execute(
            "UPDATE snapshots SET blob = ? WHERE context = 'beta' AND version = 1",
            (blob[:-3],),
        )
        (blob,) = conn.execute(
            "SELECT blob FROM recovery_points WHERE context = 'alpha'"
        ).fetchone()
        flipped = bytearray(blob)
        flipped[-1] ^= 0xFF
        conn.execute(
            "UPDATE recovery_points SET blob = ? WHERE context = 'alpha'", (bytes(flipped),)
        )
    return db


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_verify_reports_each_damaged_record_and_exits_nonzero(damaged_db):
    result = _cli("verify", f"sqlite:///{damaged_db}")
    assert result.returncode == 1, result.stderr
    damaged = [line for line in result.stdout.splitlines() if line.startswith("DAMAGED")]
    assert len(damaged) == 2
    assert any("beta: snapshot version 1" in line and "truncated" in line for line in damaged)
    assert any("alpha: recovery point id" in line and "CRC-32" in line for line in damaged)


def test_verify_reports_a_damaged_journal_entry(tmp_path):
    db = tmp_path / "journal.db"
    with SqliteStore(db) as store:
        store.create(State.new("gamma", {"n": 0}))
        for version in (1, 2):
            store.append(Delta("gamma", version, utc_now(), changed={"n": version}), version - 1)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE journal SET blob = substr(blob, 1, 20) WHERE version = 2")
    result = _cli("verify", f"sqlite:///{db}")
    assert result.returncode == 1
    assert "DAMAGED gamma: journal entry version 2" in result.stdout


def test_verify_passes_an_intact_store(tmp_path):
    db = tmp_path / "fine.db"
    with SqliteStore(db) as store:
        store.create(State.new("only", {"k": "v"}))
    result = _cli("verify", f"sqlite:///{db}")
    assert result.returncode == 0
    assert "ok: 1 context(s)" in result.stdout


def test_ls_lists_contexts_with_version_size_and_points(damaged_db, capsys):
    assert main(["ls", f"sqlite:///{damaged_db}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SIZE", "POINTS", "UPDATED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows.keys() == {"alpha", "beta"}
    with closing(sqlite3.connect(damaged_db)) as conn:
        (size,) = conn.execute(
            "SELECT length(blob) FROM snapshots WHERE context = 'alpha' AND version = 2"
        ).fetchone()
    assert rows["alpha"][1:4] == ["2", str(size), "1"]


def test_ls_one_context_shows_versions_and_recovery_points(damaged_db, capsys):
    assert main(["ls", f"sqlite:///{damaged_db}", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "context alpha: version 2" in out
    assert "retained snapshots: 2, 1, 0" in out
    assert "label nightly" in out


def test_cli_reports_unopenable_store(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert main(["verify", f"sqlite:///{junk}"]) == 2
    assert "cannot open" in capsys.readouterr().err


def _journaled(db, updates):
    """A context "gamma" at version `updates`, stored as its version-0 snapshot and a journal."""
    with SqliteStore(db) as store:
        store.create(State.new("gamma", {"n": 0}))
        for version in range(1, updates + 1):
            store.append(Delta("gamma", version, utc_now(), changed={"n": version}), version - 1)
        return store.read_head("gamma")


def test_ls_shows_the_head_version_of_a_journaled_context(tmp_path, capsys):
    db = tmp_path / "journal.db"
    head = _journaled(db, 54)
    assert main(["ls", f"sqlite:///{db}"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:2] == ["gamma", "54"]
    assert row[4] == head.updated_at.isoformat()
    assert main(["ls", f"sqlite:///{db}", "gamma"]) == 0
    out = capsys.readouterr().out
    assert f"context gamma: version 54, {row[2]} bytes, updated {row[4]}" in out
    assert "stored as: snapshot of version 0 + 54 journal entries" in out


def test_ls_into_a_reader_that_went_away_exits_quietly(tmp_path):
    # `python -m storage ls URL | head -1`: the reader is gone before the output is.
    db = tmp_path / "many.db"
    _journaled(db, 1)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "storage", "ls", f"sqlite:///{db}"],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141
