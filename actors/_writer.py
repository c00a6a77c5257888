"""The writer actor: group commit of every tracker's durable writes to one store.

Trackers encode their writes in their own threads and tell the writer, each a `WriteBatch`
of its context's consecutive writes (what it accumulated while its previous batch was being
stored, see `actors/_pipeline.py`). The writer takes every batch queued in its mailbox at that
moment and commits them as one transaction (one fsync on SQLite), never splitting a batch,
then answers each write in order. A stored write is answered to its caller only, saving the
hop back through the tracker and the tracker's wake-up: the tracker sees the batch stored
when its next message comes, or asked to be woken by its last reply if something waits. The
first write of a batch that was not stored is told to the tracker (`Written`), which then
owns it and every write after it: it undoes them and answers their callers. A stale write
fails its batch from there on alone; a failed transaction fails exactly the writes in it.

The writer is a pooled actor on the trackers' dispatcher, and a tracker hands it a batch with
`tell_here()` (actors/_dispatch.py): if the writer is idle, the tracker's thread commits the
batch at once (a lone caller's write costs no hand-off to another thread); if it is busy, the
batch waits in its mailbox and the thread running it takes every batch queued there into the
next transaction, as before (group commit for many callers).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import pykka

from actors._dispatch import Dispatcher, PooledActor
from actors._future import Reply, reject, resolve
from actors._messages import WriterFailed
from actors._metrics import NO_METRICS, Histogram, Instruments
from actors._tell import tell_quietly
from storage import OutcomeUnknownError, PersistenceError, ShutdownError, Store
from storage._store import Write

__all__ = ["Drain", "WriteBatch", "WriteRequest", "WriterActor", "Written", "answer_batch"]

logger = logging.getLogger("actors.writer")

MAX_BATCH = 512
"""Most writes one transaction takes; more stay queued for the next one."""


@attrs.frozen
class WriteRequest:
    """A tracker's prepared write, and whose call it answers."""

    write: Write
    reply: Reply[Any]
    """The caller's reply: resolved with `value` once the write is durable."""
    value: Any
    started: float = 0.0
    """When its tracker took the request (`time.perf_counter()`), for the write's duration."""


_SEAL = object()
"""What the writer appends to a batch it takes: a write joined after it is not in the batch."""


class WriteBatch:
    """A tracker's consecutive writes (versions v+1, v+2, ...), committed in one transaction
    and answered in order: each stored write to its caller, the first that is not stored to
    the tracker (`Written`), which owns the rest of the batch from then on.

    Until the writer takes the batch (`seal()`), its tracker may add the writes that follow
    (`join()`), so that a write made while the batch waits in the writer's mailbox goes in
    its transaction, not the next one (a new context's create and its first update, say).
    Both append to one deque and then copy it, each step atomic, so the order of the two
    appends decides whether a joined write is in, and neither side waits for the other.
    """

    __slots__ = ("_items", "_requests", "tracker")

    def __init__(self, tracker: pykka.ActorRef[Any], requests: Iterable[WriteRequest]) -> None:
        self.tracker = tracker
        self._items: deque[Any] = deque(requests)
        self._requests: tuple[WriteRequest, ...] | None = None

    def join(self, request: WriteRequest) -> bool:
        """The tracker's: add `request` unless the writer took the batch first (False)."""
        items = self._items
        items.append(request)
        seen = list(items)  # one atomic copy: the seal is in it or comes after our request
        return seen[-1] is _SEAL or not any(item is _SEAL for item in seen)

    def seal(self) -> tuple[WriteRequest, ...]:
        """The writer's: take the batch as it is; nothing joins it after this."""
        if self._requests is None:
            self._items.append(_SEAL)
            seen = list(self._items)
            self._requests = tuple(seen[: next(i for i, x in enumerate(seen) if x is _SEAL)])
        return self._requests

    @property
    def requests(self) -> tuple[WriteRequest, ...]:
        """Its writes, in order (sealing it)."""
        return self.seal()


