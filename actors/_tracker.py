"""The tracker actor, which owns one context's State (callers hold a `ContextTracker` handle).

A tracker handles one message at a time, so its State needs no lock. This module is the
shell: it owns the State, the stash and the teardown, and hands every message to its current
phase (`actors/_phases.py`, whose docstring draws them), which returns the next one.

What a phase does not handle now (requests, and Stop while a write is in flight or a retry
waits) goes to a bounded stash (`TrackerConfig.stash_capacity`; a request arriving at a full
stash is refused with `ContextBusyError`, a Stop never is) and is handed on, in order, as
soon as the phase is `Running` again. So calls queued behind the one that hit a fault reach
the restarted tracker (Akka's restart semantics); only the failing call gets an error. The
manager, as supervisor, decides when to restart and when to give up, and the tracker never
waits on the manager.

How updates reach the store is the write path chosen at start (`actors/_writes.py`), what
each request does to a State is a pure function (`actors/_updates.py`).
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import Any

import attrs
import pykka

from actors._catch_up import Publisher, refresh
from actors._changes import ChangeCause, Topic
from actors._clock import Clock, Scheduled
from actors._config import TrackerConfig
from actors._dispatch import Dispatcher, PooledActor
from actors._future import Reply, reject, resolve
from actors._logs import context_fields
from actors._messages import (
    Deliver,
    Flush,
    Passivated,
    Recovered,
    Stop,
    TrackerFailed,
    UseWriter,
)
from actors._metrics import NO_METRICS, Instruments
from actors._phases import Failed, InjectedCrash, Loading, Phase, Running, Suspended
from actors._recovery import load_context
from actors._stash import Stash, refuse
from actors._stats import Describe, TrackerFigures
from actors._writer import Written
from actors._writes import WritePath, make_write_path
from storage import (
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    OutcomeUnknownError,
    State,
    Store,
    UpdateNotAppliedError,
)
from storage._delta import Delta

__all__ = ["InjectedCrash", "TrackerActor"]

logger = logging.getLogger("actors.tracker")


@attrs.define(eq=False)
class StopOrder:
    """Why and how the tracker is stopping (pykka's stop message is queued meanwhile)."""

    reply: Reply[None] | None
    """Resolved once stopped; None for a passivation."""
    passivating: bool
    """Passivating: what comes after the stop is handed back to the manager, not refused."""
    error: ContextError | None = None
    """A forced stop's failed final write, replied once stopped."""


class TrackerActor(PooledActor):
    """Owns the State of one context; talk to it through a `ContextTracker` handle. It runs
    on its manager's dispatcher (`actors/_dispatch.py`), sharing a few threads with every
    other tracker of the manager."""

    def __init__(
        self,
        name: str,
        store: Store,
        config: TrackerConfig,
        supervisor: pykka.ActorRef[Any],
        ready: Reply[None],
        *,
        writer: pykka.ActorRef[Any] | None = None,
        changes: Topic | None = None,
        clock: Clock,
        dispatcher: Dispatcher,
        seed: State | None = None,
        metrics: Instruments = NO_METRICS,
    ) -> None:
        super().__init__(dispatcher)
        self.metrics = metrics
        self._seed = seed  # created by the first load if the context is not stored
        self.name = name
        self.clock = clock
        self.store = store
        self.config = config
        self.supervisor = supervisor
        self.writes: WritePath = make_write_path(self, writer)
        self.phase: Phase = Loading(self)
        self.state: State | None = None  # None unless loaded: the store is the truth
        self.stash = Stash(name, config.stash_capacity)
        self.failure: BaseException | None = None  # what answers requests we will not handle
        self.stop_order: StopOrder | None = None
        self.last_request = clock.now()
        # Replies waiting for the next successful (re)start: activation and crash().
        self.restart_waiters: list[Reply[None]] = [ready]
        self._publisher = Publisher(changes)

    # -- what phases and the write path read -------------------------------------------------

    @property
    def current(self) -> State:
        assert self.state is not None
        return self.state

    @property
    def stopping(self) -> bool:
        return self.stop_order is not None

    @property
    def listened(self) -> bool:
        return self._publisher.listened

    @property
    def log_fields(self) -> dict[str, Any]:
        """`extra=` for our log records: the context and the version we hold."""
        return context_fields(self.name, self.state.version if self.state is not None else None)

    def publish(self, delta: Delta, cause: ChangeCause) -> None:
        """Tell subscribers about an update now stored (batched policy: now accepted)."""
        self._publisher.publish(delta, cause)

    def tell(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # stopped since: nothing to do
            self.actor_ref.tell(message)

    def tell_after(self, delay: float, message: Any) -> Scheduled:
        """Tell ourselves `message` after `delay` seconds of the manager's clock."""
        return self.clock.call_later(delay, partial(self.tell, message))

    # -- mailbox ----------------------------------------------------------------------------

    def on_start(self) -> None:
        self.phase = self.recover()
        self._unstash()

    def on_receive(self, message: Any) -> None:
        if self.writes.settle_if_done():
            # The writer answered the caller: the write is stored. Settled before anything.
            self.phase = self.phase.settled()
            self._unstash()
        if isinstance(message, UseWriter):
            self.writes.writer = message.writer  # a write in flight is still answered
            return
        if isinstance(message, Describe):
            resolve(message.reply, self.describe())
            return
        if isinstance(message, Flush):
            self.writes.timer_fired()
        self._deliver(message)
        self._unstash()

    def _deliver(self, message: Any) -> None:
        phase = self.phase.receive(message)
        if phase is None:
            self._stash(message)
        else:
            self.phase = phase

    def _stash(self, message: Any) -> None:
        if self.stash.add(message):
            self.writes.wake_when_written()  # hear when the write in flight is over

    def _unstash(self) -> None:
        while self.stash and self.phase.runs_requests:
            self._deliver(self.stash.pop())
        if self.stash:
            self.writes.wake_when_written()  # the rest waits for this write now

    def describe(self) -> TrackerFigures:
        """What `manager.stats()` reports about this tracker (values, not our internals)."""
        behind = len(self._mailbox) + len(self.stash) + getattr(self.writes, "queued", 0)
        return TrackerFigures(
            phase=type(self.phase).__name__,
            version=self.state.version if self.state is not None else None,
            stored_version=self.writes.stored_version,
            unsaved=self.writes.unsaved,
            waiting=behind,
        )

    # -- loading, failing -------------------------------------------------------------------

    def recover(self) -> Phase:
        """Load the newest intact State: Running, or Suspended (the supervisor is told)."""
        self.phase = Loading(self)
        try:
            state = self.load()
        except ContextNotFoundError as exc:  # not stored: the supervisor stops us
            return self.suspend(exc)
        except Exception as exc:  # noqa: BLE001 - every failure goes to the supervisor
            logger.warning(
                "tracker %r could not load its context: %r", self.name, exc, extra=self.log_fields
            )
            return self.suspend(exc)
        logger.debug(
            "tracker %r running at version %d", self.name, state.version, extra=self.log_fields
        )
        for waiter in self.restart_waiters:
            resolve(waiter, None)
        self.restart_waiters.clear()
        return Running(self)

    def load(self) -> State:
        """Make the store's newest intact State ours (see `load_context`); the first load
        creates the context as `seed` if it is not stored and a seed was given."""
        seed, self._seed = self._seed, None
        try:
            state, report = load_context(self.store, self.name)
        except ContextNotFoundError:
            if seed is None:
                raise
            try:
                self.store.create(seed)
            except ContextExistsError:  # another process created it first: theirs it is
                state, report = load_context(self.store, self.name)
            else:
                state, report = seed.snapshot(), None
        if report is not None:
            self.supervisor.tell(Recovered(report))
        self._publisher.announce(state, report, running=self.state is not None)
        self.state = state
        self.writes.loaded(state.version)
        return state

    reload = load

    def suspend(self, error: BaseException) -> Phase:
        self.state = None  # whatever it held may be half-changed: the store is the truth
        self.writes.suspended()
        self.supervisor.tell(TrackerFailed(self.name, self.actor_ref, error))
        return Suspended(self)

    def fail(self, reply: Reply[Any], doing: str, error: BaseException) -> Phase:
        """An unexpected error while `doing`: the caller gets `OutcomeUnknownError` (caused
        by it): the error may have come after the store took the write, so the update may or
        may not be stored. The tracker suspends until its supervisor restarts it from the
        store, which then holds whichever it is."""
        logger.error(
            "tracker %r failed %s", self.name, doing, exc_info=error, extra=self.log_fields
        )
        failure = OutcomeUnknownError(
            f"tracker of context {self.name!r} failed {doing}: {error!r}; the update may "
            "or may not be stored; it restarts from the store"
        )
        failure.__cause__ = error
        reject(reply, failure)
        return self.suspend(error)

    def give_up(self, error: BaseException) -> Phase:
        """The supervisor gave up: refuse everything held; a Stop held still stops us."""
        self.failure = error
        stops = self.stash.take_stops()
        self._fail_all(error)
        failed = self.phase = Failed(self)
        for stop in stops:
            failed.stop(stop)
        return failed

    # -- catching up with other processes ---------------------------------------------------

    def refresh_quietly(self) -> Phase | None:
        """`refresh()`; if that fails, suspend (returned) and the supervisor restarts us."""
        try:
            refresh(self)
        except Exception as exc:  # noqa: BLE001 - the supervisor restarts us from the store
            return self.suspend(exc)
        return None

    # -- stopping ---------------------------------------------------------------------------

    def handle_stop(self, message: Stop, *, flush: bool) -> None:
        """Write what is unsaved (if `flush`: we hold a State), then stop. If the write
        fails, a Stop that is not forced fails and we keep running, so nothing acknowledged
        is lost."""
        error = self.stop_order.error if self.stop_order is not None else None
        if flush and self.writes.unsaved:
            try:
                self.writes.flush()
            except ContextError as exc:
                if not message.force:
                    reject(message.reply, exc)
                    return
                logger.error(  # noqa: TRY400 - the traceback adds nothing to exc's text
                    "tracker %r stopped with %d unsaved updates: %s",
                    self.name,
                    self.writes.unsaved,
                    exc,
                    extra=self.log_fields,
                )
                error = exc  # replied once stopped, so a shutdown never outlives its trackers
        self.failure = message.error
        # A stop asked for outranks a passivation we decided on and have not finished: the
        # stop is answered once we are stopped, and what comes after it is refused with its
        # error rather than handed back to be served by a new tracker.
        self.stop_order = StopOrder(message.reply, passivating=False, error=error)
        # pykka's stop message goes to the back of the inbox: requests already queued are
        # still handled; on_stop() answers anything that arrives after it.
        self.stop()

    def passivate_if_idle(self, idle_since: float) -> None:
        """Stop to free our thread if idle since `idle_since`, with nothing held or unsaved."""
        if self.stash or self.stopping or self.last_request >= idle_since:
            return
        if self.writes.unsaved:
            try:
                self.writes.flush()
            except ContextError:
                return  # stay, and keep the unsaved updates; the next tick tries again
        self.stop_order = StopOrder(None, passivating=True)
        self.stop()  # requests already queued are handled first

    def on_stop(self) -> None:
        self.writes.close()
        order = self.stop_order
        if order is not None and order.passivating:
            # What came in after our stop goes back to the manager, which starts a new
            # tracker for it (see on_late_message); then we say we are gone.
            self._after_stop()
            self.supervisor.tell(Passivated(self.name, self.actor_ref))
            return
        self._fail_all(self._refusal())
        self._after_stop()  # every queued caller is answered before the stop is
        if order is not None and order.reply is not None:
            if order.error is not None:
                reject(order.reply, order.error)
            resolve(order.reply, None)

    def on_failure(self, *_: object) -> None:  # pragma: no cover - only on a bug of ours
        self.writes.close()
        self.failure = self.failure or UpdateNotAppliedError(
            f"tracker of context {self.name!r} died before handling the call"
        )
        self._fail_all(self.failure)

    def on_late_message(self, message: Any) -> None:
        """Stopped: answer whoever waits on `message`; passivated, hand it back instead."""
        order = self.stop_order
        if isinstance(message, Written):
            self.writes.abandon(message)
        elif order is not None and order.passivating:
            if isinstance(message, Stop):
                resolve(message.reply, None)  # stopped already
            elif getattr(message, "reply", None) is not None:
                self.supervisor.tell(Deliver(self.name, message))
        elif getattr(message, "reply", None) is not None:
            refuse(message, self._refusal())

    def _refusal(self) -> BaseException:
        return self.failure or UpdateNotAppliedError(
            f"tracker of context {self.name!r} stopped before handling the call"
        )

    def _fail_all(self, error: BaseException) -> None:
        """Answer everything held back: the phase's, the stash and restart waiters."""
        for message in self.phase.held():
            refuse(message, error)
        self.stash.refuse_all(error)
        for waiter in self.restart_waiters:
            reject(waiter, error)
        self.restart_waiters.clear()
