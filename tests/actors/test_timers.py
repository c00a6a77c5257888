"""Clocks and timers: delayed tells on one clock thread, and a manual clock tests advance."""

from __future__ import annotations

import threading

import pykka
import pytest

from actors._clock import SystemClock
from actors._timers import Timers
from actors.testing import ManualClock

WAIT = 10


class FakeRef:
    def __init__(self, alive: bool = True) -> None:
        self.told: list[object] = []
        self.alive = alive
        self.event = threading.Event()

    def tell(self, message: object) -> None:
        if not self.alive:
            raise pykka.ActorDeadError("stopped")
        self.told.append(message)
        self.event.set()


@pytest.fixture
def clock():
    clock = SystemClock()
    yield clock
    clock.close()


def test_no_delay_tells_at_once_and_a_stopped_actor_is_skipped():
    clock = ManualClock()
    timers, ref = Timers(clock), FakeRef()
    timers.tell_after(0, ref, "now")
    assert ref.told == ["now"]
    timers.tell_after(0, FakeRef(alive=False), "lost")  # no error
    assert len(timers) == 0


def test_a_delayed_tell_arrives_on_the_clock_thread_and_leaves_nothing(clock):
    timers, ref = Timers(clock), FakeRef()
    timers.tell_after(0.01, ref, "later")
    assert ref.event.wait(WAIT)
    assert ref.told == ["later"]
    assert len(timers) == 0


def test_cancel_all_stops_pending_tells():
    clock = ManualClock()
    timers, ref = Timers(clock), FakeRef()
    timers.tell_after(60, ref, "never")
    assert len(timers) == 1
    timers.cancel_all()
    assert len(timers) == 0
    clock.advance(120)
    assert ref.told == []


def test_a_manual_clock_runs_callbacks_in_deadline_order_at_their_time():
    clock = ManualClock(start=100.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(2, lambda: seen.append(("b", clock.now())))
    clock.call_later(1, lambda: seen.append(("a", clock.now())))
    cancelled = clock.call_later(1.5, lambda: seen.append(("x", clock.now())))
    cancelled.cancel()
    clock.advance(0.5)
    assert seen == []
    assert clock.pending == 2
    clock.advance(5)
    assert seen == [("a", 101.0), ("b", 102.0)]
    assert clock.now() == 105.5
    assert clock.pending == 0


def test_a_callback_scheduled_by_a_callback_runs_if_due_within_the_same_advance():
    clock = ManualClock()
    seen: list[float] = []

    def first() -> None:
        seen.append(clock.now())
        clock.call_later(1, lambda: seen.append(clock.now()))

    clock.call_later(1, first)
    clock.advance(3)
    assert seen == [1.0, 2.0]


def test_the_system_clock_keeps_one_thread_for_every_delay(clock):
    before = threading.active_count()
    done = threading.Event()
    count: list[int] = []

    def one() -> None:
        count.append(1)
        if len(count) == 200:
            done.set()

    for i in range(200):
        clock.call_later(0.001 * (i % 7), one)
    assert done.wait(WAIT)
    assert threading.active_count() == before


def test_a_failing_callback_is_logged_and_the_clock_goes_on(clock, caplog):
    ran = threading.Event()
    clock.call_later(0, lambda: 1 / 0)
    clock.call_later(0.001, ran.set)
    assert ran.wait(WAIT)
    assert "scheduled callback failed" in caplog.text


def test_a_closed_clock_drops_what_is_pending_and_what_comes_later():
    clock = SystemClock()
    ref = FakeRef()
    timers = Timers(clock)
    timers.tell_after(60, ref, "pending")
    clock.close()
    late = clock.call_later(0.001, lambda: ref.tell("late"))
    assert late.cancelled
    assert ref.told == []
