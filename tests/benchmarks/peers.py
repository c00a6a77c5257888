"""Ours against what users would pick instead, every system fsyncing each acknowledged write:
`uv run --group bench python -m tests.benchmarks --peers` (`--quick` for a short run).

Systems: ours (`create_manager("sqlite:///...")`, default durable policy), a hand-rolled
baseline (a dict of dicts, one lock, sqlite3 in WAL with `synchronous=FULL`, one JSON row per
context, one commit per update), diskcache, sqlitedict, ZODB (FileStorage), LMDB and Redis
(`appendfsync always`). The four libraries come from the `bench` dependency group; a system
that cannot be imported (or a `redis-server` that cannot be started) is left out and says so.

Workloads (each run 3 times on every system, the systems in a rotated order each round, each
system's best round kept, so that the ratios compare measurements seconds apart):

1. durable update, 1 caller: read-modify-write of one key of a small record;
2. 16 threads, each on its own context/record;
3. 16 threads on one hot context/record (increments: the final count must be exact);
4. cold open + read: write N contexts x 100 keys, close, then time a fresh open and a read
   of every key.

Every workload checks its result: each record's counter must equal the number of updates
acknowledged to it, and the cold read must return every value written. A mismatch prints a
FAILURE line and makes the command exit 1.

Every system's durability is read back from the object it uses (PRAGMA synchronous on the
connection doing the writes, LMDB's environment flags, Redis's CONFIG) and printed in the
notes. `python -m tests.benchmarks.peers --strace` also counts the fsync/fdatasync calls of
each system under strace (about 15 s; not part of the timed run).

The table gives ours/peer ratios: above 1 means ours is faster.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from actors import create_manager
from tests.benchmarks.__main__ import threaded_calls

THREADS = 16
KEYS_PER_CONTEXT = 100
ROOT = Path(__file__).resolve().parents[2]


class Record(dict[str, Any]):
    """A record as the dict-based systems hand it to an update: `get` and `set`, like State."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


Update = Callable[[Any], None]


def bump(record: Any) -> None:
    """The update of every write workload: read the counter, write it plus one."""
    record.set("n", record.get("n", 0) + 1)


def small_record() -> dict[str, Any]:
    return {"n": 0, "name": "ada", "email": "ada@example.org", "plan": "free", "visits": 3}


# -- the systems: one small adapter each, same interface ----------------------------------------


class Peer:
    """open(directory), update(key, fn), read_all(keys), close(); `verify()` reads the
    durability settings back from what the system writes with and returns them as a note
    (raising if they are not what every system here must use: an fsync per write)."""

    name = ""

    def open(self, directory: Path) -> None:
        raise NotImplementedError

    def seed(self, records: dict[str, dict[str, Any]]) -> None:
        for key, record in records.items():
            self.update(key, lambda r, record=record: r.update(record))

    def update(self, key: str, fn: Update) -> None:
        raise NotImplementedError

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def verify(self) -> str:
        raise NotImplementedError


class Ours(Peer):
    name = "ours"

    def open(self, directory: Path) -> None:
        self.manager = create_manager(f"sqlite:///{directory / 'ours.db'}")
        self.trackers: dict[str, Any] = {}
        self.lock = threading.Lock()

    def _tracker(self, key: str) -> Any:
        with self.lock:
            tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.manager.get_tracker(key).get(timeout=60)
            with self.lock:
                self.trackers.setdefault(key, tracker)
        return tracker

    def seed(self, records: dict[str, dict[str, Any]]) -> None:
        for key, record in records.items():
            self.manager.create_context(key, record).get(timeout=60)

    def update(self, key: str, fn: Update) -> None:
        self._tracker(key).modify(fn).get(timeout=60)

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        # One bulk read, as Redis's MGET above: no tracker started per context. Each State
        # is the caller's own copy, so its data is handed over as it is.
        states = self.manager.get_states(keys).get(timeout=60)
        return {key: state.data for key, state in states.items()}

    def close(self) -> None:
        self.manager.shutdown().get(timeout=120)

    def verify(self) -> str:
        pragmas = self.manager.store.pragmas()  # type: ignore[attr-defined]
        policy = self.manager.config.sync
        assert pragmas["synchronous"] == 2, pragmas
        assert pragmas["journal_mode"] == "wal", pragmas
        assert policy.max_updates == 1, policy
        return "store.pragmas(): WAL, synchronous=2 (FULL); SyncPolicy max_updates=1 (durable)"


