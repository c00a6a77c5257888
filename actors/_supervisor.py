"""ManagerActor: creates, supervises and stops the trackers of one store (the supervisor).

It owns the registry of contexts (one `Cell` each), the supervision records and the adapters'
current contexts. It never waits on another actor: when an operation needs a tracker's answer
(activation, deactivation, shutdown), it chains a callback on the tracker's reply that comes
back to it as a `Done` message, and answers its own caller then. `ContextManager` is its
facade.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pykka

from actors._cell import Cell, ContextStatus
from actors._changes import Topic
from actors._currents import Currents
from actors._exit import forget_manager
from actors._factory import ContextTrackerFactory
from actors._future import Reply, new_reply, reject, resolve
from actors._handle import ContextTracker
from actors._messages import (
    Deliver,
    Done,
    ForgetAdapter,
    GiveUp,
    ListStopping,
    MakeRecoveryPoint,
    Passivate,
    Passivated,
    Recovered,
    Restart,
    Restore,
    Save,
    Stop,
    Tick,
    TrackerFailed,
    UseWriter,
    WriterFailed,
)
from actors._recovery import RecoveryReport
from actors._registry import ContextRegistry
from actors._requests import (
    DEFAULT_CONTEXT,
    ActiveContexts,
    CreateAndSwitch,
    CreateContext,
    CreateRecoveryPoint,
    CurrentContext,
    CurrentTracker,
    Deactivate,
    DeleteContext,
    DeleteRecoveryPoint,
    GetRecoveryReport,
    GetTracker,
    Initialize,
    ListContexts,
    ListRecoveryPoints,
    LoadContext,
    ManagerRequest,
    RestoreRecoveryPoint,
    SaveContext,
    Shutdown,
    Status,
    SubscribeCurrent,
    Switch,
)
from actors._restart import RestartPolicy
from actors._shutdown import ShutdownSequence
from actors._store_io import RunIO, StoreWorker
from actors._subscriptions import CloseTopic, Register, SubscriptionHub
from actors._timers import Timers
from actors._watcher import Unwatch, Watch, WatcherActor
from actors._writer import WriterActor
from storage import (
    ContextError,
    ContextExistsError,
    ContextFailedError,
    ContextInactiveError,
    ContextNotFoundError,
    NoCurrentContextError,
    RecoveryError,
    ShutdownError,
    State,
    Store,
)

__all__ = ["DEFAULT_CONTEXT", "ManagerActor"]

logger = logging.getLogger("actors.manager")

_LATER: Any = object()
"""Returned by an operation that will answer its reply itself, later."""

_WRITER = object()
"""The group writer's key in the restart history (trackers are keyed by context name)."""


