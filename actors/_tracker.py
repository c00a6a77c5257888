"""The tracker actor, which owns one context's State (callers hold a `ContextTracker` handle).

A tracker handles one message at a time, so its State needs no lock. This module is the
shell: it owns the State and the stash, and hands every message to its current phase
(`actors/_phases.py`, whose docstring draws them), which returns the next one. How it stops
and what it answers once stopped is in `actors/_stopping.py`.

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

import logging
from functools import partial
from typing import Any

import pykka

from actors import _stopping as stopping
from actors._catch_up import Publisher, refresh
from actors._changes import ChangeCause, Topic
from actors._clock import Clock, Scheduled
from actors._config import TrackerConfig
from actors._dispatch import Dispatcher, PooledActor
from actors._future import Reply, reject, resolve
from actors._lease import HandOver, LeaseEnded, Leases
from actors._logs import context_fields
from actors._messages import (
    Flush,
    Recovered,
    Stop,
    TrackerFailed,
    UseWriter,
)
from actors._metrics import NO_METRICS, Instruments
from actors._phases import REQUESTS, Failed, InjectedCrash, Loading, Phase, Running, Suspended
from actors._pipeline_phase import Persisting
from actors._recovery import load_context
from actors._stash import Stash
from actors._stats import Describe, TrackerFigures
from actors._tell import tell_quietly
from actors._writes import WritePath, make_write_path
from storage import (
    ContextExistsError,
    ContextNotFoundError,
    OutcomeUnknownError,
    State,
    Store,
)
from storage._delta import Delta

__all__ = ["InjectedCrash", "TrackerActor"]

logger = logging.getLogger("actors.tracker")


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
        leases: Leases | None = None,
    ) -> None:
        super().__init__(dispatcher)
        # The lease of our context, if it takes one (`TrackerConfig.leases`).
        self.lease = leases.hold_for(name, store, clock) if leases is not None else None
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
        self.stop_order: stopping.StopOrder | None = None
        self.last_request = clock.now()
        # Replies waiting for the next successful (re)start: activation and crash(). A tuple,
        # so that a running tracker keeps none (a cleared list would be one more object for
        # the garbage collector to walk per running context).
        self.restart_waiters: tuple[Reply[None], ...] = (ready,)
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
    def lease_epoch(self) -> int | None:
        """The epoch our writes are fenced with: None if our context takes no lease; 0 if it
        does and none is held, which the store refuses (epochs start at 1), so that a write
        of a leased context is never unfenced, whatever the phase."""
        if self.lease is None:
            return None
        return self.lease.epoch or 0

    @property
    def lease_blocks_writes(self) -> bool:
        """Whether new writes must wait until nothing is in flight, for the lease: it ended
        (they take it again then) or is to be handed over."""
        lease = self.lease
        return lease is not None and (not lease.held or lease.hand_over_due())

    def keep_lease(self) -> bool:
        """Whether we may write under our lease now; one that is to be handed over is given
        up here (nothing is in flight when a phase asks), and the asker goes first."""
        assert self.lease is not None
        if self.lease.hand_over_due() and not self.writes.busy:
            self.lease.give(resting=True)
        return self.lease.held

    @property
    def alone(self) -> bool:
        """Whether nothing waits behind the message in hand (mailbox, stash)."""
        return not self._mailbox and not self.stash

    @property
    def log_fields(self) -> dict[str, Any]:
        """`extra=` for our log records: the context and the version we hold."""
        return context_fields(self.name, self.state.version if self.state is not None else None)

    def publish(self, delta: Delta, cause: ChangeCause) -> None:
        """Tell subscribers about an update now stored (batched policy: now accepted)."""
        self._publisher.publish(delta, cause)

    def tell(self, message: Any) -> None:
        tell_quietly(self.actor_ref, message)  # stopped since: nothing to do

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
        if type(message) in REQUESTS:  # the usual message: none of the checks below is it
            self._deliver(message)
            self._unstash()
            return
        if isinstance(message, UseWriter):
            self.writes.writer = message.writer  # a write in flight is still answered
            return
        if isinstance(message, Describe):
            resolve(message.reply, self.describe())
            return
        if isinstance(message, HandOver | LeaseEnded):
            self._lease_news(message)
            return
        if isinstance(message, Flush):
            self.writes.timer_fired()
        self._deliver(message)
        self._unstash()

    def _lease_news(self, message: HandOver | LeaseEnded) -> None:
        lease = self.lease
        if lease is None or lease.epoch != message.epoch:
            return  # about a lease we no longer hold
        if isinstance(message, LeaseEnded):
            lease.lost(message.epoch)  # a write in flight is refused by the store: rerun
            return
        lease.asked = True
        if isinstance(self.phase, Running) and not self.stash:
            self.keep_lease()  # idle: hand over now if we held it long enough

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
        if not self.stash:  # the usual case, after every message
            return
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
            lease_epoch=self.lease_epoch or None,
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
        self.restart_waiters = ()
        if self.writes.busy:  # creating it: every request waits for (or joins) the create
            return Persisting(self)
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
            state = seed.snapshot()
            # The create is the first write of our chain, through the group writer: stored
            # in one transaction with other contexts' writes (and the requests that come
            # meanwhile), not beside the writer in a transaction of its own. (Under a lease
            # every write waits for the lease, taken by a request: we create it ourselves.)
            if self.lease is None and self.writes.create(state):
                self._publisher.announce(state, None, running=False)
                self.state = state
                return state
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
        stopping.fail_all(self, error)
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

    # -- stopping (actors/_stopping.py) ----------------------------------------------------

    def handle_stop(self, message: Stop, *, flush: bool) -> None:
        stopping.handle_stop(self, message, flush=flush)

    def passivate_if_idle(self, idle_since: float) -> None:
        stopping.passivate_if_idle(self, idle_since)

    def on_stop(self) -> None:
        stopping.stopped(self)

    def on_failure(self, *_: object) -> None:  # pragma: no cover - only on a bug of ours
        stopping.died(self)

    def on_late_message(self, message: Any) -> None:
        stopping.answer_late(self, message)
