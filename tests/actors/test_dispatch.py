"""The pooled actor kind: Pykka's API on a bounded pool of threads, one message at a time."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors._dispatch import Dispatcher, PooledActor, StopFlag

WAIT = 10


class Counter(PooledActor):
    """Counts messages and records whether two threads ever ran it at once."""

    def __init__(self, dispatcher: Dispatcher, gate: threading.Event | None = None) -> None:
        super().__init__(dispatcher)
        self.count = 0
        self.inside = 0
        self.overlapped = False
        self.threads: set[str] = set()
        self.gate = gate
        self.late: list[Any] = []
        self.started_in: str | None = None

    def on_start(self) -> None:
        self.started_in = threading.current_thread().name

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        self.overlapped |= self.inside > 1
        self.threads.add(threading.current_thread().name)
        try:
            if message == "block" and self.gate is not None:
                self.gate.wait(WAIT)
            if message == "exit":
                raise SystemExit(3)
            if message == "boom":
                raise RuntimeError("boom")
            self.count += 1
            return self.count
        finally:
            self.inside -= 1

    def on_late_message(self, message: Any) -> None:
        self.late.append(message)

    def read(self) -> int:
        return self.count


def actor_of(ref: pykka.ActorRef[Any]) -> Any:
    actor = ref._actor_weakref()
    assert actor is not None
    return actor


@pytest.fixture
def dispatcher():
    dispatcher = Dispatcher(4, throughput=8)
    dispatcher.prestart()
    yield dispatcher
    pykka.ActorRegistry.stop_all(timeout=WAIT)
    dispatcher.close()


def test_an_actor_handles_one_message_at_a_time_from_many_senders(dispatcher):
    ref = Counter.start(dispatcher)
    senders = [
        threading.Thread(target=lambda: [ref.tell("n") for _ in range(500)]) for _ in range(8)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(WAIT)
    assert ref.ask("n", timeout=WAIT) == 4001
    actor = ref.proxy()
    assert actor.overlapped.get(timeout=WAIT) is False
    assert actor.read().get(timeout=WAIT) == 4001  # proxies work as with ThreadingActor


def test_many_actors_share_at_most_the_pool_threads(dispatcher):
    before = threading.active_count()
    refs = [Counter.start(dispatcher) for _ in range(300)]
    futures = [ref.ask("n", block=False) for ref in refs for _ in range(3)]
    assert [f.get(timeout=WAIT) for f in futures][-3:] == [1, 2, 3]
    assert dispatcher.started <= 4
    assert threading.active_count() <= before + 3  # one was prestarted
    names = {ref.proxy().started_in.get(timeout=WAIT) for ref in refs}
    assert all(name and "-pool-" in name for name in names)


def test_a_blocked_actor_holds_one_thread_and_the_others_go_on(dispatcher):
    gate = threading.Event()
    slow = Counter.start(dispatcher, gate)
    slow.tell("block")
    others = [Counter.start(dispatcher) for _ in range(20)]
    assert [ref.ask("n", timeout=WAIT) for ref in others] == [1] * 20
    gate.set()
    assert slow.ask("n", timeout=WAIT) == 2


class Probe(PooledActor):
    """Answers with how many messages `other` had handled when the probe ran."""

    def __init__(self, dispatcher: Dispatcher, other: Counter) -> None:
        super().__init__(dispatcher)
        self.other = other

    def on_receive(self, message: Any) -> int:
        return self.other.count


def test_a_busy_actor_yields_its_thread_after_throughput_messages():
    dispatcher = Dispatcher(1, throughput=8)  # one thread: fairness is all there is
    try:
        gate = threading.Event()
        busy = Counter.start(dispatcher, gate)
        busy.tell("block")  # holds the only thread while its mailbox fills
        for _ in range(2_000):
            busy.tell("n")
        probe = Probe.start(dispatcher, actor_of(busy))
        answer = probe.ask("how far", block=False)
        gate.set()
        seen = answer.get(timeout=WAIT)
        # The probe ran after a slice of the busy actor, not after all its messages.
        assert seen < 100
        assert busy.ask("n", timeout=WAIT) == 2_002
    finally:
        pykka.ActorRegistry.stop_all(timeout=WAIT)
        dispatcher.close()


def test_an_error_with_a_reply_goes_to_the_caller_and_the_actor_lives(dispatcher):
    ref = Counter.start(dispatcher)
    with pytest.raises(RuntimeError, match="boom"):
        ref.ask("boom", timeout=WAIT)
    assert ref.ask("n", timeout=WAIT) == 1


def test_system_exit_in_one_actor_fails_it_alone(dispatcher):
    victim, bystander = Counter.start(dispatcher), Counter.start(dispatcher)
    victim.tell("exit")
    with pytest.raises(pykka.ActorDeadError):
        victim.ask("n", timeout=WAIT)
    assert bystander.ask("n", timeout=WAIT) == 1


def test_a_stopped_actor_answers_asks_and_hands_tells_to_on_late_message(dispatcher):
    ref = Counter.start(dispatcher)
    actor = actor_of(ref)
    ref.stop(timeout=WAIT)
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("n")
    # A tell that passed the liveness check just before the stop lands in the mailbox:
    # the actor runs again to answer it, instead of leaving it there for ever.
    arrived = threading.Event()
    actor.on_late_message = lambda message: (actor.late.append(message), arrived.set())
    actor.actor_inbox.put(pykka._envelope.Envelope("late"))
    assert arrived.wait(WAIT)
    assert actor.late == ["late"]


def test_a_closed_dispatcher_still_answers_what_reaches_a_stopped_actor(dispatcher):
    ref = Counter.start(dispatcher)
    actor = actor_of(ref)
    ref.stop(timeout=WAIT)
    dispatcher.close()
    actor.actor_inbox.put(pykka._envelope.Envelope("late"))
    assert actor.late == ["late"]  # answered in the putting thread: no pool thread is left


def test_close_ends_every_thread(dispatcher):
    refs = [Counter.start(dispatcher) for _ in range(50)]
    for ref in refs:
        ref.ask("n", timeout=WAIT)
    workers = list(dispatcher._workers)
    for ref in refs:
        ref.stop(timeout=WAIT)
    dispatcher.close()
    for worker in workers:
        worker.join(WAIT)
    assert not any(worker.is_alive() for worker in workers)


def test_a_dispatcher_needs_a_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        Dispatcher(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_none_of_our_threads_takes_the_process_signals():
    # Python runs signal handlers in the main thread only: a Ctrl-C the kernel handed to one
    # of our threads would leave a main thread waiting in join() unaware of it.
    from actors import create_manager  # noqa: PLC0415

    def blocked(thread: threading.Thread) -> int:
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        (mask,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk")]
        return int(mask, 16)

    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    with create_manager(f"sqlite:///{tempfile.mkdtemp()}/s.db") as manager:
        manager.create_context("c").get(timeout=WAIT)
        manager.get_tracker("c").get(timeout=WAIT).set("n", 1).get(timeout=WAIT)
        prefixes = ("context-clock", "tracker-pool", "ManagerActor", "WriterActor", "StoreWorker")
        ours = [t for t in threading.enumerate() if t.name.startswith(prefixes)]
        assert {t.name.split("-")[0] for t in ours} >= {"context", "tracker", "ManagerActor"}
        for thread in ours:
            assert blocked(thread) & wanted == wanted, thread.name
    assert blocked(threading.main_thread()) & wanted == 0  # the caller's mask is left as it was


def test_pooled_actors_have_distinct_uuid_urns_the_registry_finds(dispatcher):
    refs = [Counter.start(dispatcher) for _ in range(50)]
    urns = {ref.actor_urn for ref in refs}
    assert len(urns) == len(refs)
    for ref in refs:
        assert ref.actor_urn.startswith("urn:uuid:")
        assert uuid.UUID(ref.actor_urn.removeprefix("urn:uuid:")).version == 4
        assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert set(pykka.ActorRegistry.get_by_class(Counter)) == set(refs)
    assert all(ref.stop(timeout=WAIT) for ref in refs)  # stop() waits, as Pykka's does
    assert not any(ref.is_alive() for ref in refs)
    assert pykka.ActorRegistry.get_by_class(Counter) == []


def test_actor_stopped_is_set_when_the_actor_stops_and_wakes_its_waiters(dispatcher):
    ref = Counter.start(dispatcher)
    stopped = ref.actor_stopped
    assert not stopped.is_set()
    assert stopped.wait(0) is False
    woken = threading.Event()
    outcome: list[bool] = []

    def waiter() -> None:
        outcome.append(stopped.wait(WAIT))
        woken.set()

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in threads:
        thread.start()
    ref.stop()
    assert woken.wait(WAIT)
    for thread in threads:
        thread.join(WAIT)
    assert outcome == [True, True, True]
    assert stopped.is_set()
    assert stopped.wait(0) is True


def test_a_stop_flag_behaves_as_an_event():
    flag = StopFlag()
    assert not flag.is_set()
    assert flag.wait(0.0) is False  # makes its Event
    flag.set()
    assert flag.is_set()
    assert flag.wait(0.0) is True
    flag.clear()
    assert not flag.is_set()
    assert flag.wait(0.0) is False
    flag.set()
    assert flag.wait(None) is True
