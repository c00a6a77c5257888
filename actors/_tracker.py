"""The tracker actor, which owns one context's State (callers hold a `ContextTracker` handle).

A tracker handles one message at a time, so its State needs no lock. Its life:

    RUNNING --unexpected error--> SUSPENDED --Restart--> RUNNING (stashed requests replayed)
                                            --GiveUp---> FAILED  (every request: RecoveryError)

While SUSPENDED the tracker keeps its mailbox and stashes requests, so calls queued behind
the one that hit the fault reach the restarted tracker (Akka's restart semantics); only the
failing call gets an error. The manager, as supervisor, decides when to restart and when to
give up, and the tracker never waits on the manager.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pykka

from actors import _updates as updates
from actors._changes import Change, ChangeCause, Topic
from actors._config import TrackerConfig
from actors._exit import start_timer
from actors._future import Reply, reject, resolve
from actors._messages import (
    Crash,
    DeleteValue,
    Deliver,
    Flush,
    GetState,
    GetValue,
    GiveUp,
    MakeRecoveryPoint,
    Modify,
    Passivate,
    Passivated,
    Recovered,
    Restart,
    Restore,
    Save,
    SetMetadata,
    SetValue,
    Stop,
    TrackerFailed,
    TrackerRequest,
    UpdateState,
    UseWriter,
    Wake,
)
from actors._recovery import RecoveryReport, load_context
from actors._watcher import StoredVersion
from actors._writer import WriteRequest, Written
from storage import (
    ContextError,
    ContextFailedError,
    OutcomeUnknownError,
    RecoveryPoint,
    State,
    Store,
    UpdateNotAppliedError,
    VersionConflict,
    WriteOutcomeUnknownError,
)
from storage._delta import Delta
from storage._store import Write

if TYPE_CHECKING:
    pass

__all__ = ["InjectedCrash", "TrackerActor"]

logger = logging.getLogger("actors.tracker")

T = TypeVar("T")

_MISSING: Any = object()

MAX_CONFLICT_RETRIES = 100
"""How often a request runs again after losing a write race to another process before the
caller gets the `VersionConflict`."""

_LATER: Any = object()
"""Returned by a handler whose reply someone else (the writer actor) will send."""


class InjectedCrash(Exception):  # noqa: N818 - it is a fault, not an error of ours
    """The unexpected exception `actors.testing.crash()` makes a tracker raise."""


class _StaleWrite(Exception):  # noqa: N818 - internal signal, never escapes
    """The store refused a write because another process wrote first (we have reloaded)."""

    def __init__(self, conflict: VersionConflict) -> None:
        super().__init__(conflict)
        self.conflict = conflict


class Phase(enum.Enum):
    """Where a tracker is in its life (see the module docstring)."""

    RUNNING = "running"
    SUSPENDED = "suspended"
    FAILED = "failed"


class TrackerActor(pykka.ThreadingActor):
    """Owns the State of one context; talk to it through a `ContextTracker` handle."""

    use_daemon_thread = True  # never keeps the process alive: see actors/_exit.py

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
    ) -> None:
        super().__init__()
        self._name = name
        self._store = store
        self._config = config
        self._supervisor = supervisor
        self._writer = writer
        # The write the writer actor holds for us, if any: requests wait in the stash until
        # it is answered, so every request sees the outcome of the one before it.
        self._pending: _Pending | None = None
        self._handling: tuple[Any, int] = (None, 0)  # the request being handled, its attempt
        self._retrying: _Retry | None = None
        self._journaled = 0  # journal entries since the last snapshot we wrote
        self._journal_bytes = 0
        self._phase = Phase.SUSPENDED
        self._state: State | None = None
        self._stored_version = -1
        self._unsaved = 0
        self._flush_timer: threading.Timer | None = None
        self._stash: deque[TrackerRequest | Stop] = deque()
        self._failure: BaseException | None = None
        self._stop_reply: Reply[None] | None = None
        self._stopping = False
        self._passivating = False
        self._last_request = time.monotonic()
        self._stop_error: ContextError | None = None  # a forced stop's failed final write
        # Replies waiting for the next successful (re)start: activation and crash().
        self._restart_waiters: list[Reply[None]] = [ready]
        # Subscriptions: where changes go, the version subscribers last heard of, and the
        # change of the write in flight (durable policy: published once it is written).
        self._changes = changes
        self._published: int | None = None
        self._unpublished: tuple[Delta, ChangeCause] | None = None
        self._handlers: dict[type, Callable[[Any], Any]] = {
            GetState: self._get_state,
            GetValue: self._get_value,
            SetValue: self._set_value,
            DeleteValue: self._delete_value,
            SetMetadata: self._set_metadata,
            UpdateState: self._update_state,
            Modify: self._modify,
            Save: self._save,
            MakeRecoveryPoint: self._make_recovery_point,
            Restore: self._restore,
            Crash: self._crash,
        }
        self._controls: dict[type, Callable[[Any], None]] = {
            Written: self._on_written,
            Restart: self._on_restart,
            GiveUp: self._on_give_up,
            Stop: self._on_stop_request,
            Flush: self._on_flush,
            Passivate: self._on_passivate,
            _Retry: self._on_retry,
            StoredVersion: self._on_stored_version,
            Wake: self._on_wake,
            UseWriter: self._on_use_writer,
        }

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self._recover()

    def on_stop(self) -> None:
        self._cancel_flush_timer()
        if self._passivating:
            self._hand_back()
            return
        error = self._failure or UpdateNotAppliedError(
            f"tracker of context {self._name!r} stopped before handling the call"
        )
        self._fail_all(error)
        self._drain_inbox(error)
        if self._stop_reply is not None:
            if self._stop_error is not None:
                reject(self._stop_reply, self._stop_error)
            resolve(self._stop_reply, None)

    def on_failure(self, *_: object) -> None:  # pragma: no cover - only on a bug of ours
        self._cancel_flush_timer()
        error = UpdateNotAppliedError(
            f"tracker of context {self._name!r} died before handling the call"
        )
        self._fail_all(error)
        self._drain_inbox(error)

    def _fail_all(self, error: BaseException) -> None:
        """Answer everything held back: stashed requests and restart waiters."""
        if self._retrying is not None:
            _refuse(self._retrying.message, error)
            self._retrying = None
        while self._stash:
            _refuse(self._stash.popleft(), error)
        for waiter in self._restart_waiters:
            reject(waiter, error)
        self._restart_waiters.clear()

    def _drain_inbox(self, error: BaseException) -> None:
        """Once stopped: answer every message in the inbox that carries a reply slot."""
        kept = []
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            if isinstance(envelope.message, Written):
                self._settle(envelope.message)
            elif getattr(envelope.message, "reply", None) is not None:
                _refuse(envelope.message, error)
            else:
                kept.append(envelope)
        # pykka answers the rest after on_stop(), such as a stop() someone waits on.
        for envelope in kept:
            self.actor_inbox.put(envelope)

    def _passivate_if_idle(self, idle_since: float) -> None:
        """Stop to free our thread if idle since `idle_since`, with nothing held or unsaved."""
        busy = self._holding or self._stash or self._stopping
        if busy or self._phase is not Phase.RUNNING or self._last_request >= idle_since:
            return
        if self._unsaved:
            try:
                self._flush()
            except ContextError:
                return  # stay, and keep the unsaved updates; the next tick tries again
        self._passivating = self._stopping = True
        self.stop()  # requests already queued are handled first

    def _hand_back(self) -> None:
        """Passivated: give the requests that came in after our stop back to the manager,
        which starts a new tracker for them, then say we are gone (in that order)."""
        kept = []
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            message = envelope.message
            if isinstance(message, Written):
                self._settle(message)
            elif getattr(message, "reply", None) is not None and not isinstance(message, Stop):
                self._supervisor.tell(Deliver(self._name, message))
            elif isinstance(message, Stop):
                resolve(message.reply, None)  # stopped already
            else:
                kept.append(envelope)
        for envelope in kept:
            self.actor_inbox.put(envelope)
        self._supervisor.tell(Passivated(self._name, self.actor_ref))

    def _recover(self) -> None:
        """Load the newest intact State and resume; on failure report to the supervisor."""
        try:
            state = self._load()
        except Exception as exc:  # noqa: BLE001 - every failure goes to the supervisor
            logger.warning("tracker %r could not load its context: %r", self._name, exc)
            self._suspend(exc)
            return
        self._phase = Phase.RUNNING
        logger.debug("tracker %r running at version %d", self._name, state.version)
        for waiter in self._restart_waiters:
            resolve(waiter, None)
        self._restart_waiters.clear()
        self._resume_stash()

    def _load(self) -> State:
        """Make the store's newest intact State ours (see `load_context`)."""
        state, report = load_context(self._store, self._name)
        if report is not None:
            self._supervisor.tell(Recovered(report))
        self._announce(state, report)
        self._state = state
        self._stored_version = state.version
        self._unsaved = 0
        return state

    def _suspend(self, error: BaseException) -> None:
        self._phase = Phase.SUSPENDED
        self._state = None  # whatever it held may be half-changed: the store is the truth
        self._unsaved = 0
        self._cancel_flush_timer()
        self._supervisor.tell(TrackerFailed(self._name, self.actor_ref, error))

    # -- mailbox ----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> None:
        pending = self._pending
        if pending is not None and pending.reply.done():
            # The writer answered the caller: the write is stored (on failure it tells us
            # with `Written` and leaves the caller to us). Settle it before anything else.
            self._pending = None
            self._written(pending.write)
        control = self._controls.get(type(message))
        if control is not None:
            control(message)
        elif self._holding:
            self._hold(message)  # requests wait for the write in flight (or retry)
        elif self._phase is Phase.RUNNING:
            self._last_request = time.monotonic()
            self._dispatch(message)
        elif self._phase is Phase.SUSPENDED:
            self._stash.append(message)
        else:
            _refuse(message, self._failure or ContextFailedError(f"context {self._name!r} failed"))

    def _on_restart(self, _: Restart) -> None:
        if self._phase is Phase.SUSPENDED:
            self._recover()

    def _on_give_up(self, message: GiveUp) -> None:
        self._phase = Phase.FAILED
        self._failure = message.error
        # A stop held back behind a write still stops us; everything else is refused.
        stops = [held for held in self._stash if isinstance(held, Stop)]
        self._stash = deque(held for held in self._stash if not isinstance(held, Stop))
        self._fail_all(message.error)
        for stop in stops:
            self._handle_stop(stop)

    def _on_stop_request(self, message: Stop) -> None:
        if self._holding:
            self._hold(message)  # stop once the write in flight is answered
        else:
            self._handle_stop(message)

    def _on_flush(self, _: Flush) -> None:
        self._flush_timer = None
        # A tick may arrive after save() or a full batch already wrote everything.
        if self._phase is Phase.RUNNING and self._unsaved and not self._holding:
            self._flush_quietly()

    def _on_passivate(self, message: Passivate) -> None:
        self._passivate_if_idle(message.idle_since)

    def _dispatch(self, message: TrackerRequest, attempt: int = 1) -> None:
        if self._phase is not Phase.RUNNING or self._holding:
            # An earlier stashed message crashed us again, or started a write.
            self._hold(message)
            return
        self._handling = message, attempt
        try:
            result = self._handlers[type(message)](message)
        except _StaleWrite as exc:
            # Another process wrote this context: the store is the truth. Catch up, run again.
            if self._refresh_quietly():
                self._retry(message, attempt, exc.conflict)
            else:
                reject(message.reply, exc.conflict)
        except WriteOutcomeUnknownError as exc:
            self._learn_outcome(message.reply, exc)
        except ContextError as exc:
            reject(message.reply, exc)
        except updates.UserFunctionError as exc:
            reject(message.reply, exc.user_error)
        except Exception as exc:  # noqa: BLE001 - unexpected: _fail() logs it, we restart
            self._fail(message.reply, f"handling {type(message).__name__}", exc)
        else:
            if result is not _LATER:
                resolve(message.reply, result)

    def _fail(self, reply: Reply[Any], doing: str, error: BaseException) -> None:
        """An unexpected error while `doing`: the caller gets `OutcomeUnknownError` (caused
        by it): the error may have come after the store took the write, so the update may or
        may not be stored. The tracker suspends until its supervisor restarts it from the
        store, which then holds whichever it is."""
        logger.error("tracker %r failed %s", self._name, doing, exc_info=error)
        failure = OutcomeUnknownError(
            f"tracker of context {self._name!r} failed {doing}: {error!r}; the update may "
            "or may not be stored; it restarts from the store"
        )
        failure.__cause__ = error
        reject(reply, failure)
        self._suspend(error)

    def _retry(self, message: TrackerRequest, attempt: int, conflict: VersionConflict) -> None:
        """Another process wrote the context under us; we reloaded. Run the request again on
        the fresh State: `modify` re-runs its function, `set` re-applies, and `update_state`
        now fails with `VersionConflict` by itself, as its version is stale."""
        if attempt >= MAX_CONFLICT_RETRIES:
            reject(message.reply, conflict)
            return
        if attempt < 3:
            self._dispatch(message, attempt + 1)
            return
        # Lost several races in a row: back off a random moment (jitter, as in any optimistic
        # retry loop), holding later requests back so that order is kept. A timer wakes us;
        # the actor never sleeps.
        retry = self._retrying = _Retry(message, attempt + 1)
        delay = random.uniform(0, min(0.05, 0.0005 * 2**attempt))
        if not start_timer(threading.Timer(delay, self._tell, args=(retry,))):
            self._tell(retry)  # the interpreter is exiting and starts no thread: retry now

    def _on_retry(self, retry: _Retry) -> None:
        if self._retrying is not retry:
            return  # pragma: no cover - one retry waits at a time
        self._retrying = None
        self._dispatch(retry.message, retry.attempt)
        self._resume_stash()

    @property
    def _holding(self) -> bool:
        """Whether requests must wait: a write is in flight, or a retry waits out its delay."""
        return self._pending is not None or self._retrying is not None

    def _hold(self, message: Any) -> None:
        """Keep `message` until the write in flight (or retry, or restart) is over, and make
        sure we hear when the write is: the writer tells us of failures only."""
        self._stash.append(message)
        if self._pending is not None:
            self._wake_when_written(self._pending)

    def _wake_when_written(self, pending: _Pending) -> None:
        if not pending.wake_requested:
            pending.wake_requested = True
            pending.reply.add_done_callback(self._wake)

    def _wake(self, _: Reply[Any]) -> None:
        """A reply callback: runs in the thread that answered (the writer's, or ours)."""
        self._tell(Wake())

    def _on_wake(self, _: Wake) -> None:
        # on_receive() has settled a write that is over: go on with what waited for it. If
        # it is still in flight (the hub woke us for a new subscriber), hear when it is over.
        if self._pending is not None:
            self._wake_when_written(self._pending)
        self._resume_stash()

    def _on_use_writer(self, message: UseWriter) -> None:
        self._writer = message.writer  # a write in flight is still answered by the old one

    def _tell(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # stopped since: nothing to do
            self.actor_ref.tell(message)

    def _handle_stop(self, message: Stop) -> None:
        if self._phase is Phase.RUNNING and self._unsaved:
            try:
                self._flush()
            except ContextError as exc:
                if not message.force:
                    reject(message.reply, exc)
                    return  # not written: keep running, so nothing acknowledged is lost
                logger.error(  # noqa: TRY400 - the traceback adds nothing to exc's text
                    "tracker %r stopped with %d unsaved updates: %s", self._name, self._unsaved, exc
                )
                # Replied once stopped (on_stop), so a shutdown never outlives its trackers.
                self._stop_error = exc
        self._failure = message.error
        self._stop_reply = message.reply
        self._stopping = True
        # A stop asked for outranks a passivation we decided on and have not finished: the
        # stop is answered once we are stopped, and what comes after it is refused with its
        # error rather than handed back to be served by a new tracker.
        self._passivating = False
        # pykka's stop message goes to the back of the inbox: requests already queued are
        # still handled; on_stop() answers anything that arrives after it.
        self.stop()

    # -- requests ---------------------------------------------------------------------------

    @property
    def _current(self) -> State:
        assert self._state is not None
        return self._state

    def _get_state(self, _: GetState) -> State:
        return updates.get_state(self._current)

    def _get_value(self, message: GetValue) -> Any:
        return updates.get_value(self._current, message.key, message.default)

    def _set_value(self, message: SetValue) -> Any:
        update = updates.set_value(self._current, message.key, message.value)
        return self._apply(update, message.reply)

    def _delete_value(self, message: DeleteValue) -> Any:
        return self._apply(updates.delete_value(self._current, message.key), message.reply)

    def _set_metadata(self, message: SetMetadata) -> Any:
        update = updates.set_metadata(self._current, message.key, message.value)
        return self._apply(update, message.reply)

    def _update_state(self, message: UpdateState) -> Any:
        return self._apply(updates.update_state(self._current, message.state), message.reply)

    def _modify(self, message: Modify) -> Any:
        return self._apply(updates.modify(self._current, message.fn), message.reply)

    def _save(self, _: Save) -> int:
        if self._unsaved:
            self._flush()
        return self._current.version

    def _make_recovery_point(self, message: MakeRecoveryPoint) -> RecoveryPoint:
        if self._unsaved:
            self._flush()
        return self._store.create_recovery_point(self._current, message.label)

    def _restore(self, message: Restore) -> Any:
        point = self._store.read_recovery_point(self._name, message.point_id)
        update = updates.replace(self._current, point, ChangeCause.RESTORE)
        return self._apply(update, message.reply)

    def _crash(self, message: Crash) -> None:
        self._restart_waiters.append(message.restarted)
        raise InjectedCrash(f"crash injected into tracker {self._name!r}")

    # -- subscriptions ----------------------------------------------------------------------

    def _publish(self, delta: Delta, cause: ChangeCause) -> None:
        """Tell subscribers about an update now stored (batched policy: now accepted)."""
        self._published = delta.version
        changes = self._changes
        if changes is not None and changes.live:  # else nobody listens: copy nothing
            changes.publish(Change.from_delta(delta, cause))

    def _announce(self, state: State, report: RecoveryReport | None) -> None:
        """Before `state` is loaded: tell subscribers if it is not what they last heard of
        (a fallback past damage, batched updates a crash lost, or another writer's State
        found after a version conflict), with a change that replaces the whole State."""
        previous, self._published = self._published, state.version
        if report is not None:
            cause = ChangeCause.RECOVERY
        elif self._state is not None:  # running: a version conflict made us reload
            cause = ChangeCause.EXTERNAL
        elif previous is not None and previous != state.version:
            cause = ChangeCause.RECOVERY
        else:
            return
        if previous is None:
            previous = report.damaged_version if report is not None else state.version
        changes = self._changes
        if changes is not None and changes.live:
            changes.publish(Change.replacing(previous, state, cause))

    # -- committing -------------------------------------------------------------------------

    def _apply(self, update: updates.Update, reply: Reply[Any]) -> Any:
        """Make `update` the current State and store it; undo it if the write fails.
        Returns what the caller gets, or `_LATER` when the writer actor will answer `reply`."""
        current = self._current
        if update.state is None:
            undo = updates.apply_in_place(current, update.delta)
        else:
            candidate = self._state = update.state

            def undo() -> None:
                if self._state is candidate:  # else a conflict reloaded the store's newer State
                    self._state = current

        return self._store_update(reply, update.result, undo, update.delta, update.cause)

    def _store_update(
        self,
        reply: Reply[Any],
        value: Any,
        undo: Callable[[], None],
        delta: Delta,
        cause: ChangeCause = ChangeCause.UPDATE,
    ) -> Any:
        """Store the update just made, as the sync policy says: return `value` once it is
        stored (or counted for a batch), or `_LATER` once the writer actor has it."""
        if not self._config.sync.is_durable:
            try:
                self._after_update()
            except BaseException:
                undo()
                raise
            self._publish(delta, cause)  # batched: once accepted, before it is written
            return value
        self._unpublished = delta, cause  # durable: published once written (`_written`)
        try:
            write = self._prepare(delta)
            # Stopping: write from this thread, so that no write is in flight once stopped.
            if self._writer is not None and not self._stopping:
                message, attempt = self._handling
                self._pending = pending = _Pending(write, reply, undo, message, attempt)
                if self._changes is not None and self._changes.live:
                    self._wake_when_written(pending)  # publish as soon as it is stored
                try:
                    self._writer.tell(WriteRequest(write, self.actor_ref, reply, value))
                except pykka.ActorDeadError:
                    # Only a bug of ours stops the writer early (it logged why): keep every
                    # write durable by committing our own, without group commit.
                    logger.error(  # noqa: TRY400 - the writer's failure was logged with its traceback
                        "tracker %r: the writer actor is gone; writing alone", self._name
                    )
                    self._pending = self._writer = None
                else:
                    return _LATER
            self._commit(write)
        except BaseException:
            undo()
            raise
        return value

    def _prepare(self, delta: Delta) -> Write:
        """The write that stores the current State: a journal entry, or a full snapshot every
        `snapshot_every` writes (or once the journal holds `snapshot_bytes`)."""
        config = self._config
        if (
            self._store.supports_journal
            and self._journaled + 1 < config.snapshot_every
            and self._journal_bytes < config.snapshot_bytes
            and delta.version == self._stored_version + 1
        ):
            return self._store.prepare_delta(delta, self._stored_version)
        return self._store.prepare_snapshot(self._current, self._stored_version)

    def _commit(self, write: Write) -> None:
        """Commit one write from this thread (no writer actor), raising its error."""
        (error,) = self._store.commit([write])
        if isinstance(error, VersionConflict):
            raise _StaleWrite(error)  # the caller undoes the update, _dispatch catches up
        if error is not None:
            raise error
        self._written(write)

    def _written(self, write: Write) -> None:
        self._stored_version = write.version
        self._unsaved = 0
        if write.journal:
            self._journaled += 1
            self._journal_bytes += len(write.blob)
        else:
            self._journaled = self._journal_bytes = 0
        if self._unpublished is not None:
            (delta, cause), self._unpublished = self._unpublished, None
            self._publish(delta, cause)

    def _settle(self, message: Written) -> None:
        """The writer's answer, arriving after we stopped: only the caller is left to tell."""
        pending, self._pending = self._pending, None
        if pending is not None:
            reject(pending.reply, message.error)

    def _on_written(self, message: Written) -> None:
        """The writer's failure to store our pending write; then the stashed requests go on.
        (A stored write is settled in `on_receive` once the writer has answered its caller.)
        """
        pending = self._pending
        if pending is None or pending.write.version != message.version:
            return  # pragma: no cover - the writer answers each write once
        self._pending = None
        error = message.error
        if isinstance(error, VersionConflict):
            pending.undo()
            if self._refresh_quietly():
                self._retry(pending.message, pending.attempt, error)
            else:
                reject(pending.reply, error)
        elif isinstance(error, WriteOutcomeUnknownError):
            pending.undo()
            self._learn_outcome(pending.reply, error)
        elif isinstance(error, ContextError):
            pending.undo()
            reject(pending.reply, error)
        else:  # unexpected, as if it had been raised here: the tracker fails
            self._fail(pending.reply, f"storing version {pending.write.version}", error)
            return
        self._resume_stash()

    def _resume_stash(self) -> None:
        while self._stash and not self._holding and self._phase is Phase.RUNNING:
            message = self._stash.popleft()
            if isinstance(message, Stop):
                self._handle_stop(message)
            else:
                self._dispatch(message)
        if self._stash and self._pending is not None:
            self._wake_when_written(self._pending)  # the rest waits for this write now

    def _learn_outcome(self, reply: Reply[Any], error: WriteOutcomeUnknownError) -> None:
        """A write of ours may or may not be stored (its update was undone here): the store
        is the truth, so read it before answering, rather than part from it. If the write
        was applied, catching up applies and publishes it; if reading fails too, the
        supervisor restarts us from the store."""
        self._refresh_quietly()
        reject(reply, error)

    def _refresh_quietly(self) -> bool:
        try:
            self._refresh()
        except Exception as exc:  # noqa: BLE001 - the supervisor restarts us from the store
            self._suspend(exc)
            return False
        return True

    def _refresh(self) -> None:
        """Bring our State up to the store's head, which other processes moved on.

        Each version they wrote is applied and published on its own, in order: from its
        journal entry, or from its snapshot where one was written instead. Where neither is
        kept any more (or we hold unsaved batched updates, which the store's head replaces),
        the whole State is reloaded and published as one change.
        """
        state = self._current
        if self._unsaved:
            self._load()
            return
        try:
            self._catch_up(state)
        except ContextError:
            # Moved on again while we read (retention dropped a snapshot, say): reload.
            self._load()

    def _catch_up(self, state: State) -> None:
        head = self._store.head_version(self._name)
        entries = dict(self._store._read_journal(self._name, state.version))
        snapshots = set(self._store.list_versions(self._name))
        codec = self._store.codec
        while state.version < head:
            version = state.version + 1
            if version in entries:
                delta = codec.decode_delta(entries[version], context=self._name, version=version)
                delta.apply(state)
            elif version in snapshots:
                snapshot = self._store.read_version(self._name, version)
                delta = Delta.between(state, snapshot)
                self._state = state = snapshot
            else:
                self._load()
                return
            self._stored_version = version
            self._publish(delta, ChangeCause.EXTERNAL)
        self._journaled = self._journal_bytes = 0  # unknown: the next snapshot comes sooner

    def _on_stored_version(self, message: StoredVersion) -> None:
        """The watcher saw the store's head move; catch up if it was not us who moved it."""
        if (
            self._phase is Phase.RUNNING
            and not self._holding
            and not self._unsaved
            and message.version > self._stored_version
        ):
            self._refresh_quietly()

    def _after_update(self) -> None:
        """Write the current State now (durable policy) or count it for the next batch."""
        # Count the update only once it stays: if the write fails, the caller undoes it.
        # Stopping, the final write is done, yet requests queued before pykka's stop are
        # still handled: each writes itself, or it would be acknowledged and then lost.
        if self._stopping or self._unsaved + 1 >= self._config.sync.max_updates:
            self._flush()
        else:
            self._unsaved += 1
            self._arm_flush_timer()

    def _arm_flush_timer(self) -> None:
        if self._flush_timer is None and self._config.sync.max_delay is not None:
            timer = threading.Timer(self._config.sync.max_delay, self._tell, args=(Flush(),))
            # Refused while the interpreter exits (Python 3.12): the exit hook's shutdown
            # writes the batch instead.
            if start_timer(timer):
                self._flush_timer = timer

    def _flush(self) -> None:
        """Compare-and-set the current State over the last stored version."""
        state = self._current
        try:
            self._store.compare_and_set(state, self._stored_version)
        except VersionConflict:
            # Someone else (another process) wrote this context: the store is the truth, and
            # the unsaved updates it overwrote are lost (the batched policy's risk).
            self._load()
            raise
        self._stored_version = state.version
        self._unsaved = 0
        self._cancel_flush_timer()  # nothing left for it to write

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except ContextError:
            logger.exception("tracker %r could not write its batched updates", self._name)
            self._arm_flush_timer()  # try again later even if no update comes

    def _cancel_flush_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None


@attrs.frozen(eq=False)
class _Retry:
    """Run `message` again (attempt `attempt`) once a conflict backoff has passed."""

    message: Any
    attempt: int


@attrs.define(eq=False)
class _Pending:
    """A write handed to the writer actor, and how to take the update back if it fails."""

    write: Write
    reply: Reply[Any]
    undo: Callable[[], None]
    message: TrackerRequest
    """The request that made the write, to run again if another process got there first."""
    attempt: int
    wake_requested: bool = False
    """Whether its reply will tell us (`Wake`) once answered: only when someone waits."""


def _refuse(message: Any, error: BaseException) -> None:
    """Answer a request that will not be handled. A `Crash` also answers its `restarted`
    slot, which would otherwise wait for a restart that will not come."""
    reject(message.reply, error)
    if isinstance(message, Crash):
        reject(message.restarted, error)
