"""Child process of the lease tests: THREADS threads `modify` one counter, leases on, until
a line "stop" arrives on stdin.

Run as `python -m tests.reliability.lease_worker URL THREADS TTL`. Prints "ready" once its
first increment is stored (it holds the lease then), and at the end "done <acknowledged>
<refused>": `refused` counts the writes the store refused because the lease had ended
(the tracker's log says so each time). Exits 0 when every call it made was acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

from actors import ContextExistsError, LeasePolicy, State, create_manager


def bump(state: State) -> None:
    state.set("n", state.get("n", 0) + 1)


class _Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a write of the lease" in record.getMessage():
            self.count += 1


def main(url: str, threads: int, ttl: float) -> None:
    refusals = _Refusals()
    logger = logging.getLogger("actors.tracker")
    logger.setLevel(logging.INFO)
    logger.addHandler(refusals)
    manager = create_manager(url, leases=LeasePolicy(ttl=ttl, hold=0.05, wait=60))
    try:
        with contextlib.suppress(ContextExistsError):
            manager.create_context("shared", {"n": 0}).get()
        tracker = manager.get_tracker("shared").get()
        tracker.modify(bump).get(timeout=60)
        acknowledged = [1] + [0] * (threads - 1)
        print("ready", flush=True)
        stop = threading.Event()
        errors: list[BaseException] = []

        def work(index: int) -> None:
            try:
                while not stop.is_set():
                    tracker.modify(bump).get(timeout=60)
                    acknowledged[index] += 1
            except BaseException as exc:
                errors.append(exc)
                raise

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        sys.stdin.readline()  # "stop"
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
        if errors:
            sys.exit(f"failed after {sum(acknowledged)} increments: {errors[0]!r}")
        print(f"done {sum(acknowledged)} {refusals.count}", flush=True)
    finally:
        manager.shutdown().get()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