class HandRolled(Peer):
    """The baseline: a dict of dicts, one lock, sqlite3 WAL + FULL, one JSON row a context."""

    name = "baseline"

    def open(self, directory: Path) -> None:
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(
            directory / "hand.db", isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS ctx (name TEXT PRIMARY KEY, body TEXT)")
        rows = self.conn.execute("SELECT name, body FROM ctx")
        self.data: dict[str, dict[str, Any]] = {name: json.loads(body) for name, body in rows}

    def update(self, key: str, fn: Update) -> None:
        with self.lock:
            record = Record(self.data.get(key, {}))
            fn(record)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(
                    "INSERT OR REPLACE INTO ctx (name, body) VALUES (?, ?)",
                    (key, json.dumps(record)),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.data[key] = dict(record)

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {key: dict(self.data[key]) for key in keys}

    def close(self) -> None:
        self.conn.close()

    def verify(self) -> str:
        with self.lock:
            sync = self.conn.execute("PRAGMA synchronous").fetchone()[0]
            mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert (sync, mode) == (2, "wal"), (sync, mode)
        return "PRAGMA on its connection: WAL, synchronous=2 (FULL)"


class DiskCache(Peer):
    name = "diskcache"

    def open(self, directory: Path) -> None:
        import diskcache  # noqa: PLC0415 - bench group

        # diskcache's default is sqlite_synchronous=1 (NORMAL); 2 is FULL. Every thread's
        # connection applies the Settings table's sqlite_* values when it is made.
        self.cache = diskcache.Cache(str(directory / "cache"), sqlite_synchronous=2)

    def update(self, key: str, fn: Update) -> None:
        with self.cache.transact():  # BEGIN IMMEDIATE on this thread's connection
            record = Record(self.cache.get(key, {}))
            fn(record)
            self.cache.set(key, dict(record))

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {key: self.cache[key] for key in keys}

    def close(self) -> None:
        self.cache.close()

    def verify(self) -> str:
        sync = self.cache._sql("PRAGMA synchronous").fetchone()[0]
        mode = self.cache._sql("PRAGMA journal_mode").fetchone()[0]
        assert (sync, mode, self.cache.sqlite_synchronous) == (2, "wal", 2), (sync, mode)
        return "PRAGMA on this thread's connection: WAL, synchronous=2 (FULL)"


class SqliteDictPeer(Peer):
    name = "sqlitedict"

    def open(self, directory: Path) -> None:
        from sqlitedict import SqliteDict  # noqa: PLC0415 - bench group

        # SqliteDict runs every statement on one connection in its own thread, which it opens
        # with `PRAGMA synchronous=OFF` (and journal_mode=DELETE unless told): FULL is set
        # after that through the same queue, on the same connection, and read back in verify.
        self.db = SqliteDict(str(directory / "sd.sqlite"), autocommit=False, journal_mode="WAL")
        self.db.conn.execute("PRAGMA synchronous=FULL")
        self.lock = threading.Lock()  # read-modify-write is not atomic in sqlitedict

    def update(self, key: str, fn: Update) -> None:
        with self.lock:
            record = Record(self.db.get(key, {}))
            fn(record)
            self.db[key] = dict(record)
            self.db.commit()

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {key: self.db[key] for key in keys}

    def close(self) -> None:
        self.db.close()

    def verify(self) -> str:
        sync = self.db.conn.select_one("PRAGMA synchronous")[0]
        mode = self.db.conn.select_one("PRAGMA journal_mode")[0]
        assert (sync, mode) == (2, "wal"), (sync, mode)
        return "PRAGMA on its one connection (its default is synchronous=OFF): WAL, 2 (FULL)"


class Zodb(Peer):
    name = "ZODB"

    def open(self, directory: Path) -> None:
        import transaction  # noqa: PLC0415 - bench group
        from BTrees.OOBTree import OOBTree  # noqa: PLC0415
        from ZODB import DB  # noqa: PLC0415
        from ZODB.FileStorage import FileStorage  # noqa: PLC0415
        from ZODB.POSException import ConflictError  # noqa: PLC0415

        self.transaction = transaction
        self.conflict = ConflictError
        # One connection per thread: a pool large enough for them all, so it does not warn.
        self.db = DB(FileStorage(str(directory / "data.fs")), pool_size=THREADS * 2)
        self.local = threading.local()
        with self.db.transaction() as conn:
            if "records" not in conn.root():
                conn.root()["records"] = OOBTree()

    def _conn(self) -> tuple[Any, Any]:
        if not hasattr(self.local, "conn"):
            self.local.tm = self.transaction.TransactionManager()
            self.local.conn = self.db.open(self.local.tm)
        return self.local.tm, self.local.conn

    def update(self, key: str, fn: Update) -> None:
        from persistent.mapping import PersistentMapping  # noqa: PLC0415

        tm, conn = self._conn()
        while True:
            tm.begin()
            try:
                records = conn.root()["records"]
                stored = records.get(key)
                if stored is None:
                    stored = records[key] = PersistentMapping()
                record = Record(stored)
                fn(record)
                stored.update(record)
                tm.commit()
            except self.conflict:
                tm.abort()  # another thread's commit won: run again on its result
            else:
                return

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        tm, conn = self._conn()
        tm.begin()
        records = conn.root()["records"]
        result = {key: dict(records[key]) for key in keys}
        tm.abort()
        return result

    def close(self) -> None:
        self.db.close()

    def verify(self) -> str:
        return "FileStorage fsyncs each commit: calls to its module's fsync counted"


class Lmdb(Peer):
    name = "LMDB"

    def open(self, directory: Path) -> None:
        import lmdb  # noqa: PLC0415 - bench group

        self.env = lmdb.open(str(directory / "lmdb"), sync=True, metasync=True, map_size=1 << 30)

    def update(self, key: str, fn: Update) -> None:
        with self.env.begin(write=True) as txn:  # one writer at a time (LMDB's own lock)
            raw = txn.get(key.encode())
            record = Record(json.loads(raw) if raw is not None else {})
            fn(record)
            txn.put(key.encode(), json.dumps(record).encode())

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        with self.env.begin() as txn:
            return {key: json.loads(txn.get(key.encode())) for key in keys}

    def close(self) -> None:
        self.env.close()

    def verify(self) -> str:
        flags = self.env.flags()
        assert flags["sync"], flags
        assert flags["metasync"], flags
        assert not flags["map_async"], flags
        return "env.flags(): sync=True, metasync=True, map_async=False"


class RedisPeer(Peer):
    """Plain redis-py: one JSON string per record, WATCH/MULTI for the read-modify-write.
    One server for the whole run (a fresh open is a new client: the server keeps its data in
    memory); each open uses its own key prefix."""

    name = "Redis"

    def __init__(self, server: Any) -> None:
        self.server = server

    def open(self, directory: Path) -> None:
        import redis  # noqa: PLC0415

        self.redis = redis
        self.prefix = directory.name + ":"
        self.client = redis.Redis(
            host="127.0.0.1", port=self.server.port, socket_timeout=30, max_connections=64
        )

    def update(self, key: str, fn: Update) -> None:
        name = self.prefix + key
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    raw = pipe.get(name)
                    record = Record(json.loads(raw) if raw is not None else {})
                    fn(record)
                    pipe.multi()
                    pipe.set(name, json.dumps(record))
                    pipe.execute()
                except self.redis.WatchError:
                    continue  # another client changed it: run again on the new value
                else:
                    return

    def read_all(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        values = self.client.mget([self.prefix + key for key in keys])
        return {key: json.loads(raw) for key, raw in zip(keys, values, strict=True)}

    def close(self) -> None:
        self.client.close()

    def verify(self) -> str:
        config = self.client.config_get("append*") | self.client.config_get("save")
        assert config["appendonly"] == "yes", config
        assert config["appendfsync"] == "always", config
        assert config["save"] == "", config
        return "CONFIG GET: appendonly=yes, appendfsync=always, save=''"


def start_redis(directory: Path) -> Any:
    """A `redis-server` on a free loopback port (AOF, appendfsync always), or None."""
    try:
        import pytest  # noqa: PLC0415

        from tests.redis_server import RedisServer  # noqa: PLC0415
    except ImportError:
        return None
    try:
        server = RedisServer(directory / "redis")
        server.start()
    except (Exception, pytest.fail.Exception) as exc:
        print(f"Redis left out: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None
    return server


def available_peers(names: list[str] | None, directory: Path) -> tuple[list[Peer], list[str], Any]:
    """The systems to run (those importable, and Redis if a server starts), the names left
    out with why, and the Redis server to stop at the end (or None)."""
    wanted = names or ["ours", "baseline", "diskcache", "sqlitedict", "ZODB", "LMDB", "Redis"]
    modules = {"diskcache": "diskcache", "sqlitedict": "sqlitedict", "ZODB": "ZODB", "LMDB": "lmdb"}
    classes: dict[str, type[Peer]] = {
        "ours": Ours,
        "baseline": HandRolled,
        "diskcache": DiskCache,
        "sqlitedict": SqliteDictPeer,
        "ZODB": Zodb,
        "LMDB": Lmdb,
    }
    peers: list[Peer] = []
    missing: list[str] = []
    server = None
    for name in wanted:
        if name == "Redis":
            server = start_redis(directory)
            if server is None:
                missing.append("Redis (no redis-server could be started)")
            else:
                peers.append(RedisPeer(server))
            continue
        if name in modules:
            try:
                __import__(modules[name])
            except ImportError:
                missing.append(f"{name} (not installed: `uv run --group bench ...`)")
                continue
        peers.append(classes[name]())
    return peers, missing, server


# -- running the workloads --------------------------------------------------------------------


def _fresh(peer: Peer, workdir: Path, label: str) -> Path:
    directory = workdir / f"{peer.name}-{label}"
    directory.mkdir()
    peer.open(directory)
    return directory


def _check_counts(peer: Peer, expected: dict[str, int], failures: list[str], workload: str) -> None:
    got = peer.read_all(list(expected))
    for key, count in expected.items():
        if got[key]["n"] != count:
            failures.append(
                f"FAILURE: {peer.name}, {workload}: {key} holds n={got[key]['n']}, "
                f"{count} updates were acknowledged"
            )


def workload_one(peer: Peer, workdir: Path, seconds: float, failures: list[str], tag: str) -> float:
    _fresh(peer, workdir, tag)
    try:
        peer.seed({"rec": small_record()})
        rate, done = threaded_calls([lambda: peer.update("rec", bump)], seconds)
        _check_counts(peer, {"rec": done[0]}, failures, "1 caller")
    finally:
        peer.close()
    return rate


def workload_own(peer: Peer, workdir: Path, seconds: float, failures: list[str], tag: str) -> float:
    _fresh(peer, workdir, tag)
    keys = [f"rec-{i}" for i in range(THREADS)]
    try:
        peer.seed({key: small_record() for key in keys})
        ops = [lambda key=key: peer.update(key, bump) for key in keys]
        rate, done = threaded_calls(ops, seconds)
        _check_counts(peer, dict(zip(keys, done, strict=True)), failures, "own contexts")
    finally:
        peer.close()
    return rate


def workload_hot(peer: Peer, workdir: Path, seconds: float, failures: list[str], tag: str) -> float:
    _fresh(peer, workdir, tag)
    try:
        peer.seed({"hot": small_record()})
        rate, done = threaded_calls([lambda: peer.update("hot", bump)] * THREADS, seconds)
        _check_counts(peer, {"hot": sum(done)}, failures, "hot context")
    finally:
        peer.close()
    return rate


def cold_records(contexts: int) -> dict[str, dict[str, Any]]:
    return {
        f"ctx-{i:05d}": {f"key{j:03d}": f"{i}-{j}" for j in range(KEYS_PER_CONTEXT)}
        for i in range(contexts)
    }


def cold_seed(peer: Peer, workdir: Path, records: dict[str, dict[str, Any]]) -> Path:
    """Write every record (untimed) and close: what the cold open then reads."""
    directory = _fresh(peer, workdir, "cold")
    try:
        peer.seed(records)
    finally:
        peer.close()
    return directory


def cold_read(
    peer: Peer, directory: Path, records: dict[str, dict[str, Any]], failures: list[str]
) -> float:
    """Contexts per second of a fresh open and a read of every key of every record."""
    start = time.perf_counter()
    peer.open(directory)
    try:
        got = peer.read_all(list(records))
        elapsed = time.perf_counter() - start
    finally:
        peer.close()
    wrong = sum(got.get(key) != record for key, record in records.items())
    if wrong:
        failures.append(
            f"FAILURE: {peer.name}, cold open: {wrong} of {len(records)} records differ"
        )
    return len(records) / elapsed


def verify_all(peers: list[Peer], workdir: Path) -> dict[str, str]:
    """Each system's durability settings, read back after a few updates from two threads."""
    notes = {}
    for peer in peers:
        _fresh(peer, workdir, "verify")
        try:
            peer.seed({"v": small_record()})
            threaded_calls([lambda peer=peer: peer.update("v", bump)] * 2, 0.05)
            notes[peer.name] = peer.verify()
        finally:
            peer.close()
    return notes


def zodb_fsyncs_per_update(workdir: Path, updates: int = 20) -> float:
    """ZODB's FileStorage calls the module's `fsync` on commit: count the calls."""
    # `import ZODB.FileStorage.FileStorage as m` gives the class (the package re-exports it).
    module: Any = importlib.import_module("ZODB.FileStorage.FileStorage")
    real = module.fsync
    calls = [0]

    def counting(fd: int) -> None:
        calls[0] += 1
        real(fd)

    peer = Zodb()
    _fresh(peer, workdir, "zodb-fsync")
    try:
        peer.update("rec", bump)
        module.fsync = counting
        for _ in range(updates):
            peer.update("rec", bump)
    finally:
        module.fsync = real
        peer.close()
    return calls[0] / updates


def run_peers(
    quick: bool = False,
    systems: list[str] | None = None,
    seconds: float | None = None,
    contexts: int | None = None,
    rounds: int | None = None,
    json_path: Path | None = None,
) -> int:
    """Run every workload on every available system and print the table; 1 on a failure.

    Each workload runs `rounds` times on every system, the systems in a rotated order each
    round, and keeps each system's best round: on a shared machine a burst of someone else's
    disk or CPU load slows whichever system runs during it, and the best of a few interleaved
    rounds is far less moved by that than one long measurement per system."""
    seconds = seconds if seconds is not None else (0.2 if quick else 1.0)
    contexts = contexts if contexts is not None else (50 if quick else 1_000)
    rounds = rounds if rounds is not None else (1 if quick else 3)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        peers, missing, server = available_peers(systems, workdir)
        try:
            notes = verify_all(peers, workdir)
            if any(peer.name == "ZODB" for peer in peers):
                per = zodb_fsyncs_per_update(workdir)
                notes["ZODB"] += f": {per:.1f} fsync per update"
            writes: list[tuple[str, Callable[..., float]]] = [
                ("durable update, 1 caller", workload_one),
                (f"{THREADS} threads, own contexts", workload_own),
                (f"{THREADS} threads, one hot context", workload_hot),
            ]
            rates: dict[str, dict[str, float]] = {}
            for number, (label, workload) in enumerate(writes):
                rates[label] = best_of(
                    peers,
                    rounds,
                    lambda peer, r, w=workload, n=number: w(
                        peer, workdir, seconds, failures, f"w{n}-{r}"
                    ),
                )
            records = cold_records(contexts)
            seeded = {peer.name: cold_seed(peer, workdir, records) for peer in peers}
            pykka.ActorRegistry.stop_all()
            label = f"cold open + read, {contexts:,} x {KEYS_PER_CONTEXT} keys (contexts/s)"
            rates[label] = best_of(
                peers,
                rounds,
                lambda peer, _r: cold_read(peer, seeded[peer.name], records, failures),
            )
        finally:
            if server is not None:
                server.stop()
    print_peer_table(rates, [peer.name for peer in peers], notes, missing, failures, rounds)
    if json_path is not None:
        json_path.write_text(json.dumps({"rates": rates, "notes": notes, "failures": failures}))
    return 1 if failures else 0


def best_of(
    peers: list[Peer], rounds: int, measure: Callable[[Peer, int], float]
) -> dict[str, float]:
    """Each peer's best of `rounds` measurements, the order rotated every round."""
    best: dict[str, float] = {}
    for r in range(rounds):
        shift = r % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            best[peer.name] = max(best.get(peer.name, 0.0), measure(peer, r))
            pykka.ActorRegistry.stop_all()
    return {peer.name: best[peer.name] for peer in peers}


def print_peer_table(
    rates: dict[str, dict[str, float]],
    names: list[str],
    notes: dict[str, str],
    missing: list[str],
    failures: list[str],
    rounds: int,
) -> None:
    peers = [name for name in names if name != "ours"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("ours vs each peer: ratio = ours ops/s / peer ops/s (> 1: ours is faster); one run")
    print(f"each rate: the best of {rounds} rounds, the systems in a rotated order each round")
    header = f"{'workload':<52} {'ours/s':>8}" + "".join(f" {'vs ' + p:>14}" for p in peers)
    print(header)
    for label, row in rates.items():
        ours = row.get("ours", float("nan"))
        cells = "".join(f" {ours / row[p]:>14.2f}" for p in peers)
        print(f"{label:<52} {ours:>8,.0f}{cells}")
    print("peer ops/s:")
    for label, row in rates.items():
        print(f"  {label}: " + ", ".join(f"{p} {row[p]:,.0f}" for p in peers))
    print("durability, read back from what each system writes with:")
    for name in names:
        print(f"  {name}: {notes.get(name, '-')}")
    for name in missing:
        print(f"  left out: {name}")
    if failures:
        for line in failures:
            print(line)
    else:
        print("counts: exact on every system and workload")


# -- fsyncs counted under strace (optional, not timed) -------------------------------------------


def probe(system: str, updates: int) -> None:
    """`updates` updates of one small record on `system`, for strace to count the syncs."""
    with tempfile.TemporaryDirectory() as tmp:
        peers, missing, server = available_peers([system], Path(tmp))
        if not peers:
            raise SystemExit(f"unavailable: {missing}")
        peer = peers[0]
        _fresh(peer, Path(tmp), "probe")
        try:
            peer.seed({"rec": small_record()})
            print(f"START {time.perf_counter()}", flush=True)
            for _ in range(updates):
                peer.update("rec", bump)
        finally:
            peer.close()
            if server is not None:
                server.stop()


def strace_counts(updates: int = 200) -> int:
    """Count fsync-family calls of each system under `strace -f` (its whole run, seeding and
    opening included, so read the count per update as an upper bound near 1 or more)."""
    if shutil.which("strace") is None:
        print("strace not found: skipped")
        return 0
    for system in ["ours", "baseline", "diskcache", "sqlitedict", "ZODB", "LMDB", "Redis"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "strace.txt"
            for count in (0, updates):
                result = subprocess.run(
                    ["strace", "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync,msync",
                     sys.executable, "-m", "tests.benchmarks.peers", "--probe", system, str(count)],
                    cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    print(f"{system}: probe failed: {result.stderr.strip()[-300:]}")
                    break
                calls = sum(
                    int(match.group(1))
                    for match in re.finditer(
                        r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(?:fsync|fdatasync|msync)$",
                        out.read_text(),
                        re.MULTILINE,
                    )
                )
                if count == 0:
                    base = calls
                else:
                    per = (calls - base) / updates
                    print(f"{system}: {per:.2f} fsync/fdatasync/msync per update under strace -f")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strace", action="store_true", help="count syncs per update instead")
    parser.add_argument("--probe", nargs=2, metavar=("SYSTEM", "UPDATES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe[0], int(args.probe[1]))
        return 0
    if args.strace:
        return strace_counts()
    return run_peers(quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
