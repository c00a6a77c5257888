"""Process exit: every manager still running is shut down, within a bounded time.

Every actor thread of ours is a daemon thread, so the interpreter never waits on one: when
the main thread ends (it returned, raised, or took a Ctrl-C), the process exits whether or
not `shutdown()` was called. What a manager holds is not left to chance, though. An `atexit`
hook, registered once when this module is imported, runs after the interpreter has joined
the program's own non-daemon threads and while our daemon threads still run (they are frozen
only after the hook), and:

1. starts `shutdown()` on every manager not shut down yet, all at once: each tracker writes
   what it has unsaved (batched policy), then stops;
2. waits for each manager until `TrackerConfig.exit_timeout` seconds have passed since the
   hook began; a manager that is not done by then is asked (for at most `NAME_TIMEOUT` more
   seconds) which contexts have not finished stopping, and that is logged;
3. waits, within the same deadlines, for subscription callbacks still delivering the changes
   the shutdown handed them; a callback still running then is logged and abandoned.

So the hook takes at most the longest `exit_timeout` of the managers (plus `NAME_TIMEOUT` if
one is late). A second Ctrl-C while it waits interrupts it and the process exits at once.

A manager is registered here by `create_manager()` and forgotten when its actor stops (by
`shutdown()` or otherwise). The registry holds the manager, not a weak reference: a manager
whose `ContextManager` the program dropped without `shutdown()` still runs its actors and may
hold unsaved updates, and is shut down at exit like any other.

Python 3.12 starts no thread once the main thread has ended ("can't create new thread at
interpreter shutdown"); `start_timer()` is how our actors start their timers, so that such a
refusal degrades (no timer, or the timer's message at once) instead of failing an actor.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from storage import ContextTimeoutError

if TYPE_CHECKING:
    from actors._manager import ContextManager
    from actors._subscription import Subscription

__all__ = [
    "NAME_TIMEOUT",
    "forget_manager",
    "register_manager",
    "shut_down_at_exit",
    "start_timer",
    "start_without_signals",
    "track_subscription",
]

logger = logging.getLogger("actors.exit")

NAME_TIMEOUT = 0.5
"""Seconds the exit hook waits for a late manager to name the contexts still stopping."""

# Written from any thread (create_manager, a manager's on_stop, the hub, a subscription's
# end) by single dict operations, and read by the hook as one copy: each of these is one
# call into C under the GIL, the same single-step publication `Cell` relies on, so the
# registries need no lock.
_managers: dict[str, ContextManager] = {}
"""The managers not shut down yet, by the URN of their manager actor."""
_subscriptions: dict[int, tuple[Subscription[Any], float]] = {}
"""The callback subscriptions not ended yet, with their manager's `exit_timeout`."""


def register_manager(manager: ContextManager) -> None:
    """Shut `manager` down at exit unless it is shut down before."""
    _managers[manager._ref.actor_urn] = manager


def forget_manager(urn: str) -> None:
    """The manager actor `urn` has stopped: nothing is left to shut down at exit."""
    _managers.pop(urn, None)


def track_subscription(subscription: Subscription[Any], exit_timeout: float) -> None:
    """Let the callback of `subscription` finish at exit, for up to `exit_timeout` seconds."""
    key = id(subscription)
    _subscriptions[key] = subscription, exit_timeout
    # Runs at once if it has ended already; else in the thread that ends it.
    subscription._ended.add_done_callback(lambda _: _subscriptions.pop(key, None))


_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
"""The signals a program is sent to stop or to act: none of our threads takes them."""


def start_without_signals(thread: threading.Thread) -> None:
    """Start `thread` with the process's signals blocked in it, so that the kernel never
    delivers them to it. Python runs signal handlers in the main thread only: a signal that
    the kernel hands to another thread sets a flag the main thread does not see while it
    waits (in `Thread.join()`, say), and a Ctrl-C or SIGTERM then does nothing. A thread
    inherits the mask of the thread that starts it, so the mask is set around `start()`
    (a signal arriving meanwhile waits, pending, until it is restored)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        thread.start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def start_timer(timer: threading.Thread) -> bool:
    """Start `timer` (a helper thread holding no state of its own) as a daemon thread with
    signals blocked (`start_without_signals`); False if the interpreter refuses to start a
    thread (Python 3.12, once the main thread ended)."""
    timer.daemon = True  # a pending timer must not keep the process alive either
    try:
        start_without_signals(timer)
    except RuntimeError:
        return False
    return True


def shut_down_at_exit() -> None:
    """The exit hook (see the module docstring): shut down every manager still running and
    let subscription callbacks finish, each within its `exit_timeout`; log what is left."""
    began = time.monotonic()
    shutdowns = []
    for manager in list(_managers.values()):
        try:
            shutdowns.append((manager, manager.shutdown()))
        except Exception:
            logger.exception("%r could not be shut down at exit", manager)
    for manager, future in shutdowns:
        limit = manager.config.exit_timeout
        try:
            future.get(timeout=max(0.0, began + limit - time.monotonic()))
        except ContextTimeoutError:
            _report_late(manager, limit)
        except Exception as exc:  # noqa: BLE001 - an exit hook reports, it never raises
            # A final write failed (the tracker has logged which context kept how many
            # unsaved updates), or closing the store did: this says which manager.
            logger.error("%r shut down at exit with an error: %r", manager, exc)  # noqa: TRY400 - details are logged where they happened
    for subscription, limit in list(_subscriptions.values()):
        try:
            subscription._ended.result(max(0.0, began + limit - time.monotonic()))
        except TimeoutError:
            logger.warning(
                "%r: its callback was still running %s s after exit began; the changes it "
                "had not delivered are dropped",
                subscription,
                limit,
            )


def _report_late(manager: ContextManager, limit: float) -> None:
    """Log that `manager` did not shut down within `limit` seconds, and what that loses."""
    stopping = manager._still_stopping(NAME_TIMEOUT)
    if manager.config.sync.is_durable:
        loss = "every acknowledged update is stored (durable policy)"
    else:
        loss = "the updates they had not written yet are lost (batched policy)"
    if stopping is None:
        what = f"its manager actor did not answer, so which contexts is unknown; {loss}"
    elif stopping:
        what = f"the trackers of {', '.join(map(repr, stopping))} had not stopped; {loss}"
    else:  # a tracker writes what it holds before it stops: nothing is lost
        what = "every tracker had stopped after writing what it held"
    logger.error("%r did not shut down within %s s at exit: %s", manager, limit, what)


def _forget_all_in_child() -> None:
    # A forked child has none of its parent's threads: its managers cannot run there.
    _managers.clear()
    _subscriptions.clear()


atexit.register(shut_down_at_exit)
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_all_in_child)
