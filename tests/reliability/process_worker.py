"""Child process of the many-processes tests: THREADS threads x INCREMENTS `modify`
increments of one counter, through a manager of its own on a shared store.

Run as `python -m tests.reliability.process_worker URL THREADS INCREMENTS [leases]`; prints
"done <acknowledged increments>" and exits 0 when every increment was acknowledged. With
"leases", the manager takes one owner per context (`TrackerConfig.leases`).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from pathlib import Path

from actors import ContextExistsError, LeasePolicy, State, create_manager


def bump(state: State) -> None:
    state.set("n", state.get("n", 0) + 1)


def main(url: str, threads: int, increments: int, *, leases: bool = False) -> None:
    manager = create_manager(url, leases=LeasePolicy(wait=60) if leases else None)
    try:
        with contextlib.suppress(ContextExistsError):  # the other process made it first
            manager.create_context("shared", {"n": 0}).get()
        tracker = manager.get_tracker("shared").get()
        acknowledged = [0] * threads
        errors: list[BaseException] = []

        def work(index: int) -> None:
            try:
                for _ in range(increments):
                    tracker.modify(bump).get(timeout=60)
                    acknowledged[index] += 1
            except BaseException as exc:
                errors.append(exc)
                raise

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            sys.exit(f"failed after {sum(acknowledged)} increments: {errors[0]!r}")
        print(f"done {sum(acknowledged)}", flush=True)
    finally:
        manager.shutdown().get()


def run_workers(url: str, processes: int, threads: int, increments: int, *flags: str) -> list[str]:
    """In the parent: run `processes` of these children at once on `url` (with `flags`, e.g.
    "leases"), assert each exited 0 (an error reaching any caller fails it), and return what
    each printed."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.reliability.process_worker", url]
    children = [
        subprocess.Popen(
            [*command, str(threads), str(increments), *flags],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=150)
        assert child.returncode == 0, err[-3000:]
        outputs.append(out.strip())
    return outputs


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), leases="leases" in sys.argv[4:])
