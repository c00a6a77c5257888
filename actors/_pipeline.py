"""The durable write path, pipelined: every update is stored before its caller hears, and
while one batch of a context's writes is being stored, the next one accumulates.

- With a group writer actor, a write goes there as a `WriteBatch` and is in flight
  (`in_flight`) until the writer answers: the stored writes by resolving their callers'
  replies (seen by `settle_if_done()` at the tracker's next message), the first one not
  stored by telling the tracker `Written`. Meanwhile the tracker (phase `Persisting`) keeps
  applying the requests queued behind it to its in-memory State, in order: their writes are
  prepared as a chain (version v+2 against v+1, which is not stored yet) into `next`, and the
  other requests' outcomes are held (`Held`), to be answered once the writes before them are
  stored. As soon as the batch in flight is stored, `next` goes to the writer whole: one
  transaction, one fsync, for all the updates that queued behind it.
- Without a writer, or while the tracker stops, a write is committed in the tracker's own
  thread (nothing is in flight then).

A new context's create (`get_tracker(create=True)` of a context not stored) is the first
write of the chain (`create()`): the tracker holds the new State while it is in flight, and
its batch takes the writes made before the writer takes it (`WriteBatch.join`), so a new
context and its first update are one transaction.

At most one batch is in flight and one accumulates. A failed batch fails exactly the writes it
carried; everything applied after the last stored version is undone (`take_failed()`), and
the phase runs again what was not answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import attrs
import pykka

from actors._changes import ChangeCause
from actors._config import TrackerConfig
from actors._dispatch import tell_here
from actors._future import Reply, new_reply, reject, resolve
from actors._logs import context_fields
from actors._messages import TrackerRequest, Wake
from actors._updates import Update
from actors._writer import WriteBatch, WriteRequest, Written, answer_batch
from actors._writes import LATER, StaleWrite, WriteHost, WritePath
from storage import LeaseLost, State, VersionConflict
from storage._delta import Delta
from storage._store import Write

__all__ = ["Batch", "DurableWrites", "Failure", "Held", "Pending"]

logger = logging.getLogger("actors.tracker")


@attrs.define(eq=False)
class Pending:
    """An update applied to the State whose write is in flight or accumulating, and how to
    take it back if the write fails."""

    write: Write
    reply: Reply[Any]
    value: Any
    """What the caller gets once the write is stored."""
    undo: Callable[[], None]
    message: TrackerRequest
    """The request that made the write, to run again if it was not stored."""
    attempt: int
    delta: Delta | None
    """What subscribers hear once it is stored; None for the create, which they do not."""
    cause: ChangeCause
    journal: tuple[int, int, int]
    """The journal entries and bytes since the last snapshot, and that snapshot's bytes (0:
    not known), once this write is stored."""
    started: float = attrs.field(factory=time.perf_counter)
    """When the request was taken: what its caller waits, less one hop, ends when stored."""

    def stored(self) -> bool:
        """Whether the writer answered the caller: only a stored write is answered so (a
        failed one is told to the tracker; a shutdown's refusal is an exception)."""
        reply = self.reply
        return reply.done() and not reply.cancelled() and reply.exception() is None


@attrs.define(eq=False)
class Held:
    """A request's outcome, computed at its place in the order behind writes not stored
    yet: answered once they are (a reader never sees a value that is not stored), run again
    if they fail."""

    message: TrackerRequest
    value: Any = None
    error: BaseException | None = None

    def answer(self) -> None:
        if self.error is not None:
            reject(self.message.reply, self.error)
        else:
            resolve(self.message.reply, self.value)


@attrs.define(eq=False)
class Batch:
    """A context's consecutive writes, and the outcomes held behind them, in order."""

    items: list[Pending | Held] | tuple[()] = ()
    """In order; a list from its first item on (a tracker's empty next batch holds none:
    one object fewer per running context for the garbage collector to walk)."""
    last: Pending | None = None
    """Its newest write: the batch is stored once this one is (looked at on every message)."""
    wake_requested: bool = False
    """Whether its last reply will tell us (`Wake`) once answered."""
    held: int = 0
    """How many of its items are held outcomes."""

    def add(self, item: Pending | Held) -> None:
        items = self.items
        if isinstance(items, list):
            items.append(item)
        else:
            self.items = [item]
        if isinstance(item, Pending):
            self.last = item
        else:
            self.held += 1

    @property
    def writes(self) -> list[Pending]:
        return [item for item in self.items if isinstance(item, Pending)]


@attrs.frozen
class Failure:
    """What a failed batch leaves to the phase, in order: the writes it carried that were not
    stored (`carried`, all with the same error), and everything after the failed write
    (`items`: those writes, the outcomes held behind them, the accumulated batch). The
    State is back at the last stored version."""

    carried: list[Pending]
    items: list[Pending | Held]


class DurableWrites(WritePath):
    """Every update is stored before its caller hears (journal entry or snapshot); see the
    module docstring."""

    def __init__(self, host: WriteHost, writer: pykka.ActorRef[Any] | None) -> None:
        super().__init__(host, writer)
        # Journal entries and bytes since the last snapshot: as stored, and as of the last
        # write prepared (the chain), which the next journal entry follows.
        self._stored_journal = _NO_JOURNAL
        self._chain_journal = _NO_JOURNAL
        self._chain_version = -1
        self.in_flight: Batch | None = None
        self.next = Batch()
        self._sent: WriteBatch | None = None
        """The writer's unit of the batch in flight while writes may still join it."""

    @property
    def busy(self) -> bool:
        return self.in_flight is not None

    def store(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        request: TrackerRequest,
        attempt: int,
    ) -> Any:
        host = self._host
        try:
            pending = self._prepare(update, reply, undo, request, attempt)
        except BaseException:
            undo()
            raise
        if self.in_flight is not None:
            if not self._join(pending):
                self.next.add(pending)  # goes to the writer once the batch is stored
            return LATER
        # Stopping: write from this thread, so that no write is in flight once stopped.
        if self.writer is not None and not host.stopping and self._send(_batch_of(pending)):
            # Committed (and answered) already if the writer was idle: settle it now, so
            # that nothing is in flight (`busy` is False) and the tracker stays Running.
            self.settle_if_done()
            return LATER
        try:
            self._commit(pending)
        except BaseException:
            self._rewind()
            undo()
            raise
        return update.result

    def create(self, seed: State) -> bool:
        """Send the creation of the context as `seed` to the writer, as the first write of
        the chain: a write made meanwhile joins it while it waits for the writer (one
        transaction: a new context and its first update), later ones chain behind it, and
        reads wait for it, so nothing is answered before the context is stored. The
        tracker holds `seed` meanwhile. False if there is no writer or we stop (nothing
        sent)."""
        host = self._host
        if self.writer is None or host.stopping or self.in_flight is not None:
            return False
        write = host.store.prepare_create(seed)
        reply: Reply[None] = new_reply()
        journal = 0, 0, len(write.blob)
        # No request made it: a failed create is never run again (see Persisting).
        nobody = cast("TrackerRequest", None)
        cause = ChangeCause.UPDATE
        pending = Pending(write, reply, None, _nothing, nobody, 1, None, cause, journal)
        self.stored_version, self.unsaved = -1, 0
        self._stored_journal = _NO_JOURNAL
        self._chain_version, self._chain_journal = write.version, journal
        if not self._send(_batch_of(pending), joinable=True):
            self._rewind()
            return False
        self.settle_if_done()  # stored already if the writer was idle (see `store`)
        return True

    def _join(self, pending: Pending) -> bool:
        """Add `pending` to the batch in flight if it is a create's and the writer has not
        taken it yet (see `WriteBatch.join`): stored in its transaction, not one later.
        Only while nothing accumulates, so that the writes keep their order. (Other
        batches take no joins: what queues behind them accumulates, and a failed batch
        fails the writes that were in it when it went, as before.)"""
        unit, batch = self._sent, self.in_flight
        if unit is None or batch is None or self.next.items:
            return False
        request = WriteRequest(pending.write, pending.reply, pending.value, pending.started)
        if not unit.join(request):
            self._sent = None  # taken: the next writes accumulate
            return False
        batch.add(pending)
        if batch.wake_requested:  # the wake was asked of the write that was last
            pending.reply.add_done_callback(self._wake)
        return True

    def hold(self, message: TrackerRequest, value: Any = None, error: Any = None) -> None:
        """Keep a request's outcome until the writes before it are stored."""
        assert self.in_flight is not None
        # Behind the batch in flight if nothing accumulates yet: its writes are all it needs.
        batch = self.next if self.next.items else self.in_flight
        batch.add(Held(message, value, error))

    @property
    def queued(self) -> int:
        """How many requests wait behind the writes in flight (bounded by the stash's
        capacity): the accumulated ones, and the outcomes held."""
        held = self.in_flight.held if self.in_flight is not None else 0
        return len(self.next.items) + held

    def _prepare(
        self,
        update: Update,
        reply: Reply[Any],
        undo: Callable[[], None],
        message: TrackerRequest,
        attempt: int,
    ) -> Pending:
        """The write that stores the current State after the last write prepared: a journal
        entry, or a full snapshot (see `_snapshot_due`)."""
        host = self._host
        config, store = host.config, host.store
        entries, size, snapshot = self._chain_journal
        delta = update.delta
        if (
            store.supports_journal
            and not _snapshot_due(config, entries, size, snapshot)
            and delta.version == self._chain_version + 1
        ):
            write = store.prepare_delta(delta, self._chain_version, lease=host.lease_epoch)
            journal = entries + 1, size + len(write.blob), snapshot
        else:
            write = store.prepare_snapshot(
                host.current, self._chain_version, delta.cause, lease=host.lease_epoch
            )
            journal = 0, 0, len(write.blob)
        self._chain_version, self._chain_journal = write.version, journal
        return Pending(
            write, reply, update.result, undo, message, attempt, delta, update.cause, journal
        )

    def _rewind(self) -> None:
        """The chain of prepared writes is back at the last stored version."""
        self._chain_version, self._chain_journal = self.stored_version, self._stored_journal

    def _send(self, batch: Batch, *, joinable: bool = False) -> bool:
        """Hand `batch` to the writer: False if the writer is gone (nothing was sent). A
        `joinable` batch (a create's) takes the writes made before the writer takes it."""
        host = self._host
        requests = tuple(
            WriteRequest(pending.write, pending.reply, pending.value, pending.started)
            for pending in batch.writes
        )
        message = WriteBatch(host.actor_ref, requests)
        try:
            if host.alone:
                # Nothing queued behind it: an idle writer commits it now, in this thread,
                # with no hand-off to another (see actors/_writer.py).
                tell_here(self.writer, message)  # type: ignore[arg-type]
            else:
                # Requests wait behind it: the writer commits on another thread while we
                # apply them, and they go as the next batch (pipelining).
                self.writer.tell(message)  # type: ignore[union-attr]
        except pykka.ActorDeadError:
            # Only a bug of ours stops the writer early (it logged why): keep every write
            # durable by committing our own, without group commit.
            logger.error(  # noqa: TRY400 - the writer's failure was logged with its traceback
                "tracker %r: the writer actor is gone; writing alone",
                host.name,
                extra=context_fields(host.name, self.stored_version),
            )
            self.writer = None
            return False
        self.in_flight, self._sent = batch, message if joinable else None
        if (host.listened or len(batch.items) > len(requests)) and not _stored(batch):
            self.wake_when_written()  # publish, or answer what is held, once stored
        return True

    def _commit_here(self, batch: Batch) -> None:
        """Commit `batch` from this thread, as the writer would (the writer is gone): it is
        in flight until the tracker's next message, which we send ourselves."""
        host = self._host
        self.in_flight, self._sent = batch, None
        writes = batch.writes
        try:
            results: list[BaseException | None] = list(
                host.store.commit([pending.write for pending in writes])
            )
        except Exception as exc:  # noqa: BLE001 - told to ourselves, as the writer would
            results = [exc] * len(writes)
        requests = tuple(
            WriteRequest(pending.write, pending.reply, pending.value, pending.started)
            for pending in writes
        )
        answer_batch(
            WriteBatch(host.actor_ref, requests), results, host.tell, host.metrics.write_duration
        )
        host.tell(Wake())

    def _commit(self, pending: Pending) -> None:
        """Commit one write from this thread (no writer actor), raising its error."""
        (error,) = self._host.store.commit([pending.write])
        if error is not None:
            if isinstance(error, VersionConflict | LeaseLost):
                raise StaleWrite(error)  # the caller undoes the update and catches up
            raise error
        self._host.metrics.write_duration.record(time.perf_counter() - pending.started)
        self._settle([pending])

    def _settle(self, items: Sequence[Pending | Held]) -> None:
        """`items` are stored: publish each version, in order, and answer what was held."""
        for item in items:
            if isinstance(item, Held):
                item.answer()
                continue
            self.stored_version = item.write.version
            self._stored_journal = item.journal
            self.unsaved = 0
            if item.delta is not None:
                self._host.publish(item.delta, item.cause)

    def settle_if_done(self) -> bool:
        batch = self.in_flight
        if batch is None or not _stored(batch):
            return False
        while True:
            # The writer answered every caller of the batch: it is stored (on failure it
            # tells us with `Written` and leaves the callers to us).
            self.in_flight, self._sent = None, None
            self._settle(batch.items)
            if not self.next.items:
                break
            # What accumulated meanwhile goes as one batch, committed at once if the writer
            # was idle (then it is settled by the next turn of this loop).
            batch, self.next = self.next, Batch()
            if self.writer is None or not self._send(batch):
                self._commit_here(batch)
                break
            if not _stored(batch):  # in flight (`_send` made it so) until the writer answers
                break
        return True

    def take_failed(self, message: Written) -> Failure | None:
        """The batch in flight was stored up to the write `message` names: settle what was
        stored, undo everything after it (the accumulated batch too), and return it."""
        batch = self.in_flight
        if batch is None:
            return None  # pragma: no cover - the writer answers each batch once
        versions = [
            item.write.version if isinstance(item, Pending) else None for item in batch.items
        ]
        if message.version not in versions:
            return None  # pragma: no cover - as above
        cut = versions.index(message.version)
        self.in_flight, self._sent = None, None
        self._settle(batch.items[:cut])
        failed = batch.items[cut:]
        later, self.next = self.next.items, Batch()
        for item in reversed([*failed, *later]):  # newest first: back to the stored State
            if isinstance(item, Pending):
                item.undo()
        self._rewind()
        carried = [item for item in failed if isinstance(item, Pending)]
        return Failure(carried, [*failed, *later])

    def take_unsent(self) -> list[Any]:
        """Undo the accumulated batch (not sent yet) and return its requests, in order."""
        later, self.next = self.next.items, Batch()
        for item in reversed(later):
            if isinstance(item, Pending):
                item.undo()
        self._rewind()
        return [item.message for item in later]

    def unanswered(self) -> list[Any]:
        """The requests held here that the writer will not answer (for a teardown)."""
        batch = self.in_flight
        held = [item for item in batch.items if isinstance(item, Held)] if batch else []
        return [item.message for item in [*held, *self.next.items]]

    def loaded(self, version: int) -> None:
        super().loaded(version)
        self._stored_journal = _NO_JOURNAL
        self._rewind()

    def caught_up(self, version: int) -> None:
        super().caught_up(version)
        self._rewind()

    def forget_journal(self) -> None:
        self._stored_journal = _NO_JOURNAL
        self._rewind()

    def suspended(self) -> None:
        super().suspended()
        self.next, self._sent = Batch(), None
        self._rewind()

    def abandon(self, message: Written) -> None:
        """The writer's answer arriving after we stopped: only the callers are left to tell."""
        batch, self.in_flight, self._sent = self.in_flight, None, None
        if batch is not None:
            for pending in batch.writes:
                reject(pending.reply, message.error)  # a stored one was resolved: no effect

    def wake_when_written(self) -> None:
        batch = self.in_flight
        if batch is not None and batch.last is not None and not batch.wake_requested:
            batch.wake_requested = True
            batch.last.reply.add_done_callback(self._wake)


def _stored(batch: Batch) -> bool:
    """Whether the writer answered `batch`'s callers (so it is stored)."""
    return batch.last is not None and batch.last.stored()


def _nothing() -> None:
    """The undo of a create: the tracker drops the seed it holds (reloads or suspends)."""


def _batch_of(pending: Pending) -> Batch:
    batch = Batch()
    batch.add(pending)
    return batch


_NO_JOURNAL = (0, 0, 0)
"""No journal entry since the last snapshot, whose size is not known."""


def _snapshot_due(config: TrackerConfig, entries: int, size: int, snapshot: int) -> bool:
    """Whether the next write is a full snapshot rather than a journal entry, after `entries`
    entries of `size` bytes since a snapshot of `snapshot` bytes: every `snapshot_every`
    writes if the snapshot is small (`_SMALL`) or the journal is at least as large as it,
    and whenever the journal holds `snapshot_bytes` or as many as that snapshot, if larger.
    So a small State is rewritten every `snapshot_every` updates (a restart replays at most
    that many), while a large one
    is rewritten only once as many bytes were journaled as it takes: the bytes written per
    update stay proportional to what changed, however large the State grows (appending to a
    long list), and a restart replays at most a snapshot's worth of journal."""
    if size >= max(config.snapshot_bytes, snapshot):
        return True
    return entries + 1 >= config.snapshot_every and (snapshot <= _SMALL or size >= snapshot)


_SMALL = 4096
"""Bytes of a snapshot that costs about what a page write costs anyway: a State this small
is rewritten every `snapshot_every` updates whatever its journal holds."""
