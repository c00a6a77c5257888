"""Where an update's time goes: `uv run python -m tests.benchmarks.stages [--quick]`.

Wraps the actors' handlers with timers (this is a profiling script, not a test: it patches
classes for the run) and prints, per update:

- durable `set`, 1 caller: wall time at each stage of one call, and the floor beside it (a
  bare thread round trip, the hand-rolled baseline's update);
- durable `set`, 16 callers: CPU time of each kind of thread, and of the whole process;
- in-memory `modify`, 8 callers: CPU time of each tracker stage, against a `get`.

docs/performance.md quotes one run. Timers cost a little themselves; compare rows within a run.
"""

from __future__ import annotations

import argparse
import queue
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actors import State, create_manager
from actors import _updates as updates
from actors import _writer as writer_module
from actors._handle import ContextTracker
from actors._phases import Running
from actors._pipeline import DurableWrites
from actors._tracker import TrackerActor
from actors._writer import WriterActor
from storage import SqliteStore
from storage._store import Store
from tests.benchmarks.__main__ import threaded_rate
from tests.benchmarks.peers import HandRolled


@contextmanager
def patched(cls: Any, name: str, around: Callable[..., Any]) -> Iterator[None]:
    """Replace `cls.name` (a class's method, or a module's function, whose first argument
    then stands for `self`) with `around(original, self, *args)` for the block."""
    original = getattr(cls, name)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return around(original, self, *args, **kwargs)

    setattr(cls, name, method)
    try:
        yield
    finally:
        setattr(cls, name, original)


