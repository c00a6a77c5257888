"""ContextRegistry without threads: one record per context in transition, gone when idle."""

from __future__ import annotations

from actors._cell import Cell, ContextStatus
from actors._future import new_reply, resolve
from actors._registry import ContextRegistry
from actors._requests import GetTracker


def _registry() -> ContextRegistry:
    return ContextRegistry(lambda name: Cell(name, 1.0, None))  # type: ignore[arg-type]


def test_a_cell_is_made_once_and_anew_after_deletion():
    registry = _registry()
    cell = registry.cell("a")
    assert registry.cell("a") is cell
    cell.status = ContextStatus.NONEXISTENT
    assert registry.cell("a") is not cell
    assert registry.forget("a") is not None
    assert registry.sizes() == {
        "cells": 0,
        "reports": 0,
        "last errors": 0,
        "transitions": 0,
        "handles": 0,
    }


def test_passive_is_derived_from_status_and_ref():
    cell = _registry().cell("a")
    assert not cell.passive  # inactive
    cell.status = ContextStatus.ACTIVE
    assert cell.passive  # active without a tracker
    cell.ref = object()  # type: ignore[assignment]
    assert not cell.passive
    cell.ref = None
    cell.status = ContextStatus.FAILED
    assert not cell.passive


def test_a_transition_and_its_waiting_calls_leave_no_record():
    registry = _registry()
    pending = new_reply()
    registry.begin("a", pending)
    assert registry.pending("a") is pending
    assert registry.pending("b") is None
    request = GetTracker("a", new_reply())
    registry.wait("a", request)
    assert list(registry.waiting()) == [request]
    resolve(pending, None)
    registry.end("a", pending)
    assert registry.sizes()["transitions"] == 1  # the call still waits
    registry.resume("a", request)
    assert registry.sizes()["transitions"] == 0


def test_a_settled_transition_no_longer_holds_calls():
    registry = _registry()
    pending = new_reply()
    registry.begin("a", pending)
    resolve(pending, None)
    assert registry.pending("a") is None
    assert registry.sizes()["transitions"] == 0


def test_a_later_transition_is_not_ended_by_an_earlier_one():
    registry = _registry()
    first, second = new_reply(), new_reply()
    registry.begin("a", first)
    registry.begin("a", second)
    registry.end("a", first)
    assert registry.pending("a") is second


def test_stopping_is_listed_and_cleared():
    registry = _registry()
    stop = new_reply()
    registry.set_stopping("b", stop)
    registry.set_stopping("a", new_reply())
    assert registry.stopping("b") is stop
    assert registry.all_stopping() == ["a", "b"]
    registry.set_stopping("a", None)
    registry.set_stopping("b", None)
    assert registry.all_stopping() == []
    assert registry.sizes()["transitions"] == 0
