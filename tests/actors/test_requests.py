"""Typed manager requests: what each acts on, which wait, and one handler per type."""

from __future__ import annotations

import inspect
import logging

import attrs
import pytest

from actors import _requests, create_manager
from actors._future import ContextFuture, new_reply
from actors._requests import (
    DEFAULT_CONTEXT,
    CreateAndSwitch,
    CreateContext,
    GetTracker,
    Initialize,
    ListContexts,
    ListRecoveryPoints,
    LoadContext,
    ManagerRequest,
    Status,
    Switch,
)
from actors._supervisor import _HANDLERS
from storage import State

WAIT = 10.0


def _request_types() -> list[type[ManagerRequest]]:
    return [
        kind
        for _, kind in inspect.getmembers(_requests, inspect.isclass)
        if issubclass(kind, ManagerRequest) and attrs.has(kind)
    ]


def test_every_request_type_has_exactly_one_handler():
    assert set(_HANDLERS) == set(_request_types())


def test_each_request_names_the_context_it_acts_on():
    reply = new_reply()
    assert CreateContext(State.new("a"), reply).context == "a"
    assert GetTracker("b", reply).context == "b"
    assert Switch(1, "c", reply).context == "c"
    assert CreateAndSwitch(1, State.new("d"), reply).context == "d"
    assert Initialize(1, reply).context == DEFAULT_CONTEXT
    assert ListContexts(reply).context is None


def test_queries_do_not_wait_behind_a_transition():
    queries = {kind for kind in _request_types() if not kind.waits}
    assert queries == {
        Status,
        LoadContext,
        ListRecoveryPoints,
        _requests.GetRecoveryReport,
        _requests.ReadHistory,
        _requests.LoadVersion,
    }


@attrs.frozen
class _Unknown(ManagerRequest):
    operation = "unknown"
    reply: object


def test_a_request_type_without_handler_is_a_clear_error(caplog):
    manager = create_manager()
    try:
        reply = new_reply()
        manager._ref.tell(_Unknown(reply))
        future: ContextFuture[object] = ContextFuture(reply, timeout=WAIT, what="unknown()")
        with (
            caplog.at_level(logging.ERROR, "actors.manager"),
            pytest.raises(TypeError, match="no handler for _Unknown"),
        ):
            future.get()
        assert "no handler for _Unknown" in caplog.text
        assert manager.list_contexts().get(timeout=WAIT) == []  # it lives on
    finally:
        manager.shutdown().get(timeout=WAIT)