def one_caller_stages(updates: int, workdir: Path) -> dict[str, float]:
    """Microseconds per durable `set` at each stage, one caller (the writer idle, so the
    tracker's thread commits the write itself), and in the same run the floor parts: a bare
    thread round trip and the hand-rolled baseline's whole update."""
    marks: dict[str, float] = {}

    def stamp(key: str) -> Callable[..., Any]:
        def around(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
            marks[key + "0"] = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                marks[key + "1"] = time.perf_counter()

        return around

    totals: dict[str, float] = {}
    with (
        patched(TrackerActor, "on_receive", stamp("tracker")),
        patched(WriterActor, "on_receive", stamp("writer")),
        patched(Store, "commit", stamp("commit")),
        patched(SqliteStore, "_commit", stamp("sqlite")),
        patched(writer_module, "resolve", stamp("answer")),
        create_manager(f"sqlite:///{workdir / 'stages1.db'}") as manager,
    ):
        manager.create_context("one", {"key0": 0}).get()
        tracker = manager.get_tracker("one").get()
        for _ in range(100):
            tracker.set("key0", 1).get()
        for _ in range(updates):
            start = time.perf_counter()
            future = tracker.set("key0", 1)
            sent = time.perf_counter()
            future.get()
            done = time.perf_counter()
            sqlite = marks["sqlite1"] - marks["sqlite0"]
            stages = {
                "caller: check, copy, send": sent - start,
                "hop to the tracker (a pool thread wakes)": marks["tracker0"] - sent,
                "tracker: apply, delta, journal entry": marks["writer0"] - marks["tracker0"],
                "writer (in the tracker's thread): batch": marks["commit0"] - marks["writer0"],
                "store: commit() around SQLite": marks["commit1"] - marks["commit0"] - sqlite,
                "SQLite transaction (fsync included)": sqlite,
                "writer: answer the caller": marks["answer1"] - marks["commit1"],
                "hop back to the caller (it wakes)": done - marks["answer1"],
                "total": done - start,
                "(after the answer, beside the caller: settle)": marks["tracker1"]
                - marks["answer1"],
            }
            for stage, seconds in stages.items():
                totals[stage] = totals.get(stage, 0.0) + seconds
    result = {stage: seconds / updates * 1e6 for stage, seconds in totals.items()}
    result["floor: a bare thread round trip (SimpleQueue, Future)"] = round_trip(updates)
    result["floor: the hand-rolled baseline's update"] = baseline_update(updates, workdir)
    return result


def round_trip(count: int) -> float:
    """Microseconds of a request to another thread and its answer, with nothing done."""
    requests: queue.SimpleQueue[Future[None] | None] = queue.SimpleQueue()

    def serve() -> None:
        while (request := requests.get()) is not None:
            request.set_result(None)

    server = threading.Thread(target=serve)
    server.start()
    try:
        start = time.perf_counter()
        for _ in range(count):
            request: Future[None] = Future()
            requests.put(request)
            request.result(10)
        return (time.perf_counter() - start) / count * 1e6
    finally:
        requests.put(None)
        server.join(10)


def baseline_update(count: int, workdir: Path) -> float:
    """Microseconds of the hand-rolled baseline's durable update (tests/benchmarks/peers.py)."""
    baseline = HandRolled()
    directory = workdir / "baseline"
    directory.mkdir(exist_ok=True)
    baseline.open(directory)
    try:
        baseline.seed({"one": {"key0": 0}})
        start = time.perf_counter()
        for _ in range(count):
            baseline.update("one", lambda record: record.set("key0", 1))
        return (time.perf_counter() - start) / count * 1e6
    finally:
        baseline.close()


def thread_cpu(workers: dict[str, tuple[Any, str]], run: Callable[[], int]) -> dict[str, float]:
    """Microseconds of thread CPU per update spent in each wrapped handler, and in all."""
    spent = dict.fromkeys(workers, 0)

    def meter(key: str) -> Callable[..., Any]:
        def around(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.thread_time_ns()
            try:
                return original(self, *args, **kwargs)
            finally:
                spent[key] += time.thread_time_ns() - start

        return around

    patches = [patched(cls, name, meter(key)) for key, (cls, name) in workers.items()]
    for patch in patches:
        patch.__enter__()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        updates = run()
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for patch in reversed(patches):
            patch.__exit__(None, None, None)
    result = {key: ns / 1000 / updates for key, ns in spent.items()}
    result["process, user"] = (after.ru_utime - before.ru_utime) / updates * 1e6
    result["process, system"] = (after.ru_stime - before.ru_stime) / updates * 1e6
    return result


def sixteen_callers(seconds: float, workdir: Path) -> dict[str, float]:
    """CPU per durable update with 16 callers on 16 contexts (group commit)."""

    def run() -> int:
        with create_manager(f"sqlite:///{workdir / 'stages16.db'}") as manager:
            trackers = []
            for i in range(16):
                manager.create_context(f"c{i}", {"key0": 0}).get()
                trackers.append(manager.get_tracker(f"c{i}").get())
            rate = threaded_rate([lambda t=t: t.set("key0", 1).get() for t in trackers], seconds)
        return max(1, round(rate * seconds))

    return thread_cpu(
        {
            "caller threads: ContextTracker.set": (ContextTracker, "set"),
            "tracker threads: on_receive": (TrackerActor, "on_receive"),
            "writer thread: on_receive": (WriterActor, "on_receive"),
            "  of which SQLite (SqliteStore._commit)": (SqliteStore, "_commit"),
        },
        run,
    )


def modify_stages(seconds: float, operation: str) -> dict[str, float]:
    """Tracker-thread CPU per in-memory `modify` (or `get`), 8 callers on 8 contexts."""

    def bump(state: State) -> None:
        state.set("n", state.get("n") + 1)

    def run() -> int:
        with create_manager() as manager:
            trackers = []
            for i in range(8):
                manager.create_context(f"m{i}", {"n": 0}).get()
                trackers.append(manager.get_tracker(f"m{i}").get())

            def call(tracker: ContextTracker) -> object:
                if operation == "modify":
                    return tracker.modify(bump).get()
                return tracker.get("n").get()

            rate = threaded_rate([lambda t=t: call(t) for t in trackers], seconds)
        return max(1, round(rate * seconds))

    stages = {"tracker: on_receive": (TrackerActor, "on_receive")}
    if operation == "modify":
        stages |= {
            "  Running.request (all of it)": (Running, "request"),
            "  updates.modify (copy, function, replace)": (updates, "modify"),
            "  updates.replace (successor, diff, check, copy)": (updates, "replace"),
            "  DurableWrites.store (journal entry, commit)": (DurableWrites, "store"),
        }
    return thread_cpu(stages, run)


def print_section(title: str, rows: dict[str, float]) -> None:
    print(title)
    for name, micros in rows.items():
        print(f"  {name:<56} {micros:8.1f} us")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.stages", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fraction of a second each")
    args = parser.parse_args(argv)
    seconds, updates = (0.3, 200) if args.quick else (3.0, 3000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print_section(
            "durable set, 1 caller: wall time per stage",
            one_caller_stages(updates, workdir),
        )
        print_section(
            "durable set, 16 callers x 16 contexts: CPU per update",
            sixteen_callers(seconds, workdir),
        )
    print_section("in-memory modify, 8 callers: CPU per update", modify_stages(seconds, "modify"))
    print_section("in-memory get, 8 callers: CPU per call", modify_stages(seconds, "get"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
