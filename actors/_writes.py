"""How a tracker stores the updates it accepts: one write path, chosen at start from the sync
policy, owning everything about writing (the write in flight, the unsaved count, the flush
timer, the journal counts, the version last stored).

- `DurableWrites` (`SyncPolicy.durable()`, in `actors/_pipeline.py`): every update is
  written before its caller hears. With a group writer actor, one batch of writes is in
  flight while the next accumulates behind it. Without a writer, or while the tracker stops,
  it commits in the tracker's own thread.
- `BatchedWrites` (`SyncPolicy.batched()`): updates are acknowledged at once and counted; a
  full snapshot is compared-and-set after `max_updates`, after `max_delay` (a timer tells the
  tracker `Flush`), and on `flush()` (save, deactivation, passivation, shutdown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from actors._changes import ChangeCause
from actors._clock import Scheduled
from actors._config import TrackerConfig
from actors._future import LATER, Reply
from actors._logs import context_fields
from actors._messages import Flush, TrackerRequest, Wake
from actors._metrics import Instruments
from actors._updates import Update
from actors._writer import Written
from storage import ContextError, LeaseLost, State, Store, VersionConflict
from storage._delta import Delta

__all__ = [
    "LATER",
    "BatchedWrites",
    "StaleWrite",
    "WriteHost",
    "WritePath",
    "make_write_path",
]

logger = logging.getLogger("actors.tracker")


class StaleWrite(Exception):  # noqa: N818 - internal signal, never escapes
    """The store refused a write because another process wrote first (or, with leases,
    holds the context's lease now)."""

    def __init__(self, conflict: VersionConflict | LeaseLost) -> None:
        super().__init__(conflict)
        self.conflict = conflict


class WriteHost(Protocol):
    """What a write path needs of its tracker."""

    name: str
    store: Store
    config: TrackerConfig
    metrics: Instruments

    @property
    def current(self) -> State: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def listened(self) -> bool: ...
    @property
    def lease_epoch(self) -> int | None: ...
    @property
    def alone(self) -> bool: ...
    @property
    def actor_ref(self) -> pykka.ActorRef[Any]: ...
    def publish(self, delta: Delta, cause: ChangeCause) -> None: ...
    def reload(self) -> State: ...
    def tell(self, message: Any) -> None: ...
    def tell_after(self, delay: float, message: Any) -> Scheduled: ...


class WritePath:
    """What both policies share; see the module docstring."""

    def __init__(self, host: WriteHost, writer: pykka.ActorRef[Any] | None) -> None:
        self._host = host
        self.writer = writer
        self.stored_version = -1
        self.unsaved = 0

    @property
    def busy(self) -> bool:
        """Whether writes are in flight with the writer actor."""
        return False

    def store(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        request: TrackerRequest,
        attempt: int,
    ) -> Any:
        """Store `update`, just applied (`undo` takes it back): return what the caller gets,
        or `LATER` once the writer actor has it (and answers the caller: while `busy`, the
        write is in flight; if not, an idle writer stored it at once). On failure the update
        is undone and the error raised (`StaleWrite` when another process wrote first)."""
        raise NotImplementedError

    def create(self, seed: State) -> bool:
        """Store `seed` as the new context through the writer (see `DurableWrites`):
        False where this path does not, and the tracker creates it itself."""
        return False

    def loaded(self, version: int) -> None:
        """The tracker (re)loaded version `version` from the store: nothing is unsaved."""
        self.stored_version = version
        self.unsaved = 0

    def caught_up(self, version: int) -> None:
        """The tracker applied version `version`, which another process stored."""
        self.stored_version = version

    def forget_journal(self) -> None:
        """Journal counts are unknown now (others wrote): the next snapshot comes sooner."""

    def flush(self) -> None:
        """Write what is unsaved now, raising the store's error."""

    def flush_quietly(self) -> None:
        """`flush()`, logging a failure."""

    def timer_fired(self) -> None:
        """The flush timer told the tracker `Flush`."""

    def suspended(self) -> None:
        """The tracker failed: what it held is dropped (the store is the truth)."""
        self.unsaved = 0
        self.close()

    def close(self) -> None:
        """Stop any timer."""

    def settle_if_done(self) -> bool:
        """Whether the write in flight was stored (its reply done): settle it if so."""
        return False

    def take_failed(self, message: Written) -> Any:
        """What `message` says was not stored, now ours to undo (see `DurableWrites`)."""
        return None

    def abandon(self, message: Written) -> None:
        """The writer's answer arriving after we stopped: only the callers are left to tell."""

    def wake_when_written(self) -> None:
        """Have the writes in flight, if any, tell us `Wake` once answered."""

    def _wake(self, _: Reply[Any]) -> None:
        """A reply callback: runs in the thread that answered (the writer's, or ours)."""
        self._host.tell(Wake())


class BatchedWrites(WritePath):
    """Updates are acknowledged at once and written together (see the module docstring)."""

    def __init__(self, host: WriteHost, writer: pykka.ActorRef[Any] | None) -> None:
        super().__init__(host, writer)
        self._timer: Scheduled | None = None

    def store(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        request: TrackerRequest,
        attempt: int,
    ) -> Any:
        try:
            self._count()
        except BaseException:
            undo()
            raise
        self._host.publish(update.delta, update.cause)  # once accepted, before it is written
        return update.result

    def _count(self) -> None:
        # Count the update only once it stays: if the write fails, the caller undoes it.
        # Stopping, the final write is done, yet requests queued before pykka's stop are
        # still handled: each writes itself, or it would be acknowledged and then lost.
        if self._host.stopping or self.unsaved + 1 >= self._host.config.sync.max_updates:
            self.flush()
        else:
            self.unsaved += 1
            self._arm_timer()

    def _arm_timer(self) -> None:
        delay = self._host.config.sync.max_delay
        if self._timer is None and delay is not None:
            self._timer = self._host.tell_after(delay, Flush())

    def flush(self) -> None:
        """Compare-and-set the current State over the last stored version."""
        host = self._host
        state = host.current
        try:
            host.store.compare_and_set(state, self.stored_version)
        except VersionConflict:
            # Someone else (another process) wrote this context: the store is the truth, and
            # the unsaved updates it overwrote are lost (the batched policy's risk).
            host.reload()
            raise
        self.stored_version = state.version
        self.unsaved = 0
        self.close()  # nothing left for the timer to write

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except ContextError:
            logger.exception(
                "tracker %r could not write its batched updates",
                self._host.name,
                extra=context_fields(self._host.name, self._host.current.version),
            )
            self._arm_timer()  # try again later even if no update comes

    def timer_fired(self) -> None:
        self._timer = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def make_write_path(host: WriteHost, writer: pykka.ActorRef[Any] | None) -> WritePath:
    """The write path `host`'s sync policy asks for."""
    if host.config.sync.is_durable:
        from actors._pipeline import DurableWrites  # noqa: PLC0415 - it builds on this module

        return DurableWrites(host, writer)
    return BatchedWrites(host, writer)
