"""ManagerActor: creates, supervises and stops the trackers of one store (the supervisor).

A shell: its mailbox, one table from request type to handler (`_HANDLERS`), the wait of a
request behind a transition of its context, store I/O through the `StoreWorker`, and the
chaining of other actors' replies back to itself (`Done`). It never waits on another actor:
when an operation needs a tracker's answer (activation, deactivation, shutdown), it chains a
callback on the tracker's reply that comes back as a `Done` message, and answers its own
caller then. Its parts (docs/architecture.md, "The manager's parts"): the requests
(`_requests`), their handlers (`_context_ops`, `_read_ops`, `_recovery_ops`,
`_history_ops`, `_adapter_ops`), the `ContextRegistry`, the `RestartPolicy`, supervision and
passivation (`_supervision`), `Currents`, the `ShutdownSequence` and `Timers`.
`ContextManager` is its facade.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from actors import _adapter_ops as adapter_ops
from actors import _context_ops as context_ops
from actors import _history_ops as history_ops
from actors import _read_ops as read_ops
from actors import _recovery_ops as recovery_ops
from actors import _supervision as supervision
from actors._cell import Cell
from actors._changes import Topic
from actors._clock import Clock
from actors._currents import Currents
from actors._dispatch import Dispatcher
from actors._exit import forget_manager
from actors._factory import ContextTrackerFactory
from actors._future import Reply, new_reply, reject, resolve
from actors._handle import ContextTracker
from actors._lease import LeaseKeeper, Leases, new_owner_id
from actors._messages import (
    Deliver,
    Done,
    ForgetAdapter,
    ListStopping,
    Passivated,
    Recovered,
    Tick,
    TrackerFailed,
    WriterFailed,
)
from actors._metrics import NO_METRICS, Instruments
from actors._registry import ContextRegistry
from actors._requests import (
    DEFAULT_CONTEXT,
    LATER,
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
    GetStates,
    GetStats,
    GetTracker,
    Initialize,
    ListContexts,
    ListRecoveryPoints,
    LoadContext,
    LoadVersion,
    ManagerRequest,
    ReadHistory,
    RestoreRecoveryPoint,
    SaveContext,
    Shutdown,
    Status,
    SubscribeCurrent,
    Switch,
)
from actors._restart import RestartPolicy
from actors._shutdown import ShutdownSequence
from actors._stats import stats
from actors._store_io import RunIO, StoreWorker
from actors._subscription_hub import SubscriptionHub
from actors._subscription_messages import CloseTopic
from actors._teardown import ThreadedActor
from actors._tell import tell_quietly
from actors._timers import Timers
from actors._watcher import Unwatch, Watch, WatcherActor
from actors._writer import WriterActor
from storage import (
    ContextError,
    ShutdownError,
    Store,
)

__all__ = ["DEFAULT_CONTEXT", "ManagerActor"]

logger = logging.getLogger("actors.manager")

_POOL_EXIT = 1.0
"""Seconds a stopping manager waits for its dispatcher's threads to end."""