class ManagerActor(pykka.ThreadingActor):
    """Creates, supervises and stops the trackers of one store; see `ContextManager`."""

    # Every actor thread of ours is a daemon, so that a program that never calls shutdown()
    # still exits; the exit hook (actors/_exit.py) shuts the manager down first.
    use_daemon_thread = True

    def __init__(
        self,
        store: Store,
        factory: ContextTrackerFactory,
        owns_store: bool,
        group_commit: bool,
    ) -> None:
        super().__init__()
        self._store = store
        self._group_commit = group_commit
        self._writer: pykka.ActorRef[Any] | None = None  # started in on_start
        self._factory = factory
        self._config = factory.config
        self._owns_store = owns_store
        # Each context's cell, report and transition in flight: calls that act on a context
        # wait for its deactivation, deletion or store call under way, so that they never act
        # on a half-stopped context or on what was known before the store answered.
        self._contexts = ContextRegistry(
            lambda name: Cell(name, self._config.ask_timeout, self.actor_ref, self._hub)
        )
        # The restart history of each tracker (by context name) and of the writer.
        self._restarts = RestartPolicy(self._config.supervisor)
        self._currents = Currents()  # each adapter's current context
        self._timers = Timers()  # restarts and passivation ticks
        self._shutdown = ShutdownSequence(self)
        # The subscriptions to our contexts and adapters live in the hub, so they outlive
        # every tracker; each adapter's switches are published to a topic of its own.
        self._hub = SubscriptionHub.start(self._config.exit_timeout)
        self._io_worker = StoreWorker.start()
        self._watcher: pykka.ActorRef[Any] | None = None  # started in on_start

    # -- mailbox ----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> None:
        if isinstance(message, ManagerRequest):
            self._handle_request(message)
        elif isinstance(message, Done):
            try:
                message.callback(*message.args)
            except Exception:  # pragma: no cover - a bug of ours; the manager must live on
                logger.exception("manager callback %r failed", message.callback)
        elif isinstance(message, TrackerFailed):
            self._on_tracker_failed(message)
        elif isinstance(message, WriterFailed):
            self._on_writer_failed(message)
        elif isinstance(message, Recovered):
            self._contexts.reports[message.report.context] = message.report
        elif isinstance(message, Deliver):
            self._deliver(message)
        elif isinstance(message, Passivated):
            self._on_passivated(message)
        elif isinstance(message, Tick):
            self._passivate_idle()
        elif isinstance(message, ListStopping):
            resolve(message.reply, self._contexts.all_stopping())
        elif isinstance(message, ForgetAdapter):
            self._on_forget_adapter(message)
        else:
            logger.warning("the context manager ignored a message it does not know: %r", message)

    def _handle_request(self, request: ManagerRequest) -> None:
        if self._shutdown.closing and not isinstance(request, Shutdown):
            reject(request.reply, ShutdownError("the context manager was shut down"))
            return
        name = request.context if request.waits else None
        pending = self._contexts.pending(name) if name is not None else None
        if name is not None and pending is not None:
            # Made after the deactivation or deletion began, the call runs after it ended, as
            # if the caller had waited: a switch then finds the context inactive, not stopping.
            self._contexts.wait(name, request)
            self._when_done(pending, self._resume, name, request)
            return
        handler = _HANDLERS.get(type(request))
        if handler is None:
            error = TypeError(f"the context manager has no handler for {type(request).__name__}")
            logger.error("%s", error)
            reject(request.reply, error)
            return
        try:
            result = handler(self, request)
        except ContextError as exc:
            reject(request.reply, exc)
        except Exception as exc:
            # A store or programming error: the caller learns of it; the manager lives on.
            logger.exception("context manager failed in %s", request.operation)
            reject(request.reply, exc)
        else:
            if result is not _LATER:
                resolve(request.reply, result)

    def _pend(self, name: str, reply: Reply[Any]) -> None:
        """Record a transition of `name` under way until `reply` is settled."""
        self._contexts.begin(name, reply)
        self._when_done(reply, self._unpend, name)

    def _unpend(self, reply: Reply[Any], name: str) -> None:
        self._contexts.end(name, reply)

    def _resume(self, _: Reply[Any], name: str, request: ManagerRequest) -> None:
        self._contexts.resume(name, request)
        self._handle_request(request)

    def on_stop(self) -> None:
        forget_manager(self.actor_urn)  # nothing left for the exit hook to shut down
        self._timers.cancel_all()
        self._shutdown.teardown()

    def _when_done(self, reply: Reply[Any], callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(reply, *args)` in this actor once `reply` is settled."""
        ref = self.actor_ref

        def come_back(_: Reply[Any]) -> None:
            # If the manager stopped meanwhile, on_stop() answered whoever waits.
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(Done(callback, (reply, *args)))

        reply.add_done_callback(come_back)

    # -- contexts ---------------------------------------------------------------------------

    def _cell(self, name: str) -> Cell:
        return self._contexts.cell(name)

    def _is_running(self, name: str) -> bool:
        return self._contexts.is_running(name)

    # -- store I/O ---------------------------------------------------------------------------

    def _io(
        self,
        name: str | None,
        reply: Reply[Any],
        work: Callable[[], Any],
        then: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Have the store worker run `work()`, then answer `reply` with its result, or with
        what `then(result)` returns (unless `_LATER`: `then` answers itself), here in the
        manager's thread. Calls naming context `name` meanwhile wait for it (`_pend`), so
        that none acts on what the manager knew before the store answered."""
        done = new_reply()
        try:
            self._io_worker.tell(RunIO(work, done))
        except pykka.ActorDeadError:
            reject(reply, ShutdownError("the context manager was shut down"))
            return _LATER
        if name is not None:
            self._pend(name, done)
        self._when_done(done, self._after_io, reply, then)
        return _LATER

    def _after_io(
        self, done: Reply[Any], reply: Reply[Any], then: Callable[[Any], Any] | None
    ) -> None:
        error = done.exception()
        if error is None and then is not None:
            try:
                result = then(done.result())
            except Exception as exc:  # noqa: BLE001 - answered to the caller below
                error = exc
            else:
                if result is not _LATER:
                    resolve(reply, result)
                return
        if error is None:
            resolve(reply, done.result())
            return
        if not isinstance(error, ContextError):  # a store or programming error
            logger.error("context manager failed in a store call", exc_info=error)
        reject(reply, error)

    # -- contexts ---------------------------------------------------------------------------

    def _op_create_context(self, request: CreateContext) -> Any:
        reply, state = request.reply, request.state

        def created(_: None) -> State:
            self._cell(state.context)
            return state.snapshot()

        return self._io(state.context, reply, partial(self._store.create, state), created)

    def _op_get_tracker(self, request: GetTracker) -> Any:
        reply, name = request.reply, request.name
        self._activate(name, reply)
        return _LATER

    def _activate(self, name: str, reply: Reply[ContextTracker]) -> None:
        """Answer `reply` with a handle once `name` has a running tracker."""
        cell = self._contexts.get(name)
        if cell is not None and (cell.ref is not None or cell.passive):
            self._start(name, reply)  # running, or known to be stored: no store call
            return
        if cell is not None and cell.status is ContextStatus.FAILED:
            reject(reply, cell.unavailable())
            return

        def stored(exists: bool) -> Any:
            if not exists:
                raise ContextNotFoundError(name)
            self._start(name, reply)
            return _LATER

        self._io(name, reply, partial(self._store.exists, name), stored)

    def _start(self, name: str, reply: Reply[ContextTracker]) -> None:
        """Start the tracker of `name`, which is stored, unless one runs; answer `reply`
        with a handle once it has loaded."""
        cell = self._cell(name)
        if cell.status is ContextStatus.FAILED:
            reject(reply, cell.unavailable())
            return
        if cell.ref is not None:
            resolve(reply, ContextTracker(cell))
            return
        if self._shutdown.closing:
            reject(reply, ShutdownError("the context manager was shut down"))
            return
        ready = new_reply()
        cell.ref = self._factory.start(
            name, self._store, self.actor_ref, ready, writer=self._writer, changes=cell.changes
        )
        self._watch(Watch(name, cell.ref))
        cell.status = ContextStatus.ACTIVE
        cell.failure = None
        self._when_done(ready, self._on_ready, cell, reply)

    def _on_ready(self, ready: Reply[None], cell: Cell, reply: Reply[ContextTracker]) -> None:
        error = ready.exception()
        if error is not None:
            reject(reply, error)
        else:
            resolve(reply, ContextTracker(cell))

    def _op_deactivate(self, request: Deactivate) -> Any:
        reply, name = request.reply, request.name
        if not self._is_running(name):
            cell = self._contexts.get(name)
            if cell is not None and cell.passive:  # passivated: nothing left to stop
                cell.status = ContextStatus.INACTIVE
                self._currents.forget_context(name)
                return None

            def stored(exists: bool) -> None:
                if not exists:
                    raise ContextNotFoundError(name)

            return self._io(name, reply, partial(self._store.exists, name), stored)
        self._pend(name, reply)
        self._stop_tracker(name, ContextInactiveError(name), reply, ContextStatus.INACTIVE)
        return _LATER

    def _stop_tracker(
        self, name: str, error: BaseException, reply: Reply[None], after: ContextStatus
    ) -> None:
        """Stop the tracker of `name` (writing what it has unsaved), then set `after`."""
        stopping = self._contexts.stopping(name)
        if stopping is None:
            cell = self._contexts.cells[name]
            assert cell.ref is not None
            stopping = new_reply()
            self._contexts.set_stopping(name, stopping)
            ref = cell.ref
            try:
                ref.tell(Stop(stopping, error, force=self._shutdown.closing))
            except pykka.ActorDeadError:
                # It stopped itself (passivated) and its Passivated is still on the way:
                # there is nothing left to stop, and nothing unsaved (it wrote that first).
                resolve(stopping, None)
            self._when_done(stopping, self._on_stopped, cell, ref, after)
        self._when_done(stopping, self._pass_on, reply)

    def _on_stopped(
        self, stopping: Reply[None], cell: Cell, ref: pykka.ActorRef[Any], after: ContextStatus
    ) -> None:
        self._contexts.set_stopping(cell.name, None)
        if stopping.exception() is not None and not self._shutdown.closing:
            return  # the tracker could not write and keeps running; the caller is told
        if cell.ref is ref:
            cell.ref = None
            cell.status = after
            cell.failure = None
            self._watch(Unwatch(cell.name, ref))
        self._restarts.forget(cell.name)
        # A switch to it still under way was asked for before the stop (later calls wait for
        # the stop, see _handle_call): it must not make the stopped context current.
        self._currents.stopped(cell.name)

    @staticmethod
    def _pass_on(source: Reply[Any], reply: Reply[Any]) -> None:
        error = source.exception()
        if error is not None:
            reject(reply, error)
        else:
            resolve(reply, source.result())

    def _op_delete_context(self, request: DeleteContext) -> Any:
        reply, name = request.reply, request.name
        if not self._is_running(name):
            cell = self._contexts.get(name)
            if cell is not None and cell.passive:
                # No tracker may start for it while the store deletes it.
                cell.status = ContextStatus.INACTIVE
            self._currents.forget_context(name)
            return self._io(name, reply, partial(self._store.delete, name), self._deleted(name))
        self._pend(name, reply)
        stopped = new_reply()
        self._stop_tracker(name, ContextNotFoundError(name), stopped, ContextStatus.NONEXISTENT)
        self._when_done(stopped, self._delete_after_stop, name, reply)
        return _LATER

    def _delete_after_stop(self, stopped: Reply[None], name: str, reply: Reply[None]) -> None:
        error = stopped.exception()
        if error is not None:
            reject(reply, error)
            return
        self._io(name, reply, partial(self._store.delete, name), self._deleted(name))

    def _deleted(self, name: str) -> Callable[[None], None]:
        """What follows the store's deletion of `name`: forgetting it here."""

        def forget(_: None) -> None:
            self._forget_context(name)

        return forget

    def _forget_context(self, name: str) -> None:
        """A deleted context leaves nothing here: handles that still hold its cell find it
        NONEXISTENT, and a context created later under the name gets a new cell."""
        cell = self._contexts.forget(name)
        if cell is not None:
            cell.status = ContextStatus.NONEXISTENT
            self._close_topic(cell.changes)
        self._restarts.forget(name)

    def _close_topic(self, topic: Topic) -> None:
        """End the subscriptions to a deleted context (after what they buffer)."""
        with contextlib.suppress(pykka.ActorDeadError):  # stopped: it ended them already
            self._hub.tell(CloseTopic(topic))

    def _op_list_contexts(self, request: ListContexts) -> Any:
        reply = request.reply
        return self._io(None, reply, self._store.list_contexts)

    def _op_status(self, request: Status) -> Any:
        reply, name = request.reply, request.name
        cell = self._contexts.get(name)
        if cell is not None and cell.status in (ContextStatus.ACTIVE, ContextStatus.FAILED):
            return cell.status

        def status(exists: bool) -> ContextStatus:
            return ContextStatus.INACTIVE if exists else ContextStatus.NONEXISTENT

        return self._io(None, reply, partial(self._store.exists, name), status)

    def _op_active_contexts(self, request: ActiveContexts) -> list[str]:
        return sorted(
            name
            for name, cell in self._contexts.cells.items()
            if cell.status is ContextStatus.ACTIVE
        )

    # -- persistence and recovery points ----------------------------------------------------

    def _forward(self, name: str, message: Any, reply: Reply[Any]) -> bool:
        """Hand a request to the running tracker of `name`, which answers `reply` itself."""
        cell = self._contexts.get(name)
        if cell is None or cell.ref is None:
            return False
        cell.send(message, reply)
        return True

    def _op_save(self, request: SaveContext) -> Any:
        reply, name = request.reply, request.name
        if self._forward(name, Save(reply), reply):
            return _LATER
        return self._io(None, reply, partial(self._store.head_version, name))

    def _op_load(self, request: LoadContext) -> Any:
        reply, name = request.reply, request.name
        return self._io(None, reply, partial(self._store.read_head, name))

    def _op_create_recovery_point(self, request: CreateRecoveryPoint) -> Any:
        reply, name, label = request.reply, request.name, request.label
        if self._forward(name, MakeRecoveryPoint(label, reply), reply):
            return _LATER
        store = self._store
        return self._io(
            name, reply, lambda: store.create_recovery_point(store.read_head(name), label)
        )

    def _op_list_recovery_points(self, request: ListRecoveryPoints) -> Any:
        reply, name = request.reply, request.name
        return self._io(None, reply, partial(self._store.list_recovery_points, name))

    def _op_restore_recovery_point(self, request: RestoreRecoveryPoint) -> Any:
        reply, name, point_id = request.reply, request.name, request.point_id
        if self._forward(name, Restore(point_id, reply), reply):
            return _LATER
        store = self._store

        def restore() -> State:
            head = store.read_head(name)
            restored = head.successor(store.read_recovery_point(name, point_id))
            store.compare_and_set(restored, head.version)
            return restored

        return self._io(name, reply, restore)

    def _op_recovery_report(self, request: GetRecoveryReport) -> RecoveryReport | None:
        name = request.name
        return self._contexts.reports.get(name)

    def _op_delete_recovery_point(self, request: DeleteRecoveryPoint) -> Any:
        reply, name, point_id = request.reply, request.name, request.point_id
        return self._io(None, reply, partial(self._store.delete_recovery_point, name, point_id))

    # -- adapters ---------------------------------------------------------------------------

    def _op_initialize(self, request: Initialize) -> Any:
        reply, adapter = request.reply, request.adapter
        store = self._store

        def create_if_missing() -> None:
            if not store.exists(DEFAULT_CONTEXT):
                with contextlib.suppress(ContextExistsError):  # another process was first
                    store.create(State.new(DEFAULT_CONTEXT))

        self._switch(adapter, DEFAULT_CONTEXT, reply, create_if_missing)
        return _LATER

    def _op_switch(self, request: Switch) -> Any:
        reply, adapter, name = request.reply, request.adapter, request.name
        self._switch(adapter, name, reply)
        return _LATER

    def _op_create_and_switch(self, request: CreateAndSwitch) -> Any:
        reply, adapter, state = request.reply, request.adapter, request.state
        self._switch(adapter, state.context, reply, partial(self._store.create, state))
        return _LATER

    def _switch(
        self,
        adapter: int,
        name: str,
        reply: Reply[ContextTracker],
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """Make `name` the adapter's current context once it is active; with `prepare`, a
        store call that makes sure it is stored (create it), run first."""
        # The ticket is taken now, in the order of the requests (see actors/_currents.py).
        ticket = self._currents.begin(adapter, name)
        activated = new_reply()
        if prepare is None:
            self._activate(name, activated)
        else:

            def stored(_: None) -> Any:
                self._start(name, activated)
                return _LATER

            self._io(name, activated, prepare, stored)
        self._when_done(activated, self._on_switched, adapter, ticket, reply)

    def _on_switched(
        self, activated: Reply[ContextTracker], adapter: int, ticket: int, reply: Reply[Any]
    ) -> None:
        self._currents.finish(adapter, ticket, succeeded=activated.exception() is None)
        self._pass_on(activated, reply)

    def _op_current_context(self, request: CurrentContext) -> str | None:
        adapter = request.adapter
        return self._currents.current(adapter)

    def _op_current_tracker(self, request: CurrentTracker) -> ContextTracker:
        adapter = request.adapter
        name = self._currents.current(adapter)
        if name is None:
            raise NoCurrentContextError("the adapter has no current context")
        return ContextTracker(self._contexts.cells[name])

    def _on_forget_adapter(self, message: ForgetAdapter) -> None:
        """The adapter was garbage-collected: drop its current context and switch records,
        and end the subscriptions to its switches (after what they buffer)."""
        topic = self._currents.forget_adapter(message.adapter)
        if topic is not None:
            self._close_topic(topic)

    def _op_subscribe_current(self, request: SubscribeCurrent) -> Any:
        reply, adapter, subscription = request.reply, request.adapter, request.subscription
        topic = self._currents.topic(adapter, lambda: Topic(f"adapter #{adapter}", self._hub))
        try:
            self._hub.tell(Register(topic, subscription, reply))
        except pykka.ActorDeadError:
            raise ShutdownError("the context manager was shut down") from None
        return _LATER

    # -- supervision ------------------------------------------------------------------------

    def _on_writer_failed(self, report: WriterFailed) -> None:
        """Start another group writer (it holds nothing to reload) and point every running
        tracker at it, within the supervisor's restart limits; past them, trackers commit
        their own writes (still durable, without group commit)."""
        if report.writer is not self._writer or self._shutdown.closing:
            return
        # The writer holds nothing to reload: it is restarted at once, whatever the backoff.
        decision = self._restarts.failed(_WRITER)
        if not decision.restart:
            logger.error(
                "the group writer failed %d times within %s s: trackers commit their own "
                "writes from now on",
                decision.failures,
                self._config.supervisor.within_seconds,
            )
            self._writer = None
        else:
            logger.warning("the group writer failed; started another")
            self._writer = WriterActor.start(self._store, self.actor_ref)
        for cell in self._contexts.cells.values():
            if cell.ref is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    cell.ref.tell(UseWriter(self._writer))

    def _on_tracker_failed(self, report: TrackerFailed) -> None:
        cell = self._contexts.get(report.name)
        ref = cell.ref if cell is not None else None
        if cell is None or ref is None or ref is not report.tracker or self._shutdown.closing:
            return  # a report from a tracker already replaced or being shut down
        if isinstance(report.error, ContextFailedError):
            # Nothing intact to load: restarting cannot help.
            self._give_up(cell, ref, report.error)
            return
        decision = self._restarts.failed(report.name)
        if not decision.restart:
            error = ContextFailedError(
                f"context {report.name!r} failed {decision.failures} times within "
                f"{self._config.supervisor.within_seconds} s and will not be restarted; last "
                f"error: {report.error!r}"
            )
            error.__cause__ = report.error
            self._give_up(cell, ref, error)
            return
        logger.warning(
            "restarting tracker %r in %.3f s after %r", report.name, decision.delay, report.error
        )
        # At once if the interpreter exits and starts no timer thread (Python 3.12); the
        # tracker may have stopped since it failed: a tell to it must not kill the manager.
        self._timers.tell_after(decision.delay, ref, Restart())

    @staticmethod
    def _give_up(cell: Cell, ref: pykka.ActorRef[Any], error: RecoveryError) -> None:
        logger.error("%s", error)
        cell.status = ContextStatus.FAILED
        cell.failure = error
        with contextlib.suppress(pykka.ActorDeadError):  # stopping anyway: _on_stopped follows
            ref.tell(GiveUp(error))

    # -- passivation ------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._group_commit:
            self._writer = WriterActor.start(self._store, self.actor_ref)
        if self._config.passivate_after is not None:
            self._timers.tell_after(
                self._config.passivate_after / 2, self.actor_ref, Tick(), if_refused="drop"
            )
        interval = self._config.watch_interval
        if interval is not None and self._store.shared_between_processes:
            self._watcher = WatcherActor.start(self._store, interval)

    def _watch(self, message: Watch | Unwatch) -> None:
        if self._watcher is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._watcher.tell(message)

    def _passivate_idle(self) -> None:
        """Ask every running tracker idle for `passivate_after` seconds to stop."""
        period = self._config.passivate_after
        if period is None or self._shutdown.closing:
            return
        idle_since = time.monotonic() - period
        for name, cell in self._contexts.cells.items():
            ref = cell.ref
            if (
                ref is not None
                and cell.status is ContextStatus.ACTIVE
                and self._contexts.stopping(name) is None
            ):
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(Passivate(idle_since))
        self._timers.tell_after(period / 2, self.actor_ref, Tick(), if_refused="drop")

    def _on_passivated(self, message: Passivated) -> None:
        cell = self._contexts.get(message.name)
        if cell is not None and cell.ref is message.tracker:
            self._watch(Unwatch(message.name, message.tracker))
            cell.ref = None  # passive now: status stays ACTIVE
            logger.debug("passivated idle tracker %r", message.name)

    def _deliver(self, message: Deliver) -> None:
        """Hand a request on to its context's tracker, starting the tracker if passivated."""
        request, cell = message.message, self._contexts.get(message.name)
        reply: Reply[Any] = request.reply
        if cell is None or cell.status is not ContextStatus.ACTIVE or self._shutdown.closing:
            reject(reply, cell.unavailable() if cell is not None else ShutdownError("closed"))
            return
        if cell.ref is not None:
            try:
                cell.ref.tell(request)
            except pykka.ActorDeadError:
                cell.ref = None  # it stopped itself and its Passivated is still on the way
            else:
                return
        try:
            self._activate(message.name, new_reply())
            self._tell_tracker(cell, request)  # queued behind the new tracker's load, in order
        except Exception as exc:  # noqa: BLE001 - answered to the caller
            reject(reply, exc)

    @staticmethod
    def _tell_tracker(cell: Cell, message: Any) -> None:
        # A separate function: mypy would otherwise keep `cell.ref` narrowed to None from
        # before _activate() set it.
        assert cell.ref is not None
        cell.ref.tell(message)

    # -- shutdown ---------------------------------------------------------------------------

    def _op_shutdown(self, request: Shutdown) -> Any:
        self._shutdown.begin(request.reply)  # answered from on_stop()
        return _LATER


_HANDLERS: dict[type[ManagerRequest], Callable[[ManagerActor, Any], Any]] = {
    ActiveContexts: ManagerActor._op_active_contexts,
    CreateAndSwitch: ManagerActor._op_create_and_switch,
    CreateContext: ManagerActor._op_create_context,
    CreateRecoveryPoint: ManagerActor._op_create_recovery_point,
    CurrentContext: ManagerActor._op_current_context,
    CurrentTracker: ManagerActor._op_current_tracker,
    Deactivate: ManagerActor._op_deactivate,
    DeleteContext: ManagerActor._op_delete_context,
    DeleteRecoveryPoint: ManagerActor._op_delete_recovery_point,
    GetRecoveryReport: ManagerActor._op_recovery_report,
    GetTracker: ManagerActor._op_get_tracker,
    Initialize: ManagerActor._op_initialize,
    ListContexts: ManagerActor._op_list_contexts,
    ListRecoveryPoints: ManagerActor._op_list_recovery_points,
    LoadContext: ManagerActor._op_load,
    RestoreRecoveryPoint: ManagerActor._op_restore_recovery_point,
    SaveContext: ManagerActor._op_save,
    Shutdown: ManagerActor._op_shutdown,
    Status: ManagerActor._op_status,
    SubscribeCurrent: ManagerActor._op_subscribe_current,
    Switch: ManagerActor._op_switch,
}
"""The handler of each request type: a new request is a class and one entry here."""
