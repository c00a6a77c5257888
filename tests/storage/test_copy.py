"""Copying contexts between stores: the export/import contract on every backend, `copy_store`
(including under a live writer), and `python -m storage copy`.

A writer here stores `{"n": v}` at every version v, so any State read anywhere says by itself
whether it is a consistent version: its data must be its version. Copies under a live writer
are checked that way, record by record, besides `verify` and the versions of both stores.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from actors import create_manager
from storage import (
    ContextExistsError,
    ContextExport,
    ContextNotFoundError,
    CopiedContext,
    CopyVerificationError,
    CorruptSnapshotError,
    DestinationExistsError,
    InvalidArgumentError,
    MemoryStore,
    PersistenceError,
    PostgresStore,
    RedisStore,
    SqliteStore,
    State,
    Store,
    copy_store,
)
from storage._delta import Delta
from storage._inspect import verify
from storage._state import utc_now
from tests.postgres_server import PostgresServer, fresh_schema
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0
"""Seconds any wait here may take before it counts as a hang."""

KINDS = ["memory", "sqlite", "redis", "postgres"]


class Stores:
    """Builds stores of each kind for one test, and closes them all at its end. `same(store)`
    opens a second store on the same data, as another process would."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path
        self.opened: list[Store] = []

    def new(self, kind: str, **options: Any) -> Store:
        if kind == "memory":
            store: Store = MemoryStore(**options)
        elif kind == "sqlite":
            store = SqliteStore(self.tmp_path / f"{uuid.uuid4().hex}.db", **options)
        elif kind == "redis":
            server: RedisServer = self.request.getfixturevalue("redis_server")
            store = RedisStore("127.0.0.1", server.port, prefix=f"t-{uuid.uuid4().hex}", **options)
        else:
            pg: PostgresServer = self.request.getfixturevalue("postgres_server")
            store = PostgresStore(pg.conninfo, schema=fresh_schema(), **options)
        self.opened.append(store)
        return store

    def same(self, store: Store) -> Store:
        """Another store object on `store`'s data (a MemoryStore is only itself)."""
        if isinstance(store, SqliteStore):
            other: Store = SqliteStore(store.path, retain_heads=store.retain_heads)
        elif isinstance(store, RedisStore):
            other = RedisStore(
                store.host, store.port, prefix=store.prefix, retain_heads=store.retain_heads
            )
        elif isinstance(store, PostgresStore):
            pg: PostgresServer = self.request.getfixturevalue("postgres_server")
            other = PostgresStore(pg.conninfo, schema=store.schema, retain_heads=store.retain_heads)
        else:
            return store
        self.opened.append(other)
        return other

    def url(self, store: Store) -> str:
        if isinstance(store, SqliteStore):
            return f"sqlite:///{store.path}"
        if isinstance(store, RedisStore):
            return f"redis://{store.host}:{store.port}/{store.db}?prefix={store.prefix}"
        assert isinstance(store, PostgresStore)
        pg: PostgresServer = self.request.getfixturevalue("postgres_server")
        return pg.url(store.schema)

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(request, tmp_path)
    yield made
    made.close()


# -- what the writer writes, and how any of it is checked ------------------------------------


def write_version(store: Store, state: State, version: int) -> State:
    """Store `{"n": version}` at `version` over `state` (the head): every third version as a
    full snapshot (retention and compaction run), the others as journal entries."""
    if version % 3 == 0:
        new = state.snapshot()
        new.version = version
        new.set("n", version)
        store.compare_and_set(new, state.version)
        return new
    delta = Delta(state.context, version, utc_now(), changed={"n": version})
    store.append(delta, state.version)
    new = state.snapshot()
    delta.apply(new)
    return new


