"""How a tracker stores the updates it accepts: one write path, chosen at start from the sync
policy, owning everything about writing (the write in flight, the unsaved count, the flush
timer, the journal counts, the version last stored).

- `DurableWrites` (`SyncPolicy.durable()`): every update is written before its caller hears.
  With a group writer actor, the write goes there and is in flight (`pending`) until the
  writer answers: a stored write by resolving the caller's reply (seen by `settle_if_done()`
  at the tracker's next message), a failed one by telling the tracker `Written`. Without a
  writer, or while the tracker stops, it commits in the tracker's own thread.
- `BatchedWrites` (`SyncPolicy.batched()`): updates are acknowledged at once and counted; a
  full snapshot is compared-and-set after `max_updates`, after `max_delay` (a timer tells the
  tracker `Flush`), and on `flush()` (save, deactivation, passivation, shutdown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import pykka

from actors._changes import ChangeCause
from actors._clock import Scheduled
from actors._config import TrackerConfig
from actors._future import Reply, reject
from actors._messages import Flush, TrackerRequest, Wake
from actors._updates import Update
from actors._writer import WriteRequest, Written
from storage import ContextError, State, Store, VersionConflict
from storage._delta import Delta
from storage._store import Write

__all__ = [
    "LATER",
    "BatchedWrites",
    "DurableWrites",
    "Pending",
    "StaleWrite",
    "WriteHost",
    "WritePath",
    "make_write_path",
]

logger = logging.getLogger("actors.tracker")

LATER: Any = object()
"""Returned by `store()` when the writer actor will answer the caller."""


class StaleWrite(Exception):  # noqa: N818 - internal signal, never escapes
    """The store refused a write because another process wrote first."""

    def __init__(self, conflict: VersionConflict) -> None:
        super().__init__(conflict)
        self.conflict = conflict


class WriteHost(Protocol):
    """What a write path needs of its tracker."""

    name: str
    store: Store
    config: TrackerConfig

    @property
    def current(self) -> State: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def listened(self) -> bool: ...
    @property
    def actor_ref(self) -> pykka.ActorRef[Any]: ...
    def publish(self, delta: Delta, cause: ChangeCause) -> None: ...
    def reload(self) -> State: ...
    def tell(self, message: Any) -> None: ...
    def tell_after(self, delay: float, message: Any) -> Scheduled: ...


@attrs.define(eq=False)
class Pending:
    """A write handed to the writer actor, and how to take the update back if it fails."""

    write: Write
    reply: Reply[Any]
    undo: Callable[[], None]
    message: TrackerRequest
    """The request that made the write, to run again if another process got there first."""
    attempt: int
    wake_requested: bool = False
    """Whether its reply will tell us (`Wake`) once answered: only when someone waits."""


class WritePath:
    """What both policies share; see the module docstring."""

    def __init__(self, host: WriteHost, writer: pykka.ActorRef[Any] | None) -> None:
        self._host = host
        self.writer = writer
        self.stored_version = -1
        self.unsaved = 0
        self.pending: Pending | None = None

    def store(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        request: TrackerRequest,
        attempt: int,
    ) -> Any:
        """Store `update`, just applied (`undo` takes it back): return what the caller gets,
        or `LATER` once the writer actor has it. On failure the update is undone and the
        error raised (`StaleWrite` when another process wrote first)."""
        raise NotImplementedError

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

    def take_failed(self, message: Written) -> Pending | None:
        """The write in flight that `message` says was not stored, now ours to undo."""
        return None

    def abandon(self, message: Written) -> None:
        """The writer's answer arriving after we stopped: only the caller is left to tell."""
        pending, self.pending = self.pending, None
        if pending is not None:
            reject(pending.reply, message.error)

    def wake_when_written(self) -> None:
        """Have the write in flight, if any, tell us `Wake` once answered."""
        pending = self.pending
        if pending is not None and not pending.wake_requested:
            pending.wake_requested = True
            pending.reply.add_done_callback(self._wake)

    def _wake(self, _: Reply[Any]) -> None:
        """A reply callback: runs in the thread that answered (the writer's, or ours)."""
        self._host.tell(Wake())


class DurableWrites(WritePath):
    """Every update is stored before its caller hears (journal entry or snapshot)."""

    def __init__(self, host: WriteHost, writer: pykka.ActorRef[Any] | None) -> None:
        super().__init__(host, writer)
        self._journaled = 0  # journal entries since the last snapshot we wrote
        self._journal_bytes = 0
        # The change of the write in flight: published once written (`_written`).
        self._unpublished: tuple[Delta, ChangeCause] | None = None

    def store(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        request: TrackerRequest,
        attempt: int,
    ) -> Any:
        host = self._host
        self._unpublished = update.delta, update.cause
        try:
            write = self._prepare(update.delta)
            # Stopping: write from this thread, so that no write is in flight once stopped.
            if self.writer is not None and not host.stopping:
                self.pending = Pending(write, reply, undo, request, attempt)
                if host.listened:
                    self.wake_when_written()  # publish as soon as it is stored
                try:
                    self.writer.tell(WriteRequest(write, host.actor_ref, reply, update.result))
                except pykka.ActorDeadError:
                    # Only a bug of ours stops the writer early (it logged why): keep every
                    # write durable by committing our own, without group commit.
                    logger.error(  # noqa: TRY400 - the writer's failure was logged with its traceback
                        "tracker %r: the writer actor is gone; writing alone", host.name
                    )
                    self.pending = self.writer = None
                else:
                    return LATER
            self._commit(write)
        except BaseException:
            undo()
            raise
        return update.result

    def _prepare(self, delta: Delta) -> Write:
        """The write that stores the current State: a journal entry, or a full snapshot every
        `snapshot_every` writes (or once the journal holds `snapshot_bytes`)."""
        host = self._host
        config, store = host.config, host.store
        if (
            store.supports_journal
            and self._journaled + 1 < config.snapshot_every
            and self._journal_bytes < config.snapshot_bytes
            and delta.version == self.stored_version + 1
        ):
            return store.prepare_delta(delta, self.stored_version)
        return store.prepare_snapshot(host.current, self.stored_version)

    def _commit(self, write: Write) -> None:
        """Commit one write from this thread (no writer actor), raising its error."""
        (error,) = self._host.store.commit([write])
        if isinstance(error, VersionConflict):
            raise StaleWrite(error)  # the caller undoes the update and catches up
        if error is not None:
            raise error
        self._written(write)

    def _written(self, write: Write) -> None:
        self.stored_version = write.version
        self.unsaved = 0
        if write.journal:
            self._journaled += 1
            self._journal_bytes += len(write.blob)
        else:
            self._journaled = self._journal_bytes = 0
        if self._unpublished is not None:
            (delta, cause), self._unpublished = self._unpublished, None
            self._host.publish(delta, cause)

    def forget_journal(self) -> None:
        self._journaled = self._journal_bytes = 0

    def settle_if_done(self) -> bool:
        pending = self.pending
        if pending is None or not pending.reply.done():
            return False
        # The writer answered the caller: the write is stored (on failure it tells us with
        # `Written` and leaves the caller to us).
        self.pending = None
        self._written(pending.write)
        return True

    def take_failed(self, message: Written) -> Pending | None:
        pending = self.pending
        if pending is None or pending.write.version != message.version:
            return None  # pragma: no cover - the writer answers each write once
        self.pending = None
        return pending


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
            logger.exception("tracker %r could not write its batched updates", self._host.name)
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
        return DurableWrites(host, writer)
    return BatchedWrites(host, writer)
