"""Child process of the many-processes tests: THREADS threads x INCREMENTS `modify`
increments of one counter, through a manager of its own on a shared store.

Run as `python -m tests.reliability.process_worker URL THREADS INCREMENTS [leases]`; prints
"done <acknowledged increments>" and exits 0 when every increment was acknowledged. With
"leases", the manager takes one owner per context (`TrackerConfig.leases`).
"""

from __future__ import annotations

import contextlib
import sys
import threading

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


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), leases="leases" in sys.argv[4:])