class ManagerActor(ThreadedActor):
    """Creates, supervises and stops the trackers of one store; see `ContextManager`."""

    def __init__(
        self,
        store: Store,
        factory: ContextTrackerFactory,
        owns_store: bool,
        group_commit: bool,
        clock: Clock,
        *,
        owns_clock: bool = False,
        metrics: Instruments = NO_METRICS,
        handles: dict[str, ContextTracker] | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._clock = clock  # every delay and idle time of the manager and its trackers
        self._owns_clock = owns_clock  # made for it by create_manager(): closed when it stops
        self._metrics = metrics
        self._group_commit = group_commit
        self._writer: pykka.ActorRef[Any] | None = None  # started in on_start
        self._factory = factory
        self._config = factory.config
        self._owns_store = owns_store
        # Each context's cell, report and transition in flight: calls that act on a context
        # wait for its deactivation, deletion or store call under way, so that they never act
        # on a half-stopped context or on what was known before the store answered.
        # `handles` is the facade's: the handles it gives out without asking (see
        # ContextManager.get_tracker()), which only this actor writes.
        self._contexts = ContextRegistry(
            lambda name: Cell(name, self._config.ask_timeout, self.actor_ref, self._hub),
            handles,
        )
        # The restart history of each tracker (by context name) and of the writer.
        self._restarts = RestartPolicy(self._config.supervisor, clock.now)
        self._currents = Currents()  # each adapter's current context
        self._timers = Timers(clock)  # restarts and passivation ticks
        self._shutdown = ShutdownSequence(self)
        # The subscriptions to our contexts and adapters live in the hub, so they outlive
        # every tracker; each adapter's switches are published to a topic of its own.
        self._hub = SubscriptionHub.start(self._config.exit_timeout, metrics)
        self._io_worker = StoreWorker.start()
        # The threads its trackers share; closed once they have all stopped.
        self._dispatcher = Dispatcher(
            self._config.tracker_threads, name="tracker", queued=metrics.queued
        )
        self._dispatcher.prestart()
        self._watcher: pykka.ActorRef[Any] | None = None  # started in on_start
        self._leases: Leases | None = None  # with TrackerConfig.leases: started in on_start

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
            supervision.on_tracker_failed(self, message)
        elif isinstance(message, WriterFailed):
            supervision.on_writer_failed(self, message)
        elif isinstance(message, Recovered):
            self._contexts.reports[message.report.context] = message.report
        elif isinstance(message, Deliver):
            supervision.deliver(self, message)
        elif isinstance(message, Passivated):
            supervision.on_passivated(self, message)
        elif isinstance(message, Tick):
            supervision.passivate_idle(self)
        elif isinstance(message, ListStopping):
            resolve(message.reply, self._contexts.all_stopping())
        elif isinstance(message, ForgetAdapter):
            adapter_ops.on_forget_adapter(self, message)
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
            if result is not LATER:
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
        # Its trackers have stopped (or, stopped from outside, are stopping): their threads
        # end before shutdown() is answered, unless one is stuck in a store call.
        self._dispatcher.close(timeout=_POOL_EXIT)
        self._shutdown.teardown()
        if self._owns_clock:
            self._clock.close()

    def on_late_message(self, message: Any) -> None:
        self._shutdown.answer_late(message)

    def _when_done(self, reply: Reply[Any], callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(reply, *args)` in this actor once `reply` is settled."""
        ref = self.actor_ref

        def come_back(_: Reply[Any]) -> None:
            # If the manager stopped meanwhile, on_stop() answered whoever waits.
            tell_quietly(ref, Done(callback, (reply, *args)))

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
        what `then(result)` returns (unless `LATER`: `then` answers itself), here in the
        manager's thread. Calls naming context `name` meanwhile wait for it (`_pend`), so
        that none acts on what the manager knew before the store answered."""
        done = new_reply()
        try:
            self._io_worker.tell(RunIO(work, done))
        except pykka.ActorDeadError:
            reject(reply, ShutdownError("the context manager was shut down"))
            return LATER
        if name is not None:
            self._pend(name, done)
        self._when_done(done, self._after_io, reply, then)
        return LATER

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
                if result is not LATER:
                    resolve(reply, result)
                return
        if error is None:
            resolve(reply, done.result())
            return
        if not isinstance(error, ContextError):  # a store or programming error
            logger.error("context manager failed in a store call", exc_info=error)
        reject(reply, error)

    # -- contexts ---------------------------------------------------------------------------

    @staticmethod
    def _pass_on(source: Reply[Any], reply: Reply[Any]) -> None:
        error = source.exception()
        if error is not None:
            reject(reply, error)
        else:
            resolve(reply, source.result())

    def _close_topic(self, topic: Topic) -> None:
        """End the subscriptions to a deleted context (after what they buffer)."""
        tell_quietly(self._hub, CloseTopic(topic))  # stopped: it ended them already

    def on_start(self) -> None:
        if self._group_commit:
            self._writer = WriterActor.start(
                self._dispatcher, self._store, self.actor_ref, self._metrics
            )
        if self._config.passivate_after is not None:
            self._timers.tell_after(self._config.passivate_after / 2, self.actor_ref, Tick())
        interval = self._config.watch_interval
        if interval is not None and self._store.shared_between_processes:
            self._watcher = WatcherActor.start(self._store, interval, self._clock)
        policy = self._config.leases
        if policy is not None:
            owner = policy.owner or new_owner_id()
            keeper = LeaseKeeper.start(self._store, policy, owner, self._clock)
            self._leases = Leases(policy, owner, keeper, self._metrics)

    def _watch(self, message: Watch | Unwatch) -> None:
        if self._watcher is not None:
            tell_quietly(self._watcher, message)

    # -- shutdown ---------------------------------------------------------------------------

    def _op_shutdown(self, request: Shutdown) -> Any:
        self._shutdown.begin(request.reply)  # answered from on_stop()
        return LATER


_HANDLERS: dict[type[ManagerRequest], Callable[[ManagerActor, Any], Any]] = {
    ActiveContexts: context_ops.active_contexts,
    CreateAndSwitch: adapter_ops.create_and_switch,
    CreateContext: context_ops.create_context,
    CreateRecoveryPoint: recovery_ops.create_recovery_point,
    CurrentContext: adapter_ops.current_context,
    CurrentTracker: adapter_ops.current_tracker,
    Deactivate: context_ops.deactivate,
    DeleteContext: context_ops.delete_context,
    DeleteRecoveryPoint: recovery_ops.delete_recovery_point,
    GetRecoveryReport: recovery_ops.recovery_report,
    GetStates: read_ops.get_states,
    GetStats: stats,
    GetTracker: context_ops.get_tracker,
    Initialize: adapter_ops.initialize,
    ListContexts: context_ops.list_contexts,
    ListRecoveryPoints: recovery_ops.list_recovery_points,
    LoadContext: recovery_ops.load,
    LoadVersion: history_ops.load_version,
    ReadHistory: history_ops.history,
    RestoreRecoveryPoint: recovery_ops.restore_recovery_point,
    SaveContext: recovery_ops.save,
    Shutdown: ManagerActor._op_shutdown,
    Status: context_ops.status,
    SubscribeCurrent: adapter_ops.subscribe_current,
    Switch: adapter_ops.switch,
}
"""The handler of each request type: a new request is a class and one entry here."""
