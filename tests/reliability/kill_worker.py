"""Child process of the SIGKILL test: durable updates on several contexts, each acknowledged
update reported on stdout as "<context> <version> <value>" once its future has resolved.

Run as `python -m tests.reliability.kill_worker DB CONTEXTS`; it never stops by itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from actors import ContextExistsError, create_manager


def main(db: str, contexts: int) -> None:
    manager = create_manager(f"sqlite:///{db}")
    names = [f"ctx-{i}" for i in range(contexts)]
    for name in names:
        with contextlib.suppress(ContextExistsError):
            manager.create_context(name, {"n": 0}).get()
    trackers = [manager.get_tracker(name).get() for name in names]
    os.write(1, b"ready\n")

    def work(tracker) -> None:  # type: ignore[no-untyped-def]
        value = tracker.get("n").get()
        while True:
            value += 1
            version = tracker.set("n", value).get()
            # One os.write per line: atomic on a pipe, so threads never interleave lines.
            os.write(1, f"{tracker.name} {version} {value}\n".encode())

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
