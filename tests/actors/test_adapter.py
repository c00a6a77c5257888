"""ContextAdapter: initialising, activating, switching and deactivating contexts."""

from __future__ import annotations

import pytest

from actors import (
    ContextExistsError,
    ContextNotFoundError,
    ContextStatus,
    InvalidContextNameError,
    NoCurrentContextError,
    ShutdownError,
    create_adapter,
)

from .conftest import WAIT
from .test_manager import BAD_NAMES

ADAPTER_CALLS = {
    "activate_context": lambda a, name: a.activate_context(name),
    "deactivate_context": lambda a, name: a.deactivate_context(name),
    "create_and_activate_context": lambda a, name: a.create_and_activate_context(name),
    "switch_context": lambda a, name: a.switch_context(name),
    "get_status": lambda a, name: a.get_status(name),
}


@pytest.fixture
def adapter(manager):
    return create_adapter(manager)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("method", sorted(ADAPTER_CALLS))
def test_every_adapter_method_refuses_an_invalid_name(adapter, method, name):
    with pytest.raises(InvalidContextNameError):
        ADAPTER_CALLS[method](adapter, name).get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) is None
    assert adapter.active_contexts().get(timeout=WAIT) == []


def test_new_adapter_has_no_current_context(adapter):
    assert adapter.current_context().get(timeout=WAIT) is None
    with pytest.raises(NoCurrentContextError):
        adapter.get_current_tracker().get(timeout=WAIT)


def test_initialize_creates_activates_and_makes_default_current(adapter, manager):
    tracker = adapter.initialize().get(timeout=WAIT)
    assert tracker.name == "default"
    assert manager.list_contexts().get(timeout=WAIT) == ["default"]
    assert adapter.get_status("default").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert adapter.current_context().get(timeout=WAIT) == "default"
    assert adapter.get_current_tracker().get(timeout=WAIT) == tracker


def test_initialize_is_idempotent(adapter):
    tracker = adapter.initialize().get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    again = adapter.initialize().get(timeout=WAIT)
    assert again == tracker
    assert again.get_state().get(timeout=WAIT).version == 1
    assert again.get("n").get(timeout=WAIT) == 1


def test_initialize_uses_an_existing_default_context(manager, adapter):
    manager.create_context("default", {"kept": True}).get(timeout=WAIT)
    tracker = adapter.initialize().get(timeout=WAIT)
    assert tracker.get("kept").get(timeout=WAIT) is True


def test_activate_context_activates_without_making_it_current(manager, adapter):
    manager.create_context("other").get(timeout=WAIT)
    tracker = adapter.activate_context("other").get(timeout=WAIT)
    assert tracker.name == "other"
    assert adapter.get_status("other").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert adapter.current_context().get(timeout=WAIT) is None


def test_activate_context_of_a_missing_context_raises_context_not_found_error(adapter):
    with pytest.raises(ContextNotFoundError):
        adapter.activate_context("missing").get(timeout=WAIT)


def test_create_and_activate_context_makes_it_current(adapter):
    adapter.initialize().get(timeout=WAIT)
    tracker = adapter.create_and_activate_context("work", {"n": 1}, {"m": "x"}).get(timeout=WAIT)
    state = tracker.get_state().get(timeout=WAIT)
    assert (state.context, state.version, state.data, state.metadata) == (
        "work",
        0,
        {"n": 1},
        {"m": "x"},
    )
    assert adapter.current_context().get(timeout=WAIT) == "work"
    assert adapter.get_current_tracker().get(timeout=WAIT) == tracker
    assert adapter.active_contexts().get(timeout=WAIT) == ["default", "work"]


def test_create_and_activate_an_existing_context_raises_and_keeps_the_current(adapter):
    adapter.initialize().get(timeout=WAIT)
    with pytest.raises(ContextExistsError):
        adapter.create_and_activate_context("default").get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) == "default"


def test_switch_context_activates_if_needed_and_makes_it_current(manager, adapter):
    adapter.initialize().get(timeout=WAIT)
    manager.create_context("other", {"n": 5}).get(timeout=WAIT)
    assert adapter.get_status("other").get(timeout=WAIT) is ContextStatus.INACTIVE
    tracker = adapter.switch_context("other").get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 5
    assert adapter.get_status("other").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert adapter.current_context().get(timeout=WAIT) == "other"
    # The previous current context stays active.
    assert adapter.active_contexts().get(timeout=WAIT) == ["default", "other"]
    assert adapter.switch_context("default").get(timeout=WAIT).name == "default"
    assert adapter.current_context().get(timeout=WAIT) == "default"


def test_switch_to_a_missing_context_raises_and_keeps_the_current(adapter):
    adapter.initialize().get(timeout=WAIT)
    with pytest.raises(ContextNotFoundError):
        adapter.switch_context("missing").get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) == "default"


def test_the_last_of_several_switches_wins(manager, adapter):
    for name in ["a", "b", "c"]:
        manager.create_context(name).get(timeout=WAIT)
    manager.get_tracker("c").get(timeout=WAIT)  # active: its switch can finish first
    futures = [adapter.switch_context(name) for name in ["a", "b", "c"]]
    for future in futures:
        future.get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) == "c"


def test_deactivate_context_persists_then_stops_the_tracker(manager, adapter):
    tracker = adapter.create_and_activate_context("work").get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    adapter.deactivate_context("work").get(timeout=WAIT)
    assert adapter.get_status("work").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.load("work").get(timeout=WAIT).get("n") == 1


def test_deactivating_the_current_context_leaves_no_current_context(adapter):
    adapter.initialize().get(timeout=WAIT)
    adapter.deactivate_context("default").get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) is None
    with pytest.raises(NoCurrentContextError):
        adapter.get_current_tracker().get(timeout=WAIT)


def test_deactivating_another_context_keeps_the_current_one(manager, adapter):
    adapter.initialize().get(timeout=WAIT)
    manager.create_context("other").get(timeout=WAIT)
    adapter.activate_context("other").get(timeout=WAIT)
    adapter.deactivate_context("other").get(timeout=WAIT)
    assert adapter.current_context().get(timeout=WAIT) == "default"


def test_adapters_have_their_own_current_context_and_share_activation(manager):
    first, second = create_adapter(manager), create_adapter(manager)
    first.initialize().get(timeout=WAIT)
    second.create_and_activate_context("other").get(timeout=WAIT)
    assert first.current_context().get(timeout=WAIT) == "default"
    assert second.current_context().get(timeout=WAIT) == "other"
    assert first.active_contexts().get(timeout=WAIT) == ["default", "other"]
    # Deactivating a context clears it as current in every adapter.
    second.switch_context("default").get(timeout=WAIT)
    first.deactivate_context("default").get(timeout=WAIT)
    assert first.current_context().get(timeout=WAIT) is None
    assert second.current_context().get(timeout=WAIT) is None


def test_adapter_shutdown_shuts_the_manager_down(manager, adapter):
    tracker = adapter.initialize().get(timeout=WAIT)
    adapter.shutdown().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        tracker.get_state().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        adapter.current_context().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        manager.list_contexts().get(timeout=WAIT)
