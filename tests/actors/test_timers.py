"""Timers: delayed tells, and what happens when the interpreter refuses a timer thread."""

from __future__ import annotations

import threading

import pykka

from actors._timers import Timers


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


def test_no_delay_tells_at_once_and_a_stopped_actor_is_skipped():
    timers, ref = Timers(), FakeRef()
    timers.tell_after(0, ref, "now")
    assert ref.told == ["now"]
    timers.tell_after(0, FakeRef(alive=False), "lost")  # no error
    assert len(timers) == 0


def test_a_delayed_tell_arrives_and_leaves_nothing():
    timers, ref = Timers(), FakeRef()
    timers.tell_after(0.01, ref, "later")
    assert ref.event.wait(10)
    assert ref.told == ["later"]


def test_cancel_all_stops_pending_tells():
    timers, ref = Timers(), FakeRef()
    timers.tell_after(60, ref, "never")
    assert len(timers) == 1
    timers.cancel_all()
    assert len(timers) == 0
    assert ref.told == []


def test_a_refused_timer_tells_at_once_or_drops(monkeypatch):
    def refuse(_timer: threading.Timer) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Timer, "start", refuse)
    timers, ref = Timers(), FakeRef()
    timers.tell_after(60, ref, "restart")
    timers.tell_after(60, ref, "tick", if_refused="drop")
    assert ref.told == ["restart"]
    assert len(timers) == 0