def answer_batch(
    batch: WriteBatch,
    results: list[BaseException | None],
    tell: Any,
    durations: Histogram = NO_METRICS.write_duration,
) -> None:
    """Answer `batch`'s callers in order while their writes are stored (recording each
    one's time since its tracker took it in `durations`); at the first that is not,
    `tell(Written(...))` its tracker and stop: the tracker undoes and answers the rest (a
    write after one that was refused is never stored, see `Store.commit`)."""
    now = time.perf_counter()
    for index, (request, error) in enumerate(zip(batch.requests, results, strict=True)):
        if error is None:
            durations.record(now - request.started)
            # Only the caller is told: the tracker sees the batch stored when its next
            # message comes (or asked to be woken by the last reply), which saves it a
            # wake-up per write.
            resolve(request.reply, request.value)
            continue
        try:
            tell(Written(request.write.version, error))
        except pykka.ActorDeadError:  # stopped: only the callers are left to tell
            for late in batch.requests[index:]:
                reject(late.reply, error)
        return


@attrs.frozen
class Drain:
    """Stop once everything queued before this is answered; then resolve `reply`."""

    reply: Reply[None]


@attrs.frozen
class Written:
    """A tracker's write was not stored, for `error`."""

    version: int
    error: BaseException


class WriterActor(PooledActor):
    """Commits the writes of all trackers of a manager in batches."""

    records_queue = False  # the dispatcher's `queued` is about trackers

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: Store,
        supervisor: pykka.ActorRef[Any],
        metrics: Instruments = NO_METRICS,
    ) -> None:
        super().__init__(dispatcher)
        self._store = store
        self._metrics = metrics
        self._supervisor = supervisor
        self._drained: Reply[None] | None = None
        self._unanswered: deque[WriteBatch] = deque()
        """The writes of the batch in hand not answered yet: answered if this actor fails."""

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Drain):
            self.stop()
            self._drained = message.reply
            return
        if not isinstance(message, WriteBatch):
            return
        batch = [message]
        size = len(message.requests)
        deferred = []
        # Only the thread running us takes from the inbox, so get() after a non-empty check
        # finds a message.
        # A tracker's WriteBatch is taken whole, even past MAX_BATCH: it is one transaction.
        while size < MAX_BATCH and not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            if isinstance(envelope.message, WriteBatch):
                batch.append(envelope.message)
                size += len(envelope.message.requests)
            else:
                deferred.append(envelope)  # Drain or pykka's stop: handled after this batch
        for envelope in deferred:
            self.actor_inbox.put(envelope)
        self._unanswered.extend(batch)
        self._commit(batch)

    def _commit(self, batch: list[WriteBatch]) -> None:
        writes = [request.write for unit in batch for request in unit.requests]
        self._metrics.batch_size.record(len(writes))
        started = time.perf_counter()
        try:
            results: list[BaseException | None] = list(self._store.commit(writes))
            self._metrics.commit_duration.record(time.perf_counter() - started)
        except Exception as exc:  # every write of the batch is told
            if not isinstance(exc, PersistenceError):
                logger.exception("group commit of %d writes failed", len(writes))
            results = [exc] * len(writes)
        start = 0
        for unit in batch:
            end = start + len(unit.requests)
            answer_batch(unit, results[start:end], unit.tracker.tell, self._metrics.write_duration)
            self._unanswered.popleft()
            start = end

    def on_failure(self, *_: object) -> None:
        """A bug of ours failed this actor (pykka logged it): tell the manager, which starts
        another, then answer every write held here, so that no tracker or caller waits on
        it. (In that order: whoever hears the error here and asks the manager next finds
        the new writer in place.)"""
        tell_quietly(self._supervisor, WriterFailed(self.actor_ref))
        error = OutcomeUnknownError("the writer actor failed; the write may or may not be stored")
        while self._unanswered:
            unit = self._unanswered.popleft()
            answer_batch(unit, [error] * len(unit.requests), unit.tracker.tell)
        self._answer_inbox(error)

    def on_stop(self) -> None:
        self._answer_inbox(_shut_down())

    def on_late_message(self, message: Any) -> None:
        """A batch told just as we stopped (it passed the "is it alive" check first)."""
        _refuse(message, _shut_down())

    def _answer_inbox(self, error: BaseException) -> None:
        while not self.actor_inbox.empty():
            _refuse(self.actor_inbox.get().message, error)
        if self._drained is not None:
            resolve(self._drained, None)


def _shut_down() -> ShutdownError:
    return ShutdownError("the context manager was shut down before the write")


def _refuse(message: Any, error: BaseException) -> None:
    """Answer a message the writer will not handle: a batch fails with `error` (its tracker
    is told, then its callers), a drain is over."""
    if isinstance(message, WriteBatch):
        tell_quietly(message.tracker, Written(message.requests[0].write.version, error))
        for request in message.requests:
            reject(request.reply, error)
    elif isinstance(message, Drain):
        resolve(message.reply, None)
