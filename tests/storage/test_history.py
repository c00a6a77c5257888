"""History and point-in-time reads (`Store.history`, `read_at`, `read_as_of`) on every backend."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import (
    ContextNotFoundError,
    CorruptSnapshotError,
    Delta,
    HistoryEntry,
    InvalidArgumentError,
    SnapshotCodec,
    SqliteStore,
    State,
    Store,
    VersionNotKeptError,
)
from tests.storage.test_store_contract import Backend
from tests.storage.test_store_contract import backend as backend  # noqa: PLC0414 - a fixture
from tests.storage.test_store_contract import make_store as make_store  # noqa: PLC0414 - a fixture
from tests.storage.test_store_contract import store as store  # noqa: PLC0414 - a fixture

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(version: int) -> datetime:
    """The `updated_at` these tests give a version: one minute apart."""
    return T0 + timedelta(minutes=version)


class Writer:
    """Writes versions of one context as a tracker would (journal entries, snapshots) and
    remembers each State it wrote."""

    def __init__(self, store: Store, name: str = "ctx", **data: Any) -> None:
        self.store = store
        state = State.new(name, data)
        state.updated_at = at(0)
        store.create(state)
        self.written: dict[int, State] = {0: state.snapshot()}
        self.head = state

    def _next(
        self, version: int | None, changes: dict[str, Any], removed: tuple[str, ...]
    ) -> State:
        state = self.head.snapshot()
        state.version = self.head.version + 1 if version is None else version
        state.updated_at = at(state.version)
        for key, value in changes.items():
            state.set(key, value)
        for key in removed:
            state.delete(key)
        return state

    def journal(self, *removed: str, **changes: Any) -> State:
        state = self._next(None, changes, removed)
        self.store.append(Delta.between(self.head, state), self.head.version)
        return self._keep(state)

    def snapshot(self, *removed: str, version: int | None = None, **changes: Any) -> State:
        state = self._next(version, changes, removed)
        self.store.compare_and_set(state, self.head.version)
        return self._keep(state)

    def _keep(self, state: State) -> State:
        self.written[state.version] = state.snapshot()
        self.head = state
        return state


def versions(entries: list[HistoryEntry]) -> list[int]:
    return [entry.version for entry in entries]


def test_history_lists_snapshots_and_journal_entries_oldest_first(store: Store) -> None:
    w = Writer(store, a=0, b=0)
    w.journal(a=1)  # 1
    w.journal("b", c=1)  # 2
    w.journal(a=2)  # 3
    w.snapshot("c", a=3, d=1)  # 4: written whole
    w.journal(d=2)  # 5

    entries = store.history("ctx")

    assert versions(entries) == [0, 1, 2, 3, 4, 5]
    assert [e.kind for e in entries] == [
        "snapshot",
        "journal",
        "journal",
        "journal",
        "snapshot",
        "journal",
    ]
    assert [e.updated_at for e in entries] == [at(v) for v in range(6)]
    first = entries[0]
    assert first.full
    assert (first.changed, first.previous, first.keys) == (None, None, None)
    assert (entries[1].changed, entries[1].removed, entries[1].previous) == (("a",), (), 0)
    assert (entries[2].changed, entries[2].removed) == (("c",), ("b",))
    assert entries[2].keys == ("b", "c")
    # A snapshot's keys are what differs from the version before it.
    assert (entries[4].changed, entries[4].removed, entries[4].previous) == (("a", "d"), ("c",), 3)
    assert not entries[4].full
    assert entries[5].changed == ("d",)


def test_history_since_and_limit(store: Store) -> None:
    w = Writer(store, n=0)
    for i in range(1, 8):
        w.journal(n=i)

    assert versions(store.history("ctx", since=5)) == [5, 6, 7]
    assert versions(store.history("ctx", limit=3)) == [0, 1, 2]
    assert versions(store.history("ctx", since=2, limit=2)) == [2, 3]
    assert store.history("ctx", since=8) == []


def test_every_kept_version_reads_as_written_and_older_ones_are_refused(
    make_store: Callable[..., Store],
) -> None:
    store = make_store(retain_heads=2)
    w = Writer(store, n=0, items=[])
    for i in range(1, 15):
        if i % 4 == 0:
            w.snapshot(n=i, items=[*w.head.data["items"], i])
        else:
            w.journal(n=i, items=[*w.head.data["items"], i])
    # Snapshots 0, 4, 8, 12; two kept (8, 12), and the journal since 8.
    kept = versions(store.history("ctx"))
    assert kept == list(range(8, 15))

    for version in kept:
        assert store.read_at("ctx", version) == w.written[version]
    for version in range(8):
        with pytest.raises(VersionNotKeptError) as caught:
            store.read_at("ctx", version)
        assert caught.value.kept == tuple(kept)
        assert caught.value.version == version
        assert "versions kept: 8-14" in str(caught.value)
    with pytest.raises(VersionNotKeptError):
        store.read_at("ctx", 15)  # not written yet


def test_read_as_of_picks_the_newest_version_made_at_or_before(store: Store) -> None:
    w = Writer(store, n=0)
    for i in range(1, 6):
        w.journal(n=i)
    w.snapshot(n=6)

    assert store.read_as_of("ctx", at(3)) == w.written[3]
    assert store.read_as_of("ctx", at(3) + timedelta(seconds=59)) == w.written[3]
    assert store.read_as_of("ctx", at(6)) == w.written[6]
    assert store.read_as_of("ctx", at(60)) == w.written[6]
    with pytest.raises(VersionNotKeptError) as caught:
        store.read_as_of("ctx", at(0) - timedelta(seconds=1))
    assert caught.value.at == at(0) - timedelta(seconds=1)
    assert caught.value.kept == tuple(range(7))


def test_versions_a_writer_skipped_are_not_kept(store: Store) -> None:
    w = Writer(store, n=0)
    w.snapshot(version=3, n=3)  # a batching writer stored 1..3 as one snapshot
    w.journal(n=4)

    entries = store.history("ctx")

    assert versions(entries) == [0, 3, 4]
    assert (entries[1].previous, entries[1].changed) == (0, ("n",))
    with pytest.raises(VersionNotKeptError, match="versions kept: 0, 3-4"):
        store.read_at("ctx", 2)
    assert store.read_at("ctx", 4) == w.written[4]


def test_reads_never_write(store: Store) -> None:
    w = Writer(store, n=0)
    w.journal(n=1)
    w.snapshot(n=2)

    store.history("ctx")
    store.read_at("ctx", 1)
    store.read_as_of("ctx", at(1))

    assert store.head_version("ctx") == 2
    assert store.list_versions("ctx") == [2, 0]
    assert store.read_head("ctx") == w.written[2]


def test_unknown_context(store: Store) -> None:
    with pytest.raises(ContextNotFoundError):
        store.history("nope")
    with pytest.raises(ContextNotFoundError):
        store.read_at("nope", 0)
    with pytest.raises(ContextNotFoundError):
        store.read_as_of("nope", T0)


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        ("history_since", -1),
        ("history_since", "1"),
        ("history_since", True),
        ("history_limit", 0),
        ("history_limit", 2.0),
        ("read_at", -1),
        ("read_at", None),
        ("read_as_of", datetime(2026, 1, 1)),  # naive: refused
        ("read_as_of", "2026-01-01"),
    ],
)
def test_bad_arguments_are_refused(store: Store, call: str, bad: Any) -> None:
    Writer(store)
    calls: dict[str, Callable[[], object]] = {
        "history_since": lambda: store.history("ctx", since=bad),
        "history_limit": lambda: store.history("ctx", limit=bad),
        "read_at": lambda: store.read_at("ctx", bad),
        "read_as_of": lambda: store.read_as_of("ctx", bad),
    }
    with pytest.raises(InvalidArgumentError):
        calls[call]()


# -- python -m storage history / show ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> tuple[str, Writer]:
    """A SQLite store keeping two snapshots of context "ctx": 3 and 5, and journal entry 4."""
    store = SqliteStore(tmp_path / "history.db", retain_heads=2)
    w = Writer(store, a=0, b=0)
    w.journal(a=1)  # 1
    w.journal("b", c=1)  # 2
    w.snapshot(a=3)  # 3
    w.journal(a=4)  # 4
    w.snapshot(a=5)  # 5: snapshots 3 and 5 kept, 0 dropped with journal 1..3
    store.close()
    return f"sqlite:///{tmp_path / 'history.db'}", w


def test_cli_history_prints_one_line_per_kept_version(sqlite_url: tuple[str, Writer]) -> None:
    url, _ = sqlite_url

    result = cli("history", url, "ctx")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["3", at(3).isoformat(), "snapshot"],
        ["4", at(4).isoformat(), "journal"],
        ["5", at(5).isoformat(), "snapshot"],
    ]
    assert lines[0].endswith("full snapshot")
    assert lines[1].endswith("set a")
    assert lines[2].endswith("set a")
    since = cli("history", url, "ctx", "--since", "4", "--limit", "1")
    assert [line.split()[0] for line in since.stdout.splitlines()] == ["4"]


def test_cli_show_prints_a_kept_version_as_json(sqlite_url: tuple[str, Writer]) -> None:
    url, w = sqlite_url

    head = cli("show", url, "ctx")
    four = cli("show", url, "ctx", "--version", "4")
    at_four = cli("show", url, "ctx", "--at", (at(4) + timedelta(seconds=1)).isoformat())

    assert head.returncode == four.returncode == at_four.returncode == 0, head.stderr
    codec = SnapshotCodec()
    assert json.loads(head.stdout) == json.loads(json.dumps(codec.unstructure(w.written[5])))
    assert json.loads(four.stdout) == json.loads(json.dumps(codec.unstructure(w.written[4])))
    assert at_four.stdout == four.stdout


def test_cli_refuses_what_is_not_kept(sqlite_url: tuple[str, Writer]) -> None:
    url, _ = sqlite_url

    gone = cli("show", url, "ctx", "--version", "1")
    before = cli("show", url, "ctx", "--at", at(2).isoformat())
    missing = cli("history", url, "nope")
    bad = cli("history", url, "ctx", "--limit", "0")

    assert gone.returncode == before.returncode == 1
    assert "versions kept: 3-5" in gone.stderr
    assert "versions kept: 3-5" in before.stderr
    assert missing.returncode == bad.returncode == 2
    assert "nope" in missing.stderr
    assert "limit" in bad.stderr


def test_damage_on_the_way_is_reported_not_skipped(store: Store, backend: Backend) -> None:
    w = Writer(store, n=0)
    w.journal(n=1)
    w.snapshot(n=2)
    w.journal(n=3)
    backend.corrupt(store, "ctx", 0)

    with pytest.raises(CorruptSnapshotError):
        store.history("ctx")
    with pytest.raises(CorruptSnapshotError):
        store.read_at("ctx", 1)
    # What does not need the damaged snapshot still reads.
    assert store.read_at("ctx", 3) == w.written[3]