def fill(store: Store, name: str, versions: int, *, points: int = 2) -> None:
    """A context at version `versions` with `points` recovery points on the way."""
    state = State.new(name, {"n": 0})
    store.create(state)
    for version in range(1, versions + 1):
        state = write_version(store, state, version)
        if points and version % max(1, versions // points) == 0:
            store.create_recovery_point(state, label=f"at {version}")


class Writer:
    """A thread that keeps moving every context of `names` forward in `store` (round robin,
    with a recovery point now and then) until stopped. `wait_for(n)` waits until it has
    written n versions in all; `versions` says what it has written of each."""

    def __init__(self, store: Store, names: list[str]) -> None:
        self.store = store
        self.heads = {name: store.read_head(name) for name in names}
        self.written = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for name, head in list(self.heads.items()):
                    state = write_version(self.store, head, head.version + 1)
                    if state.version % 10 == 0:
                        self.store.create_recovery_point(state, label=f"at {state.version}")
                    self.heads[name] = state
                    with self._progress:
                        self.written += 1
                        self._progress.notify_all()
        except BaseException as exc:  # reported by __exit__
            self.error = exc
            with self._progress:
                self._progress.notify_all()

    def wait_for(self, written: int) -> None:
        with self._progress:
            assert self._progress.wait_for(
                lambda: self.written >= written or self.error is not None, WAIT
            )
        if self.error is not None:
            raise self.error


def assert_consistent_copy(source: Store, destination: Store, name: str) -> None:
    """The copy of `name` is one consistent version: every record of it holds `{"n": v}` at
    its v, it verifies, and every snapshot version both stores keep is equal in both."""
    head = destination.read_head(name)
    assert head.data == {"n": head.version}
    export = destination.export_context(name)
    assert export.head == head.version
    kept_by_source = set(source.list_versions(name))
    for version in destination.list_versions(name):
        state = destination.read_version(name, version)
        assert state.data == {"n": version}
        if version in kept_by_source:
            assert source.read_version(name, version) == state
    for version, blob in export.journal:
        delta = destination.codec.decode_delta(blob, context=name, version=version)
        assert delta.changed == {"n": version}
    for point in destination.list_recovery_points(name):
        assert destination.read_recovery_point(name, point).data == {"n": point.version}
        assert point.version <= head.version


def assert_same_contexts(first: Store, second: Store, names: list[str]) -> None:
    """Both stores keep the same of each context: head, snapshots, journal and points (but
    the points' ids), byte for byte."""
    for name in names:
        one, other = first.export_context(name), second.export_context(name)
        assert (one.head, one.snapshots, one.journal) == (
            other.head,
            other.snapshots,
            other.journal,
        )
        assert [(p.version, p.label, p.created_at, b) for p, b in one.recovery_points] == [
            (p.version, p.label, p.created_at, b) for p, b in other.recovery_points
        ]


# -- the contract: export_context and import_context on every backend ------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_export_holds_everything_kept_of_one_context(stores: Stores, kind: str) -> None:
    store = stores.new(kind, retain_heads=2)
    fill(store, "ctx", 10, points=2)
    fill(store, "other", 4)

    export = store.export_context("ctx")

    assert export.name == "ctx"
    assert export.head == 10
    assert [v for v, _ in export.snapshots] == sorted(store.list_versions("ctx"))
    assert [v for v, _ in export.snapshots] == [6, 9]
    assert [v for v, _ in export.journal] == [7, 8, 10]
    assert [(p.point_id, p.version, p.label) for p, _ in export.recovery_points] == [
        (p.point_id, p.version, p.label) for p in store.list_recovery_points("ctx")
    ]
    for version, blob in export.snapshots:
        assert store.codec.decode(blob) == store.read_version("ctx", version)
    for point, blob in export.recovery_points:
        assert store.codec.decode(blob) == store.read_recovery_point("ctx", point)
    with pytest.raises(ContextNotFoundError):
        store.export_context("missing")


@pytest.mark.parametrize("kind", KINDS)
def test_import_writes_the_export_byte_for_byte_with_new_point_ids(
    stores: Stores, kind: str
) -> None:
    source = stores.new("memory")
    fill(source, "ctx", 8, points=3)
    export = source.export_context("ctx")
    store = stores.new(kind)
    fill(store, "taken", 2, points=2)  # recovery point ids 1 and 2 are taken here

    points = store.import_context(export)

    again = store.export_context("ctx")
    assert (again.head, again.snapshots, again.journal) == (
        export.head,
        export.snapshots,
        export.journal,
    )
    assert points == store.list_recovery_points("ctx")
    assert [(p.version, p.label, p.created_at) for p in points] == [
        (p.version, p.label, p.created_at) for p, _ in export.recovery_points
    ]
    assert not {p.point_id for p in points} & {
        p.point_id for p in store.list_recovery_points("taken")
    }
    assert store.read_head("ctx") == source.read_head("ctx")
    assert store.head_version("ctx") == 8
    assert verify(store) == []
    # The imported context is an ordinary one: the next write follows its head.
    write_version(store, store.read_head("ctx"), 9)
    assert store.read_head("ctx").data == {"n": 9}


@pytest.mark.parametrize("kind", KINDS)
def test_import_refuses_an_existing_context_unless_replacing_it_whole(
    stores: Stores, kind: str
) -> None:
    store = stores.new(kind)
    fill(store, "ctx", 5, points=1)
    before = store.export_context("ctx")
    source = stores.new("memory")
    fill(source, "ctx", 2, points=0)
    export = source.export_context("ctx")

    with pytest.raises(ContextExistsError, match="'ctx'"):
        store.import_context(export)
    assert store.export_context("ctx") == before

    store.import_context(export, replace=True)
    assert_same_contexts(source, store, ["ctx"])
    assert store.list_recovery_points("ctx") == []  # the old context's points went with it


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_import_refuses_an_inconsistent_or_damaged_export(stores: Stores, kind: str) -> None:
    source = stores.new("memory")
    fill(source, "ctx", 5, points=1)
    good = source.export_context("ctx")
    store = stores.new(kind)
    bad = {
        "no snapshot": ContextExport("ctx", 5, (), good.journal, ()),
        "above the head": ContextExport("ctx", 4, good.snapshots, good.journal, ()),
        "gap": ContextExport("ctx", 5, good.snapshots, good.journal[:-2] + good.journal[-1:], ()),
        "twice": ContextExport("ctx", 5, good.snapshots, good.journal + good.journal[:1], ()),
    }
    for problem, export in bad.items():
        with pytest.raises(InvalidArgumentError, match="'ctx'"):
            store.import_context(export)
        assert not store.exists("ctx"), problem
    version, blob = good.snapshots[-1]
    damaged = ContextExport(
        "ctx", 5, (*good.snapshots[:-1], (version, blob[:-1])), good.journal, ()
    )
    with pytest.raises(CorruptSnapshotError):
        store.import_context(damaged)
    with pytest.raises(CorruptSnapshotError):  # a blob of another context
        store.import_context(ContextExport("other", 5, good.snapshots, good.journal, ()))
    assert store.list_contexts() == []


def test_an_import_that_fails_half_way_leaves_the_old_context_as_it_was(stores: Stores) -> None:
    store = stores.new("sqlite")
    fill(store, "ctx", 6, points=2)
    before = store.export_context("ctx")
    source = stores.new("memory")
    fill(source, "ctx", 3, points=1)
    assert isinstance(store, SqliteStore)
    # A failure after the old rows are deleted and the new snapshots written.
    with closing(sqlite3.connect(store.path)) as conn, conn:
        conn.execute(
            "CREATE TRIGGER fail_points BEFORE INSERT ON recovery_points "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )

    with pytest.raises(PersistenceError, match="injected failure"):
        store.import_context(source.export_context("ctx"), replace=True)

    assert store.export_context("ctx") == before


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgres"])
def test_every_export_under_a_writer_is_one_moment(stores: Stores, kind: str) -> None:
    # retain_heads=1: every third write drops the snapshot and journal before it, so an
    # export that read its parts at two moments would miss records or hold stale ones.
    store = stores.new(kind, retain_heads=1)
    fill(store, "ctx", 3, points=0)
    reader = stores.same(store)
    heads = set()
    with Writer(store, ["ctx"]) as writer:
        for round_ in range(200):
            writer.wait_for(round_ + 1)  # the writer moves on between exports
            export = reader.export_context("ctx")
            heads.add(export.head)
            copy = MemoryStore(retain_heads=1)
            copy.import_context(export)  # checks the journal reaches the head; decodes all
            assert copy.read_head("ctx").data == {"n": export.head}
    assert len(heads) > 1


# -- copy_store ------------------------------------------------------------------------------


def test_round_trip_sqlite_to_redis_to_sqlite_is_equal(stores: Stores) -> None:
    first = stores.new("sqlite", retain_heads=4)
    for i in range(4):
        fill(first, f"ctx-{i}", 5 + 4 * i, points=i)
    redis_store = stores.new("redis")
    last = stores.new("sqlite")

    there = copy_store(first, redis_store)
    back = copy_store(redis_store, last)

    names = first.list_contexts()
    assert [c.name for c in there.copied] == [c.name for c in back.copied] == names
    assert redis_store.list_contexts() == last.list_contexts() == names
    assert_same_contexts(first, redis_store, names)
    assert_same_contexts(first, last, names)
    for name in names:
        assert last.read_head(name) == first.read_head(name)
        assert last.list_versions(name) == first.list_versions(name)
        for version in first.list_versions(name):
            assert last.read_version(name, version) == first.read_version(name, version)
    assert verify(redis_store) == verify(last) == []
    copied = there.copied[3]
    assert (copied.version, copied.snapshots, copied.journal_entries) == (17, (6, 9, 12, 15), 8)
    assert len(copied.recovery_points) == 3


@pytest.mark.parametrize(
    ("source_kind", "destination_kind"),
    [("sqlite", "redis"), ("redis", "sqlite"), ("postgres", "sqlite"), ("sqlite", "postgres")],
)
def test_copy_under_a_live_writer_is_a_consistent_version_of_each_context(
    stores: Stores, source_kind: str, destination_kind: str
) -> None:
    source = stores.new(source_kind, retain_heads=2)
    names = [f"ctx-{i}" for i in range(5)]
    for name in names:
        fill(source, name, 4, points=1)
    destination = stores.new(destination_kind)
    copied: list[CopiedContext] = []

    with Writer(stores.same(source), names) as writer:
        writer.wait_for(10)

        def after_each(done: CopiedContext) -> None:
            # The writer moves every context on between two contexts' copies: the copy of
            # each later one runs while the writer is at it.
            copied.append(done)
            writer.wait_for(writer.written + len(names))

        report = copy_store(source, destination, progress=after_each)
        written_during = {name: writer.heads[name].version for name in names}

    assert report.copied == tuple(copied)
    assert [c.name for c in copied] == names
    assert verify(destination) == []
    for done in copied:
        assert destination.head_version(done.name) == done.version
        assert_consistent_copy(source, destination, done.name)
    # Later contexts were copied after the writer had moved them on.
    assert copied[-1].version > 4
    assert all(done.version <= written_during[done.name] for done in copied)


def test_copy_while_a_manager_updates_the_source_is_a_consistent_version(
    stores: Stores,
) -> None:
    # The runtime as the writer: trackers doing modify increments, each stored as the
    # runtime stores it (journal entries, snapshots when it compacts), at version n.
    source = stores.new("sqlite")
    destination = stores.new("redis")
    manager = create_manager(stores.same(source))
    names = ["a", "b", "c"]
    for name in names:
        manager.create_context(name, {"n": 0}).get(timeout=WAIT)
    trackers = [manager.get_tracker(name).get(timeout=WAIT) for name in names]
    rounds = [0]
    progress = threading.Condition()
    stop = threading.Event()

    def increment(state: State) -> None:
        state.set("n", state.get("n") + 1)

    def work() -> None:
        while not stop.is_set():
            for tracker in trackers:
                tracker.modify(increment).get(timeout=WAIT)
            with progress:
                rounds[0] += 1
                progress.notify_all()

    def rounds_reach(wanted: int) -> None:
        with progress:
            assert progress.wait_for(lambda: rounds[0] >= wanted, WAIT)

    worker = threading.Thread(target=work, name="modify-loop")
    worker.start()
    try:
        rounds_reach(3)
        report = copy_store(source, destination, progress=lambda done: rounds_reach(rounds[0] + 2))
    finally:
        stop.set()
        worker.join(WAIT)
        manager.shutdown().get(timeout=WAIT)

    assert [c.name for c in report.copied] == names
    assert verify(destination) == []
    for done in report.copied:
        assert done.version >= 3
        assert_consistent_copy(source, destination, done.name)
    assert report.copied[-1].version > report.copied[0].version  # copied while it ran


def test_copy_refuses_contexts_that_exist_in_the_destination_and_writes_nothing(
    stores: Stores,
) -> None:
    source = stores.new("sqlite")
    for name in ("a", "b", "c"):
        fill(source, name, 3)
    destination = stores.new("sqlite")
    fill(destination, "b", 1, points=0)
    fill(destination, "c", 1, points=0)
    before = destination.export_context("b")

    with pytest.raises(DestinationExistsError) as refused:
        copy_store(source, destination)

    assert refused.value.names == ("b", "c")
    assert isinstance(refused.value, ContextExistsError)
    assert "'b', 'c'" in str(refused.value)
    assert destination.list_contexts() == ["b", "c"]
    assert destination.export_context("b") == before


def test_copy_replace_replaces_existing_contexts_whole(stores: Stores) -> None:
    source = stores.new("sqlite")
    fill(source, "a", 6, points=1)
    destination = stores.new("redis")
    fill(destination, "a", 9, points=3)
    fill(destination, "untouched", 2)
    untouched = destination.export_context("untouched")

    report = copy_store(source, destination, replace=True)

    assert [c.name for c in report.copied] == ["a"]
    assert_same_contexts(source, destination, ["a"])
    assert len(destination.list_recovery_points("a")) == 1
    assert destination.export_context("untouched") == untouched


def test_copy_of_named_contexts_copies_only_those(stores: Stores) -> None:
    source = stores.new("sqlite")
    for name in ("a", "b", "c"):
        fill(source, name, 3)
    destination = stores.new("memory")

    report = copy_store(source, destination, ["c", "a", "c"])

    assert [c.name for c in report.copied] == ["c", "a"]
    assert destination.list_contexts() == ["a", "c"]
    with pytest.raises(ContextNotFoundError, match="'nope'"):
        copy_store(source, destination, ["b", "nope"])
    assert destination.list_contexts() == ["a", "c"]  # checked before anything was written
    with pytest.raises(InvalidArgumentError, match=r"\['b'\]"):
        copy_store(source, destination, "b")


def test_copy_stops_at_a_damaged_context_with_nothing_of_it_written(stores: Stores) -> None:
    source = stores.new("memory")
    for name in ("a", "b", "c"):
        fill(source, name, 3, points=0)
    assert isinstance(source, MemoryStore)
    blob = source.codec.encode(source.read_version("b", 3))
    source.corrupt("b", 3, blob[:-2])
    destination = stores.new("sqlite")

    with pytest.raises(CorruptSnapshotError, match="'b'"):
        copy_store(source, destination)

    assert destination.list_contexts() == ["a"]


def test_a_copy_that_does_not_read_back_the_same_is_reported(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = stores.new("memory")
    fill(source, "a", 4)
    destination = stores.new("memory")
    real = destination._export_context

    def short_of_a_point(name: str) -> ContextExport:
        export = real(name)
        return ContextExport(
            name, export.head, export.snapshots, export.journal, export.recovery_points[1:]
        )

    monkeypatch.setattr(destination, "_export_context", short_of_a_point)

    with pytest.raises(CopyVerificationError, match=r"'a'.*recovery point"):
        copy_store(source, destination)


@pytest.mark.parametrize("kind", KINDS)
def test_copy_onto_the_same_store_is_refused(stores: Stores, kind: str) -> None:
    store = stores.new(kind)
    fill(store, "a", 1)
    for other in (store, stores.same(store)):
        with pytest.raises(InvalidArgumentError, match="same store"):
            copy_store(store, other, replace=True)
    assert [c.name for c in copy_store(store, stores.new(kind)).copied] == ["a"]


def test_a_context_deleted_in_the_source_during_the_copy_is_skipped(stores: Stores) -> None:
    source = stores.new("memory")
    for name in ("a", "b"):
        fill(source, name, 2)
    destination = stores.new("memory")

    report = copy_store(source, destination, progress=lambda done: source.delete("b"))

    assert [c.name for c in report.copied] == ["a"]
    assert report.vanished == ("b",)


# -- the command line ------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_copies_sqlite_to_redis_and_back_and_the_copies_verify(stores: Stores) -> None:
    first = stores.new("sqlite")
    for name in ("a", "b"):
        fill(first, name, 7, points=2)
    redis_store = stores.new("redis")
    last = stores.new("sqlite")

    there = run_cli("copy", stores.url(first), stores.url(redis_store))
    back = run_cli("copy", stores.url(redis_store), stores.url(last))

    assert there.returncode == 0, there.stderr
    assert back.returncode == 0, back.stderr
    lines = there.stdout.splitlines()
    assert lines[0] == (
        "copied a: version 7, 3 snapshot(s), 5 journal entries, 2 recovery point(s)"
    )
    assert lines[1].startswith("copied b: version 7")
    assert lines[2].startswith("2 context(s) copied, 20 record(s); each verified")
    assert_same_contexts(first, last, ["a", "b"])
    checked = run_cli("verify", stores.url(last))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith("ok: 2 context(s)")


def test_cli_refuses_existing_contexts_then_replaces_them_and_copies_subsets(
    stores: Stores,
) -> None:
    source = stores.new("sqlite")
    for name in ("a", "b", "c"):
        fill(source, name, 4)
    destination = stores.new("sqlite")
    fill(destination, "a", 1, points=0)
    src, dst = stores.url(source), stores.url(destination)

    refused = run_cli("copy", src, dst)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "'a' exist in the destination" in refused.stderr
    assert "--replace" in refused.stderr
    assert destination.list_contexts() == ["a"]

    subset = run_cli("copy", src, dst, "--context", "b", "--context", "c")
    assert subset.returncode == 0, subset.stderr
    assert [line.split(":")[0] for line in subset.stdout.splitlines()[:2]] == [
        "copied b",
        "copied c",
    ]
    assert destination.head_version("a") == 1

    replaced = run_cli("copy", src, dst, "--context", "a", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert_same_contexts(source, destination, ["a", "b", "c"])

    missing = run_cli("copy", src, dst, "--context", "nope")
    assert missing.returncode == 2
    assert "'nope' does not exist" in missing.stderr
    unopenable = run_cli("copy", src, "nosuch://x")
    assert unopenable.returncode == 2
    assert "cannot open nosuch://x" in unopenable.stderr
