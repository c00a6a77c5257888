"""Bytes a cart of appended items costs on disk: ours (a tracker's `modify` appending to one
list, on a SqliteStore) against a hand-written SQLite table (one row per item).

    uv run python -m tests.benchmarks.journal_size [--items 12000] [--item-bytes 100] [--rate]

Prints, for each: the bytes the process passed to write syscalls per append (`wchar` of
/proc/self/io: what SQLite wrote, WAL and checkpoints included, not the file size), and the
database's size on disk at the end (file, WAL and shared memory, after the store is closed).
Run it with another checkout's library first on `PYTHONPATH` to measure that one: the script
uses only the public API. A benchmark, not a test: nothing here asserts a figure.

SQLite runs with `synchronous=OFF` in both: what is written does not depend on fsync, and the
run takes seconds instead of minutes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

from actors import State, TrackerConfig, create_manager
from storage import SqliteStore


def _written() -> int:
    """Bytes this process has passed to write syscalls so far."""
    with open("/proc/self/io", encoding="ascii") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")  # pragma: no cover


def _on_disk(path: Path) -> int:
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(f"{path}{suffix}")
    )


def _items(count: int, size: int) -> list[str]:
    return [secrets.token_hex(size // 2) for _ in range(count)]


def ours(directory: Path, items: list[str], **config: int) -> tuple[int, int, float]:
    """(bytes written, bytes on disk, seconds) of appending `items` one `modify` each."""
    path = directory / f"ours-{len(config)}.db"
    store = SqliteStore(path, synchronous="OFF")
    manager = create_manager(store, config=TrackerConfig(**config))
    try:
        manager.create_context("cart", {"items": []}).get()
        tracker = manager.get_tracker("cart").get()
        before, started = _written(), time.perf_counter()
        for item in items:

            def add(state: State, item: str = item) -> None:
                state.data["items"].append(item)

            tracker.modify(add).get()
        elapsed = time.perf_counter() - started
        written = _written() - before
    finally:
        manager.shutdown().get()
    store.close()
    return written, _on_disk(path), elapsed


def append_rate(directory: Path, length: int, appends: int, size: int) -> float:
    """Appends per second, one durable `modify` each, to a list that starts `length` long."""
    path = directory / f"rate-{length}.db"
    store = SqliteStore(path, synchronous="OFF")
    manager = create_manager(store, config=TrackerConfig(snapshot_every=10**9))
    try:
        manager.create_context("cart", {"items": _items(length, size)}).get()
        tracker = manager.get_tracker("cart").get()
        items = _items(appends, size)
        started = time.perf_counter()
        for item in items:

            def add(state: State, item: str = item) -> None:
                state.data["items"].append(item)

            tracker.modify(add).get()
        return appends / (time.perf_counter() - started)
    finally:
        manager.shutdown().get()
        store.close()


def hand_written(directory: Path, items: list[str]) -> tuple[int, int, float]:
    """The same appends as rows of a table, one transaction each, in WAL mode like ours."""
    path = directory / "table.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE cart (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
    before, started = _written(), time.perf_counter()
    for item in items:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO cart (item) VALUES (?)", (item,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    written = _written() - before
    conn.close()
    return written, _on_disk(path), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12_000)
    parser.add_argument("--item-bytes", type=int, default=100)
    parser.add_argument(
        "--only", choices=["table", "default", "by-bytes"], action="append", default=None
    )
    parser.add_argument(
        "--rate",
        action="store_true",
        help="also: appends/s to a list of --items items against one of 10 items",
    )
    args = parser.parse_args()
    items = _items(args.items, args.item_bytes)
    runs = {
        "table": ("hand-written table", lambda d: hand_written(d, items)),
        "default": ("ours, default snapshots", lambda d: ours(d, items)),
        "by-bytes": (
            "ours, snapshots by journal bytes only",
            lambda d: ours(d, items, snapshot_every=10**9),
        ),
    }
    chosen = args.only or list(runs)
    print(f"{args.items} appends of a {args.item_bytes}-byte item to one list")
    print(f"{'':40} {'written/append':>15} {'on disk':>12} {'appends/s':>10}")
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in chosen:
            label, run = runs[name]
            written, disk, elapsed = run(Path(directory))
            results[name] = (written, disk)
            print(
                f"{label:40} {written / args.items:>13,.0f} B {disk:>10,} B "
                f"{args.items / elapsed:>10,.0f}"
            )
        if args.rate:
            long = append_rate(Path(directory), args.items, 500, args.item_bytes)
            short = append_rate(Path(directory), 10, 500, args.item_bytes)
            print(
                f"update rate: {long:,.0f} appends/s to a list of {args.items:,} items, "
                f"{short:,.0f} to a list of 10: ratio {long / short:.2f}"
            )
    if "table" in results:
        table_written, table_disk = results["table"]
        for name, (written, disk) in results.items():
            if name != "table":
                print(
                    f"{runs[name][0]}: {written / table_written:.2f}x the table's bytes "
                    f"written, {disk / table_disk:.2f}x its size on disk"
                )


if __name__ == "__main__":
    main()
