"""A pooled Pykka actor kind: many actors share a bounded pool of threads (a dispatcher).

Pykka's `ThreadingActor` gives each actor an OS thread for its whole life; 10,000 active
contexts would be 10,000 threads, and every activation would start one. `PooledActor` keeps
Pykka's API (`start()`, refs, proxies, `ask`/`tell`, futures, `ActorRegistry`, `on_start`,
`on_receive`, `on_stop`, `on_failure`) but runs on a `Dispatcher`, as Akka's dispatchers and
Orleans' scheduler run many actors on a few threads:

- An actor's mailbox is a deque. Putting a message in it schedules the actor on its
  dispatcher unless the actor is scheduled or running already.
- A dispatcher thread runs a scheduled actor for one *slice*: up to `throughput` messages,
  one at a time, as Pykka's own loop would; then the actor is scheduled again if messages
  are left (behind the others waiting), so one busy actor cannot hold a thread for ever,
  and an actor with a steady stream of messages keeps its thread without a hand-off.
- At most one thread runs an actor at a time: a message is handled only by the thread that
  holds the actor's *token*. The token is an item in a one-slot deque: taking it is a
  `pop()`, which exactly one thread can win, and putting it back an `append()` (both atomic,
  in CPython with or without the GIL). This is the compare-and-set on mailbox status that
  Akka uses; it is not a lock, since nobody ever waits for it.
- Threads start on demand, up to `threads`, and stay until `close()`.
- `tell_here()` lets one pooled actor hand a message to another that is idle and have it
  handled at once in its own thread, instead of waking a pool thread for it (a hand-off
  saved): a tracker so runs the group writer for its lone write (actors/_writer.py).
- Starting one is cheap (a context's activation starts its tracker in the manager's
  thread): its URN comes from a counter, not `uuid4()` (a system call, during which the
  GIL is given up); `actor_stopped` is a flag with `threading.Event`'s interface that makes
  an `Event` only if someone waits on it (Pykka's `Event` is a `Condition`, a lock and a
  deque: five objects more for the garbage collector to walk per live actor); and its
  "Starting" debug line is formatted only when debug logging is on.

What a pooled actor must not do is wait long: a thread it holds serves nobody else
meanwhile. Our trackers wait only for their store (bounded by the store's own timeouts);
callbacks of subscriptions, which run user code, keep threads of their own.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
import uuid
from itertools import count
from typing import Any, Self

import pykka
from pykka._envelope import Envelope  # what ActorRef.tell() puts in a mailbox

from actors._exit import start_timer
from actors._metrics import Histogram
from actors._teardown import LateMessages, answer_mailbox

__all__ = ["Dispatcher", "PooledActor", "post", "tell_here"]

logger = logging.getLogger("actors.dispatch")

_TOKEN = object()
_CLOSE = None
_names = count()

_URN_PREFIX = uuid.uuid4().urn[:-12]
"""A random UUID of this process but its last 12 hex digits, which `_urns` numbers: every
pooled actor's URN is still a well-formed, version-4 UUID URN, unique in the process."""
_urns = count()

_pykka_logger = logging.getLogger("pykka")


