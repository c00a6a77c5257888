"""Child process of the exit tests: a manager on a SQLite file that the program never shuts
down (unless the mode says so), and a main thread that returns, raises or is signalled.

Run as `python -m tests.reliability.exit_worker MODE DB`. Every acknowledged update is
reported on stdout as "ack <context> <version> <value>" once its future has resolved, each
line with one os.write (atomic on a pipe, so threads never interleave lines); other lines
say how far the child got ("ready", "done", ...). Log records go to stderr.

Modes:
    return, raise               20 durable updates, then the main thread returns / raises
    batched-return, batched-raise
                                the same under a batched policy that never writes by itself:
                                "stored <version>" says what the store held before exiting
    threads                     3 threads update 3 contexts forever (durable); the main
                                thread joins them ("ready" once each has an ack)
    threads-exit-on-sigterm     the same, with the SIGTERM handler docs/architecture.md
                                suggests (`sys.exit(143)`)
    batched-threads, batched-threads-exit-on-sigterm
                                the same under a batched policy that never writes by itself
    main-writes                 the main thread writes too, forever (durable), so a signal
                                finds it waiting on a write
    blocking-callback           a subscriber's callback blocks forever; shutdown() is called
    stuck                       a batched update, then a modify() function that never returns
                                holds the tracker: the exit hook cannot finish in time
    uvicorn                     an ASGI app whose lifespan starts a manager (batched) and
                                never shuts it down, served by uvicorn until a signal
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from actors import ContextError, SyncPolicy, TrackerConfig, create_manager

UPDATES = 20
NEVER = SyncPolicy.batched(max_updates=1_000_000, max_delay=3600.0)
"""A batched policy that writes only on save(), deactivation or shutdown."""


def say(line: str) -> None:
    os.write(1, f"{line}\n".encode())


def open_manager(db: str, config: TrackerConfig | None = None):  # type: ignore[no-untyped-def]
    return create_manager(f"sqlite:///{db}", config=config)


def tracker_of(manager, name: str):  # type: ignore[no-untyped-def]
    manager.create_context(name, {"n": 0}).get()
    return manager.get_tracker(name).get()


def updates(db: str, config: TrackerConfig | None, *, fail: bool) -> None:
    manager = open_manager(db, config)
    trackers = [tracker_of(manager, name) for name in ("a", "b")]
    for value in range(1, UPDATES + 1):
        for tracker in trackers:
            version = tracker.set("n", value).get()
            say(f"ack {tracker.name} {version} {value}")
    for tracker in trackers:
        say(f"stored {manager.load(tracker.name).get().version}")
    say("done")
    if fail:
        raise RuntimeError("the main thread fails")
    # returns without shutdown()


def write_forever(tracker, started: threading.Event) -> None:  # type: ignore[no-untyped-def]
    value = 0
    try:
        while True:
            value += 1
            version = tracker.set("n", value).get()
            say(f"ack {tracker.name} {version} {value}")
            started.set()
    except ContextError:
        return  # shut down at exit under us: nothing more to acknowledge


def threads(db: str, config: TrackerConfig | None, *, exit_on_sigterm: bool) -> None:
    if exit_on_sigterm:
        # The recipe of docs/architecture.md: SIGTERM ends the program like an exception,
        # so the exit hook runs (under the default action the process dies at once).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    manager = open_manager(db, config)
    trackers = [tracker_of(manager, name) for name in ("a", "b", "c")]
    workers = []
    for tracker in trackers:
        started = threading.Event()
        worker = threading.Thread(target=write_forever, args=(tracker, started), daemon=True)
        worker.start()
        workers.append((worker, started))
    for _, started in workers:
        if not started.wait(30):
            sys.exit("a writer acknowledged nothing in 30 s")
    say("ready")
    for worker, _ in workers:
        # A timed join, as docs/architecture.md ("Signals") advises: CPython runs signal
        # handlers in the main thread only, and a signal the kernel hands to another thread
        # of the program (here, a writer thread) is only acted on once the main thread runs
        # Python code again; an untimed join never wakes for it (seen about once in 15
        # signals on a loaded machine, with the main thread still in join() 10 s later).
        while worker.is_alive():
            worker.join(0.2)


def main_writes(db: str) -> None:
    manager = open_manager(db)
    trackers = [tracker_of(manager, name) for name in ("a", "b", "c")]
    for tracker in trackers[1:]:
        threading.Thread(
            target=write_forever, args=(tracker, threading.Event()), daemon=True
        ).start()
    main, value = trackers[0], 0
    while True:
        value += 1
        version = main.set("n", value).get()  # where the signal finds the main thread
        say(f"ack {main.name} {version} {value}")
        if value == 10:
            say("ready")


def blocking_callback(db: str) -> None:
    manager = open_manager(db, TrackerConfig(exit_timeout=1.0))
    tracker = tracker_of(manager, "a")
    entered, never = threading.Event(), threading.Event()

    def callback(_change: object) -> None:
        entered.set()
        never.wait()  # never set: blocks forever

    tracker.subscribe(callback).get()
    version = tracker.set("n", 1).get()
    say(f"ack a {version} 1")
    if not entered.wait(30):
        sys.exit("the callback was not called in 30 s")
    say("in callback")
    manager.shutdown().get()
    say("shut down")


def stuck(db: str) -> None:
    manager = open_manager(db, TrackerConfig(sync=NEVER, exit_timeout=1.0))
    tracker = tracker_of(manager, "a")
    version = tracker.set("n", 1).get()
    say(f"ack a {version} 1")
    entered, never = threading.Event(), threading.Event()

    def hold(_state: object) -> None:
        entered.set()
        never.wait()  # never set: the tracker never handles another message

    tracker.modify(hold)  # not waited on
    if not entered.wait(30):
        sys.exit("the modify function was not called in 30 s")
    say("stuck")


def serve(db: str) -> None:
    import uvicorn  # noqa: PLC0415 - only this mode needs it

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        # A raw ASGI app, so that nothing but uvicorn runs it.
        assert scope["type"] == "lifespan", scope["type"]
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                manager = open_manager(db, TrackerConfig(sync=NEVER))
                tracker = tracker_of(manager, "a")
                version = tracker.set("n", 1).get()
                await send({"type": "lifespan.startup.complete"})
                say(f"ack a {version} 1")
                say("ready")
            elif message["type"] == "lifespan.shutdown":
                # The lifespan forgets manager.shutdown(): the exit hook must do it.
                await send({"type": "lifespan.shutdown.complete"})
                return

    uvicorn.run(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    say("served")


def main(mode: str, db: str) -> None:
    # Ctrl-C raises KeyboardInterrupt, as in a terminal, even if whoever started us ignores
    # SIGINT (a shell's background job does, and the child would inherit that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s"
    )
    batched = TrackerConfig(sync=NEVER)
    if mode in ("return", "raise"):
        updates(db, None, fail=mode == "raise")
    elif mode in ("batched-return", "batched-raise"):
        updates(db, batched, fail=mode == "batched-raise")
    elif mode.removeprefix("batched-").startswith("threads"):
        config = batched if mode.startswith("batched-") else None
        threads(db, config, exit_on_sigterm=mode.endswith("-exit-on-sigterm"))
    elif mode == "main-writes":
        main_writes(db)
    elif mode == "blocking-callback":
        blocking_callback(db)
    elif mode == "stuck":
        stuck(db)
    elif mode == "uvicorn":
        serve(db)
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
