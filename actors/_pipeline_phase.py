"""The phase of a tracker whose durable writes are in flight with the group writer, which
keeps running the requests queued behind them (see `actors/_pipeline.py` for the write side,
and the diagram in `actors/_phases.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors import _updates as updates
from actors._future import reject, resolve
from actors._messages import Stop, TrackerRequest, Wake
from actors._phases import REQUESTS, Phase, Running, _as_outcome, apply_update
from actors._pipeline import DurableWrites, Failure, Pending
from actors._stash import busy_error, refuse
from actors._writer import Written
from actors._writes import LATER
from storage import (
    ContextError,
    ContextExistsError,
    LeaseLost,
    VersionConflict,
    WriteOutcomeUnknownError,
)

if TYPE_CHECKING:
    from actors._tracker import TrackerActor

__all__ = ["Persisting"]


class Persisting(Phase):
    """A batch of durable writes is in flight with the group writer (`actors/_pipeline.py`).
    Requests keep running on the in-memory State, in order: their writes accumulate into the
    next batch, sent whole once this one is stored, and the other requests' outcomes are held
    until the writes before them are stored. What must see the store as it is (`Save`, a
    recovery point, a restore, a crash) and `Stop` wait, with all that comes after them,
    until nothing is in flight. The tracker leaves this phase once it finds everything
    stored, or when the writer tells it `Written` (a batch failed)."""

    runs_requests = True

    def __init__(self, tracker: TrackerActor) -> None:
        super().__init__(tracker)
        self.waiting: list[Any] = []
        """Requests (and Stop) kept, in order, until nothing is in flight."""

    @property
    def writes(self) -> DurableWrites:
        """The tracker's write path: only the durable one hands writes to a writer."""
        writes = self.t.writes
        assert isinstance(writes, DurableWrites)
        return writes

    def receive(self, message: Any) -> Phase | None:
        if isinstance(message, Wake):
            # Still in flight (the hub woke us for a new subscriber): hear when it is stored.
            self.writes.wake_when_written()
            return self
        return super().receive(message)

    def request(self, message: TrackerRequest) -> Phase:
        t = self.t
        pure = REQUESTS.get(type(message))
        if self.waiting or pure is None or t.lease_blocks_writes:
            return self._wait(message)
        writes = self.writes
        if writes.queued + len(self.waiting) >= t.config.stash_capacity:
            refuse(message, busy_error(t.name, t.config.stash_capacity))
            return self
        t.last_request = t.clock.now()
        try:
            result = pure(t.current, message)
            if isinstance(result, updates.Update):
                result = apply_update(t, result, message, 1)  # accumulates: LATER
            else:
                t.metrics.reads.add(1)
        except ContextError as exc:
            writes.hold(message, error=exc)
        except updates.UserFunctionError as exc:
            writes.hold(message, error=exc.user_error)
        except Exception as exc:  # noqa: BLE001 - unexpected: fail() logs it, we restart
            self.rerun(writes.take_unsent())  # applied to a State we drop: run after restart
            return t.fail(message.reply, f"handling {type(message).__name__}", exc)
        else:
            if result is not LATER:
                writes.hold(message, value=result)
        writes.wake_when_written()  # something waits for the batch in flight now
        return self

    def _wait(self, message: Any) -> Phase:
        if not isinstance(message, Stop) and len(self.waiting) >= self.t.config.stash_capacity:
            refuse(message, busy_error(self.t.name, self.t.config.stash_capacity))
            return self
        self.waiting.append(message)
        self.writes.wake_when_written()
        return self

    def stop(self, message: Stop) -> Phase:
        return self._wait(message)  # stop once nothing is in flight

    def held(self) -> list[Any]:
        return [*self.writes.unanswered(), *self.waiting]

    def rerun(self, messages: list[Any]) -> None:
        waiting, self.waiting = self.waiting, []
        super().rerun([*messages, *waiting])

    def settled(self) -> Phase:
        if self.writes.busy:  # the next batch went to the writer
            if self.waiting:
                self.writes.wake_when_written()
            return self
        self.rerun([])  # what waited runs now, in order, before anything stashed
        return Running(self.t)

    def write_failed(self, message: Written) -> Phase:
        """The batch in flight was not stored from some write on: that write and those
        after it fail with its error (their callers hear it; a lost race or an unknown
        outcome is handled as when running alone), the State is back at the last stored
        version, and every request after them runs again on it, in order."""
        t = self.t
        failure = self.writes.take_failed(message)
        if failure is None:  # pragma: no cover - the writer answers each batch once
            return self
        error = message.error
        first = failure.carried[0]
        if first.write.create:
            return self._create_failed(failure, error)
        if isinstance(error, VersionConflict | LeaseLost):
            # Another process wrote this context (or holds its lease now): catch up and run
            # them all again.
            self.rerun([item.message for item in failure.items[1:]])
            return Running(t).lost_race(first.message, first.attempt, error)
        carried = {id(pending) for pending in failure.carried}
        self.rerun([item.message for item in failure.items if id(item) not in carried])
        if not isinstance(error, ContextError):  # unexpected, as if raised here: we fail
            phase = t.fail(first.reply, f"storing version {first.write.version}", error)
            outcome = first.reply.exception()  # what fail() told the first: the same for all
            for pending in failure.carried[1:]:
                reject(pending.reply, outcome or error)
            return phase
        if isinstance(error, WriteOutcomeUnknownError):
            for pending in failure.carried[1:]:
                reject(pending.reply, error)
            return Running(t).learn_outcome(first.reply, error)
        for pending in failure.carried:
            reject(pending.reply, error)
        return Running(t)

    def _create_failed(self, failure: Failure, error: BaseException) -> Phase:
        """The create that began our chain was not stored. If another process created the
        context first, get-or-create loads theirs and every request after the create runs
        again on it. Otherwise every request that waits on the create (the writes that
        went with it or queued behind it, the reads held behind it) fails with its error,
        and we suspend: the supervisor's restart loads the context if the create was
        stored after all (an unknown outcome), and stops us if it was not."""
        t = self.t
        create = failure.carried[0]
        if isinstance(error, ContextExistsError):
            try:
                t.load()
            except Exception as exc:  # noqa: BLE001 - the supervisor restarts us
                self.rerun([item.message for item in failure.items[1:]])
                return t.suspend(exc)
            resolve(create.reply, None)
            self.rerun([item.message for item in failure.items[1:]])
            return Running(t)
        outcome = _as_outcome(error)
        for item in failure.items:
            reject(item.reply if isinstance(item, Pending) else item.message.reply, outcome)
        self.rerun([])  # what waits for nothing in flight (a save, a stop) runs after
        return t.suspend(error)