class Dispatcher:
    """A bounded pool of daemon threads running `PooledActor`s, a slice at a time."""

    def __init__(
        self,
        threads: int,
        *,
        throughput: int = 64,
        name: str = "context",
        queued: Histogram | None = None,
    ) -> None:
        if threads < 1:
            msg = f"a dispatcher needs at least one thread, not {threads}"
            raise ValueError(msg)
        self.threads = threads
        self.throughput = throughput
        self.queued = queued
        """Where each slice records how many messages its actor had waiting, if anywhere."""
        self._name = f"{name}-pool-{next(_names)}"
        self._ready: queue.SimpleQueue[PooledActor | None] = queue.SimpleQueue()
        # A slot per thread not started yet, and an item per thread waiting for work: single
        # deque operations, so that no lock is needed to decide whether to start one more.
        # The decision may start a thread that finds nothing to do; it never leaves an actor
        # waiting while a thread could still be started.
        self._slots = collections.deque(range(threads))
        self._idle: collections.deque[object] = collections.deque()
        self._workers: list[threading.Thread] = []
        self._closed = False

    def prestart(self) -> None:
        """Start a thread now, in the program's own flow: Python 3.12 refuses to start
        threads once the main thread has ended, and a program's remaining threads may
        still activate contexts then."""
        if not self._workers:
            self._start_worker()

    def __repr__(self) -> str:
        return f"<Dispatcher {self._name} {len(self._workers)}/{self.threads} threads>"

    @property
    def started(self) -> int:
        """How many threads it has started (they stay until `close()`)."""
        return len(self._workers)

    def schedule(self, actor: PooledActor) -> None:
        """Run a slice of `actor` on a pool thread (the caller holds the actor's token)."""
        if self._closed:
            actor._run_slice()  # closed: only stopped actors answer what reaches them
            return
        self._ready.put(actor)
        # More scheduled actors than idle threads to take them: start one more thread. (A
        # thread counts as idle from just before it waits until it has taken an actor, so
        # one that is about to take another actor is not counted as free for this one.)
        if self._ready.qsize() > len(self._idle):
            self._start_worker()

    def _start_worker(self) -> None:
        try:
            slot = self._slots.popleft()
        except IndexError:
            return  # every thread is started: the actor waits for one
        thread = threading.Thread(target=self._work, name=f"{self._name}-{slot}")
        if start_timer(thread):
            self._workers.append(thread)
        else:
            self._slots.append(slot)  # the interpreter is exiting: the threads we have do

    def _work(self) -> None:
        ready, idle = self._ready, self._idle
        while True:
            idle.append(None)
            actor = ready.get()
            idle.pop()
            if actor is _CLOSE:
                return
            try:
                actor._run_slice()
            except BaseException:  # pragma: no cover - _run_slice handles what actors raise
                logger.exception("a dispatcher thread failed running %s", actor)

    def close(self, timeout: float = 0.0) -> None:
        """Let each thread finish what is scheduled before this, then end; wait up to
        `timeout` seconds for them (never from one of them). Actors that reach a closed
        dispatcher run in the thread that tells them (they are stopped)."""
        if not self._closed:
            self._closed = True
            for _ in self._workers:
                self._ready.put(_CLOSE)
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))


