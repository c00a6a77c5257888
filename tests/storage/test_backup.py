"""`backup_sqlite` and `python -m storage backup`: an online backup of a SQLite store, as of one
moment while a writer runs, verified, never over an existing file unless forced."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from storage import (
    BackupExistsError,
    BackupVerificationError,
    InvalidArgumentError,
    MemoryStore,
    PersistenceError,
    SqliteStore,
    Store,
    backup_sqlite,
)
from storage._inspect import verify
from tests.storage.test_copy import (
    Stores,
    Writer,
    assert_consistent_copy,
    fill,
    run_cli,
)


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(request, tmp_path)
    yield made
    made.close()


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if "partial" in path.name)


def test_backup_under_a_live_writer_is_one_moment_of_every_context(
    stores: Stores, tmp_path: Path
) -> None:
    source = stores.new("sqlite", retain_heads=2)
    names = [f"ctx-{i}" for i in range(4)]
    for name in names:
        fill(source, name, 4, points=1)
    target = tmp_path / "backup.db"

    with Writer(stores.same(source), names) as writer:
        writer.wait_for(20)
        before = dict(writer.heads)
        report = backup_sqlite(source, target)
        writer.wait_for(writer.written + 20)  # still writing after the backup

    assert report.path == target
    assert report.contexts == 4
    assert report.size == target.stat().st_size
    assert leftovers(tmp_path) == []
    with SqliteStore(target) as backup:
        assert verify(backup) == []
        assert backup.list_contexts() == names
        for name in names:
            assert_consistent_copy(source, backup, name)
            assert backup.head_version(name) >= before[name].version
        # One moment of every context at once: the writer moves them on in turn, so at any
        # moment the heads are k+1 up to some context and k after it.
        heads = [backup.head_version(name) for name in names]
        assert heads == sorted(heads, reverse=True)
        assert heads[0] - heads[-1] <= 1
    checked = run_cli("verify", f"sqlite:///{target}")
    assert checked.returncode == 0, checked.stdout


def test_backup_refuses_an_existing_file_unless_forced(stores: Stores, tmp_path: Path) -> None:
    source = stores.new("sqlite")
    fill(source, "a", 3)
    target = tmp_path / "backup.db"
    target.write_bytes(b"precious")

    with pytest.raises(BackupExistsError) as refused:
        backup_sqlite(source, target)
    assert refused.value.path == target
    assert isinstance(refused.value, FileExistsError)
    assert target.read_bytes() == b"precious"

    backup_sqlite(source, target, force=True)
    with SqliteStore(target) as backup:
        assert backup.read_head("a") == source.read_head("a")
    assert leftovers(tmp_path) == []


def test_backup_onto_a_directory_fails_with_a_persistence_error(
    stores: Stores, tmp_path: Path
) -> None:
    source = stores.new("sqlite")
    fill(source, "a", 1)
    (tmp_path / "in-the-way").mkdir()
    with pytest.raises(PersistenceError, match="in-the-way"):
        backup_sqlite(source, tmp_path / "in-the-way", force=True)
    assert leftovers(tmp_path) == []


def test_backup_of_another_store_or_onto_itself_is_refused(stores: Stores) -> None:
    with pytest.raises(InvalidArgumentError, match="copy_store"):
        backup_sqlite(MemoryStore(), "x.db")
    source = stores.new("sqlite")
    assert isinstance(source, SqliteStore)
    with pytest.raises(InvalidArgumentError, match="own file"):
        backup_sqlite(source, source.path, force=True)


def test_backup_of_a_damaged_store_keeps_no_file(stores: Stores, tmp_path: Path) -> None:
    source: Store = stores.new("sqlite")
    fill(source, "a", 3)
    assert isinstance(source, SqliteStore)
    with closing(sqlite3.connect(source.path)) as conn, conn:
        conn.execute("UPDATE snapshots SET blob = substr(blob, 1, 20) WHERE version = 3")
    target = tmp_path / "backup.db"

    with pytest.raises(BackupVerificationError, match="1 damaged record"):
        backup_sqlite(source, target)

    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_cli_backup_writes_a_verified_file_and_refuses_to_overwrite_it(
    stores: Stores, tmp_path: Path
) -> None:
    source = stores.new("sqlite")
    for name in ("a", "b"):
        fill(source, name, 5)
    url, target = stores.url(source), tmp_path / "nightly.db"

    made = run_cli("backup", url, str(target))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("backed up 2 context(s) to ")
    assert run_cli("verify", f"sqlite:///{target}").returncode == 0

    again = run_cli("backup", url, str(target))
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert "--force" in again.stderr
    assert run_cli("backup", url, str(target), "--force").returncode == 0


def test_cli_backup_of_a_store_that_is_not_sqlite_points_at_copy(
    stores: Stores, tmp_path: Path
) -> None:
    redis_url = stores.url(stores.new("redis"))
    result = run_cli("backup", redis_url, str(tmp_path / "b.db"))
    assert result.returncode == 2
    assert "python -m storage copy" in result.stderr
    assert not (tmp_path / "b.db").exists()
