"""Two OS processes share one context through a store: Redis if a URL is given, else SQLite.

    uv run python examples/two_processes.py                          # a temporary SQLite file
    uv run python examples/two_processes.py redis://127.0.0.1:6379/0  # a running redis-server

Each process runs its own manager and increments a shared counter 200 times with `modify`,
recording its name under a key of its own. The store's compare-and-set decides every race:
a process whose write loses reloads the fresh state and runs its function again, so no
increment is lost. Both processes then print what they see, which is the same.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from actors import ContextExistsError, State, create_manager

INCREMENTS = 200


def work(url: str, name: str, start: Any) -> None:
    """One process's part: increment the shared counter, then print the state it sees."""
    with create_manager(url) as manager:
        with contextlib.suppress(ContextExistsError):  # the other process created it first
            manager.create_context("shared", {"counter": 0}).get()
        tracker = manager.get_tracker("shared").get()
        start.wait(timeout=60)  # both processes increment at the same time

        def bump(state: State) -> None:
            state.set("counter", state.get("counter") + 1)
            state.set(f"last-{name}", state.get("counter"))

        for _ in range(INCREMENTS):
            tracker.modify(bump).get()
        state = manager.load("shared").get()  # what the store holds now
        print(f"{name}: counter={state.get('counter')} version={state.version}", flush=True)


def main(url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    processes = [spawn.Process(target=work, args=(url, f"process-{i}", start)) for i in (1, 2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        if process.exitcode != 0:
            sys.exit(f"{process.name} failed with exit code {process.exitcode}")
    with create_manager(url) as manager:
        state = manager.load("shared").get()
    print(
        f"final: counter={state.get('counter')} (expected {2 * INCREMENTS}), "
        f"version={state.version}, data={dict(state.items())}"
    )
    assert state.get("counter") == 2 * INCREMENTS


if __name__ == "__main__":
    if len(sys.argv) > 1:
        separator = "&" if "?" in sys.argv[1] else "?"
        main(f"{sys.argv[1]}{separator}prefix=example-{uuid.uuid4().hex[:8]}")
    else:
        with tempfile.TemporaryDirectory() as directory:
            main(f"sqlite:///{Path(directory) / 'shared.db'}")