def post(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell the pooled actor `ref` `message` whether or not it has stopped. Pykka's `tell()`
    raises `ActorDeadError` for a stopped actor, and a sender that then takes another route
    (through the manager) can overtake its own earlier message still in the mailbox; a
    stopped pooled actor answers what reaches it (`on_late_message`) in mailbox order, so
    posting keeps each sender's calls in the order it made them."""
    ref.actor_inbox.put(Envelope(message))


def tell_here(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell the pooled actor `ref` `message` and, if it is idle (neither running nor
    scheduled), handle that message now, in this thread; anything that came in meanwhile
    goes back to its dispatcher. If it is busy, its running slice takes the message, as a
    `tell()` would leave it. Raises `ActorDeadError` as `tell()` does.

    For a pooled actor handing work to another one that it would otherwise wait for: no
    pool thread is woken, and the work is done while this thread holds the GIL anyway. The
    receiver must not call back into the sender synchronously (messages are fine: the
    sender's token is held, so they wait in its mailbox)."""
    mailbox = ref.actor_inbox
    if not isinstance(mailbox, _Mailbox):
        ref.tell(message)  # not a pooled actor: it has a thread of its own
        return
    if not ref.is_alive():
        raise pykka.ActorDeadError(f"{ref} not found")
    mailbox._messages.append(Envelope(message))
    try:
        mailbox._token.pop()
    except IndexError:
        return  # running or scheduled: the holder of its token sees the message
    assert mailbox.actor is not None
    mailbox.actor._run_slice(budget=1)


class _Mailbox:
    """A pooled actor's inbox (Pykka's `ActorInbox` protocol): putting schedules it."""

    __slots__ = ("_messages", "_token", "actor")

    def __init__(self) -> None:
        self._messages: collections.deque[Any] = collections.deque()
        # Empty until the actor starts: messages sent before wait for the start's slice.
        self._token: collections.deque[object] = collections.deque(maxlen=1)
        self.actor: PooledActor | None = None

    def put(self, envelope: Any, /) -> None:
        self._messages.append(envelope)
        self.schedule()

    def get(self) -> Any:
        return self._messages.popleft()

    def empty(self) -> bool:
        return not self._messages

    def __len__(self) -> int:
        return len(self._messages)

    def schedule(self) -> None:
        """Schedule the actor, unless another thread holds its token (it runs or is
        scheduled, and will see the message)."""
        try:
            self._token.pop()
        except IndexError:
            return
        assert self.actor is not None
        self.actor._dispatcher.schedule(self.actor)

    def release(self) -> None:
        """Give the token back; take it again if a message came in meanwhile."""
        self._token.append(_TOKEN)
        if self._messages:
            self.schedule()


class StopFlag:
    """`threading.Event`'s interface (`is_set`, `set`, `clear`, `wait`) for a pooled actor's
    `actor_stopped`, which is read far more than it is waited on (Pykka itself only reads
    and sets it): a bool, and an `Event` made by the first `wait()`.

    No lock: the waiters' `Event` is put in place with one `dict.setdefault` (atomic under
    the GIL, so every waiter gets the same one), and each side writes its half before it
    reads the other's (`set()`: the flag, then the event; `wait()`: the event, then the
    flag), so a waiter that saw the flag unset waits on an event that `set()` then sees."""

    def __init__(self) -> None:
        self._set = False

    def __repr__(self) -> str:
        return f"<StopFlag {'set' if self._set else 'unset'}>"

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event: threading.Event | None = getattr(self, "_event", None)
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._set = False
        event: threading.Event | None = getattr(self, "_event", None)
        if event is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        event: threading.Event = vars(self).setdefault("_event", threading.Event())
        return self.is_set() or event.wait(timeout)  # set() may have come before the event


class PooledActor(LateMessages, pykka.Actor):
    """A Pykka actor that runs on a `Dispatcher` instead of a thread of its own."""

    records_queue = True
    """Whether its slices record their waiting messages in the dispatcher's `queued`."""

    def __init__(self, dispatcher: Dispatcher, *_args: Any, **_kwargs: Any) -> None:
        # What pykka.Actor.__init__ sets (it does nothing else), made cheaper: see the
        # module docstring.
        self.actor_urn = f"{_URN_PREFIX}{next(_urns) & 0xFFFFFFFFFFFF:012x}"
        self.actor_inbox = _Mailbox()
        self.actor_stopped = StopFlag()  # type: ignore[assignment] # Event's interface
        self._actor_ref = pykka.ActorRef(self)
        self._dispatcher = dispatcher
        self._started = False
        self._mailbox.actor = self

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """`pykka.Actor.start()`: make the actor, register it in `pykka.ActorRegistry`,
        schedule its first slice (which runs `on_start()`); the debug lines Pykka writes
        are formatted only if they are logged."""
        obj = cls(*args, **kwargs)
        ref = obj.actor_ref
        pykka.ActorRegistry.register(ref)
        if _pykka_logger.isEnabledFor(logging.DEBUG):
            _pykka_logger.debug("Starting %s", obj)
        obj._start_actor_loop()
        return ref

    @staticmethod
    def _create_actor_inbox() -> _Mailbox:
        return _Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    @property
    def _mailbox(self) -> _Mailbox:
        inbox = self.actor_inbox
        assert isinstance(inbox, _Mailbox)
        return inbox

    def _start_actor_loop(self) -> None:
        self._dispatcher.schedule(self)  # the first slice runs on_start()

    def _run_slice(self, budget: int = 0) -> None:
        """Run `on_start()` (first slice), then up to `budget` messages (default: the
        dispatcher's `throughput`), as Pykka's loop does; once stopped, answer what is left.
        Then give the token back."""
        mailbox = self._mailbox
        messages, stopped = mailbox._messages, self.actor_stopped  # the loop's hot path
        try:
            if not self._started:
                self._started = True
                self._actor_loop_setup()
            queued = self._dispatcher.queued
            if queued is not None and self.records_queue:
                queued.record(len(messages))
            budget = budget or self._dispatcher.throughput
            while budget and messages and not stopped.is_set():
                self._handle_envelope(messages.popleft())
                budget -= 1
            if stopped.is_set():
                self._after_stop()
        finally:
            mailbox.release()

    def _handle_envelope(self, envelope: Any) -> None:
        """Pykka's loop body for one message (`_actor_loop_running`), except that an error
        outside `Exception` (a `SystemExit` raised in user code) fails this actor only:
        Pykka would stop every actor of the process from a pool thread."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except BaseException as exc:
            if envelope.reply_to is not None and isinstance(exc, Exception):
                logger.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
                return
            info = sys.exc_info()
            self._handle_failure(*info)
            try:
                self.on_failure(*info)
            except Exception:  # noqa: BLE001 - pykka logs it the same way
                self._handle_failure(*sys.exc_info())
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(info)

    def _after_stop(self) -> None:
        """Stopped: answer whatever is in the mailbox (actors/_teardown.py), now and
        whenever a message comes later (a put after the stop schedules us again)."""
        answer_mailbox(self)
