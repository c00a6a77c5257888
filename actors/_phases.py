"""The phases of a tracker's life, one class each (after Akka typed persistence's
ReplayingSnapshot / Running / PersistingEvents).

The tracker (`actors/_tracker.py`) hands each message to its current phase, whose
`receive()` returns the next phase (or itself), or None: "not now", and the tracker stashes
the message, to hand it on once a phase that runs requests (`Running`, `Persisting`) is back.

    start ──▶ Loading ──loaded──▶ Running ──a durable write goes to the writer──▶ Persisting ──┐
               ▲   │               │ │ ▲ ◀── all stored, or a batch failed (undone) ──┘   ▲      │
               │   │ load failed   │ │ │                                                   └──────┘
               │   ▼               │ │ └────── Retry (a timer): the request runs again ──┐ requests
               │  Suspended ◀──────┘ │                                                   │ run on
               │   │    unexpected   └── a request lost its 3rd write race in a row ──▶ BackingOff
               └───┘    error
              Restart
    any phase ──GiveUp──▶ Failed

In `Persisting` requests run on: their writes accumulate into the next batch, which goes to
the writer whole once the one in flight is stored (`actors/_pipeline.py`). It can also lose
a write race (to `BackingOff`, via `Running`) or fail on a bug's error (to `Suspended`).

A stop (Stop, or passivation) is no phase: it is the tracker's `stop_order`, under which the
phase goes on handling what reaches it before pykka's own stop message.

A new request type: its message in `actors/_messages.py`, its function in
`actors/_updates.py`, one entry in `REQUESTS` below (or a branch of `Running._run` if it
does store I/O besides, as `Save` does: `Persisting` then holds it until nothing is in
flight), and its method on `ContextTracker` (`actors/_handle.py`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from actors import _updates as updates
from actors._changes import ChangeCause
from actors._future import Reply, reject, resolve
from actors._messages import (
    Crash,
    DeleteValue,
    Flush,
    GetState,
    GetValue,
    GiveUp,
    Keys,
    MakeRecoveryPoint,
    Modify,
    Passivate,
    Restart,
    Restore,
    Save,
    SetMetadata,
    SetValue,
    Stop,
    TrackerRequest,
    UpdateState,
    Wake,
)
from actors._stash import refuse
from actors._watcher import StoredVersion
from actors._writer import Written
from actors._writes import LATER, StaleWrite
from storage import (
    ContextError,
    ContextFailedError,
    LeaseLost,
    OutcomeUnknownError,
    State,
    VersionConflict,
    WriteOutcomeUnknownError,
)

if TYPE_CHECKING:
    from actors._tracker import TrackerActor

__all__ = [
    "MAX_CONFLICT_RETRIES",
    "REQUESTS",
    "BackingOff",
    "Failed",
    "InjectedCrash",
    "Loading",
    "Phase",
    "Retry",
    "Running",
    "Suspended",
]

logger = logging.getLogger("actors.tracker")

MAX_CONFLICT_RETRIES = 100
"""How often a request runs again after losing a write race to another process before the
caller gets the `VersionConflict`."""

REQUESTS: dict[type, Callable[[State, Any], Any]] = {
    GetState: lambda state, _: updates.get_state(state),
    GetValue: lambda state, m: updates.get_value(state, m.key, m.default),
    Keys: lambda state, _: updates.keys(state),
    SetValue: lambda state, m: updates.set_value(state, m.key, m.value),
    DeleteValue: lambda state, m: updates.delete_value(state, m.key),
    SetMetadata: lambda state, m: updates.set_metadata(state, m.key, m.value),
    UpdateState: lambda state, m: updates.update_state(state, m.state),
    Modify: lambda state, m: updates.modify(state, m.fn),
}
"""What `Running` does with each request that needs only the State: a read's result, or an
`Update` to apply and store (see `actors/_updates.py`)."""


class InjectedCrash(Exception):  # noqa: N818 - it is a fault, not an error of ours
    """The unexpected exception `actors.testing.crash()` makes a tracker raise."""


@attrs.frozen(eq=False)
class Retry:
    """Run `message` again (attempt `attempt`) once a conflict backoff has passed."""

    message: Any
    attempt: int


class Phase:
    """A phase: `receive()` answers what it handles; None stashes the message."""

    runs_requests = False
    """Whether stashed requests go on in this phase."""

    def __init__(self, tracker: TrackerActor) -> None:
        self.t = tracker

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.t.name!r}>"

    def receive(self, message: Any) -> Phase | None:
        """Handle `message`: the next phase, or None to stash it (requests and Stop only)."""
        if type(message) in REQUESTS:  # the usual message, before the isinstance checks
            return self.request(message)
        if isinstance(message, GiveUp):
            return self.t.give_up(message.error)
        if isinstance(message, Written):
            return self.write_failed(message)
        if isinstance(message, Stop):
            return self.stop(message)
        if isinstance(message, Flush | Restart | Passivate | StoredVersion | Wake | Retry):
            return self  # see the phases that act on them
        return self.request(message)

    def request(self, message: TrackerRequest) -> Phase | None:
        return None

    def stop(self, message: Stop) -> Phase | None:
        self.t.handle_stop(message, flush=False)
        return self

    def held(self) -> list[Any]:
        """Requests this phase holds outside the stash (answered if the tracker stops)."""
        return []

    def settled(self) -> Phase:
        """The writes in flight were stored."""
        return self

    def write_failed(self, message: Written) -> Phase:
        """A batch in flight was not stored, while we hold no State (suspended, failed):
        its callers get the error (a lost race runs again), the rest runs again later."""
        failure = self.t.writes.take_failed(message)
        if failure is None:
            return self
        error = _as_outcome(message.error)
        rerun = []
        carried = {id(pending) for pending in failure.carried}
        for item in failure.items:
            if id(item) in carried and not isinstance(error, VersionConflict):
                reject(item.reply, error)
            else:
                rerun.append(item.message)
        self.rerun(rerun)
        return self

    def rerun(self, messages: list[Any]) -> None:
        """Run `messages` again, in order, before anything held back."""
        self.t.stash.put_back(messages)


def _as_outcome(error: BaseException) -> BaseException:
    """What a caller hears of a failed write: an unexpected error (a bug of ours) may have
    come after the store took it."""
    if isinstance(error, ContextError):
        return error
    outcome = OutcomeUnknownError(f"storing the update failed: {error!r}")
    outcome.__cause__ = error
    return outcome


def apply_update(
    t: TrackerActor, update: updates.Update, message: TrackerRequest, attempt: int
) -> Any:
    """Make `update` the current State and store it (undone if the write fails)."""
    t.metrics.updates.add(1)
    current = t.current
    if update.state is None:
        undo = updates.apply_in_place(current, update.delta)
    else:
        candidate = t.state = update.state

        def undo() -> None:
            if t.state is candidate:  # else a conflict reloaded the store's newer State
                t.state = current

    return t.writes.store(update, message.reply, undo, message, attempt)


class Loading(Phase):
    """Reading the newest intact State (at start, and on Restart). The load runs inside the
    message that started it, so this phase only ever stashes."""


class Running(Phase):
    """Idle, with a State: runs each request; a durable write makes it `Persisting`."""

    runs_requests = True

    def request(self, message: TrackerRequest, attempt: int = 1) -> Phase:
        t = self.t
        t.last_request = t.clock.now()
        try:
            result = self._run(message)
            if isinstance(result, updates.Update):
                if t.lease is not None and not t.keep_lease():
                    return take_lease(t, message, attempt)  # not applied: runs again there
                result = apply_update(t, result, message, attempt)
            elif type(message) in REQUESTS:
                t.metrics.reads.add(1)
        except StaleWrite as exc:
            # Another process wrote this context: the store is the truth. Catch up, run again.
            return self.lost_race(message, attempt, exc.conflict)
        except WriteOutcomeUnknownError as exc:
            return self.learn_outcome(message.reply, exc)
        except ContextError as exc:
            reject(message.reply, exc)
        except updates.UserFunctionError as exc:
            reject(message.reply, exc.user_error)
        except Exception as exc:  # noqa: BLE001 - unexpected: fail() logs it, we restart
            return t.fail(message.reply, f"handling {type(message).__name__}", exc)
        else:
            if result is LATER:  # answered by the write path; in flight unless stored
                return Persisting(t) if t.writes.busy else self
            resolve(message.reply, result)
        return self

    def _run(self, message: TrackerRequest) -> Any:
        pure = REQUESTS.get(type(message))
        if pure is not None:
            return pure(self.t.current, message)
        writes = self.t.writes
        if isinstance(message, Save):
            if writes.unsaved:
                writes.flush()
            return self.t.current.version
        if isinstance(message, MakeRecoveryPoint):
            if writes.unsaved:
                writes.flush()
            return self.t.store.create_recovery_point(self.t.current, message.label)
        if isinstance(message, Restore):
            point = self.t.store.read_recovery_point(self.t.name, message.point_id)
            return updates.replace(self.t.current, point, ChangeCause.RESTORE)
        if isinstance(message, Crash):
            self.t.restart_waiters = (*self.t.restart_waiters, message.restarted)
            raise InjectedCrash(f"crash injected into tracker {self.t.name!r}")
        msg = f"no handler for {type(message).__name__}"  # pragma: no cover - a bug of ours
        raise TypeError(msg)  # pragma: no cover

    def lost_race(
        self, message: TrackerRequest, attempt: int, conflict: VersionConflict | LeaseLost
    ) -> Phase:
        """Another process wrote the context under us: reload, and run the request again on
        the fresh State (`modify` re-runs its function, `set` re-applies, and `update_state`
        now fails with `VersionConflict` by itself, as its version is stale). With leases,
        the store refused a write of a lease that had ended (`LeaseLost`): the same, and the
        request takes the lease again first."""
        self.t.metrics.conflicts.add(1)
        if isinstance(conflict, LeaseLost) and self.t.lease is not None:
            logger.info(
                "tracker %r: the store refused a write of the lease it held (%s); it takes "
                "the lease again and runs the request again",
                self.t.name,
                conflict,
                extra=self.t.log_fields,
            )
            self.t.lease.lost()
        suspended = self.t.refresh_quietly()
        if suspended is not None:
            reject(message.reply, conflict)
            return suspended
        if attempt >= MAX_CONFLICT_RETRIES:
            reject(message.reply, conflict)
            return self
        self.t.metrics.retries.add(1)
        if attempt < 3:
            return self.request(message, attempt + 1)
        # Lost several races in a row: back off a random moment (jitter, as in any optimistic
        # retry loop), holding later requests back so that order is kept. A timer wakes us;
        # the actor never sleeps.
        retry = Retry(message, attempt + 1)
        self.t.tell_after(random.uniform(0, min(0.05, 0.0005 * 2**attempt)), retry)
        return BackingOff(self.t, retry)

    def learn_outcome(self, reply: Reply[Any], error: WriteOutcomeUnknownError) -> Phase:
        """A write of ours may or may not be stored (its update was undone here): the store
        is the truth, so read it before answering, rather than part from it. If the write
        was applied, catching up applies and publishes it; if reading fails too, the
        supervisor restarts us from the store."""
        suspended = self.t.refresh_quietly()
        reject(reply, error)
        return suspended or self

    def stop(self, message: Stop) -> Phase | None:
        self.t.handle_stop(message, flush=True)
        return self

    def receive(self, message: Any) -> Phase | None:
        if type(message) in REQUESTS:  # the usual message, before the isinstance checks
            return self.request(message)
        t = self.t
        if isinstance(message, Flush):
            # A tick may arrive after save() or a full batch already wrote everything.
            if t.writes.unsaved:
                t.writes.flush_quietly()
        elif isinstance(message, Passivate):
            t.passivate_if_idle(message.idle_since)
        elif isinstance(message, StoredVersion):
            # The watcher saw the store's head move; catch up if it was not us who moved it.
            if not t.writes.unsaved and message.version > t.writes.stored_version:
                return t.refresh_quietly() or self
        else:
            return super().receive(message)
        return self


class BackingOff(Phase):
    """A request lost several write races in a row and waits out a random moment (`Retry`
    comes from a timer); requests (and Stop) wait in the stash to keep their order."""

    def __init__(self, tracker: TrackerActor, retry: Retry) -> None:
        super().__init__(tracker)
        self.retry = retry

    def receive(self, message: Any) -> Phase | None:
        if isinstance(message, Retry):
            if message is not self.retry:  # pragma: no cover - one retry waits at a time
                return self
            return Running(self.t).request(message.message, message.attempt)
        return super().receive(message)

    def stop(self, message: Stop) -> Phase | None:
        return None

    def held(self) -> list[Any]:
        return [self.retry.message]


class Suspended(Phase):
    """An unexpected error: the State is dropped and the supervisor told; requests wait in the
    stash for its `Restart` (only the failing call got an error), or `GiveUp`."""

    def receive(self, message: Any) -> Phase | None:
        if isinstance(message, Restart):
            return self.t.recover()
        return super().receive(message)


class Failed(Phase):
    """The supervisor gave up: every request is refused, until the context is deactivated."""

    def rerun(self, messages: list[Any]) -> None:
        for message in messages:
            self.receive(message)

    def request(self, message: TrackerRequest) -> Phase:
        t = self.t
        refuse(message, t.failure or ContextFailedError(f"context {t.name!r} failed"))
        return self


# Persisting and the wait for a lease build on the phases above; Running turns into them, so
# they are imported last.
from actors._lease_phase import take_lease  # noqa: E402
from actors._pipeline_phase import Persisting  # noqa: E402
