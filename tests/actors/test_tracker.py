"""The ContextTracker handle: reads, writes, copies both ways, and expected errors that leave
the actor healthy."""

from __future__ import annotations

import math

import pytest

from actors import (
    ContextInactiveError,
    ContextNotFoundError,
    ForeignStateError,
    InvalidValueError,
    KeyNotFoundError,
    RecoveryPoint,
    State,
    StateTooLargeError,
    VersionConflict,
)

from .conftest import WAIT, make_manager, make_tracker


def _version(tracker) -> int:
    return tracker.get_state().get(timeout=WAIT).version


def test_name_is_the_context_name(tracker):
    assert tracker.name == "ctx"
    assert "ctx" in repr(tracker)


def test_handles_of_one_context_are_equal(manager, tracker):
    again = manager.get_tracker("ctx").get(timeout=WAIT)
    assert again == tracker
    assert hash(again) == hash(tracker)


def test_get_state_returns_the_current_state(tracker):
    state = tracker.get_state().get(timeout=WAIT)
    assert isinstance(state, State)
    assert (state.context, state.version, state.data) == ("ctx", 0, {"n": 0})


def test_get_returns_value_or_default(tracker):
    assert tracker.get("n").get(timeout=WAIT) == 0
    assert tracker.get("missing").get(timeout=WAIT) is None
    assert tracker.get("missing", "fallback").get(timeout=WAIT) == "fallback"


def test_set_returns_the_new_version(tracker):
    assert tracker.set("a", 1).get(timeout=WAIT) == 1
    assert tracker.set("b", {"nested": [1, 2]}).get(timeout=WAIT) == 2
    assert tracker.get("b").get(timeout=WAIT) == {"nested": [1, 2]}


def test_delete_removes_the_key_and_returns_the_new_version(tracker):
    assert tracker.delete("n").get(timeout=WAIT) == 1
    state = tracker.get_state().get(timeout=WAIT)
    assert "n" not in state
    assert state.version == 1


def test_set_metadata_returns_the_new_version(tracker):
    assert tracker.set_metadata("owner", "alice").get(timeout=WAIT) == 1
    assert tracker.get_state().get(timeout=WAIT).metadata == {"owner": "alice"}


def test_update_state_installs_the_next_version(tracker):
    state = tracker.get_state().get(timeout=WAIT)
    state.set("n", 5)
    state.set_metadata("m", "x")
    updated = tracker.update_state(state).get(timeout=WAIT)
    assert (updated.version, updated.data, updated.metadata) == (1, {"n": 5}, {"m": "x"})
    assert tracker.get_state().get(timeout=WAIT) == updated


def test_modify_runs_the_function_and_returns_the_new_state(tracker):
    updated = tracker.modify(lambda s: s.set("n", s.get("n") + 1)).get(timeout=WAIT)
    assert (updated.version, updated.get("n")) == (1, 1)


def test_modify_ignores_changes_to_version_and_context(tracker):
    def tamper(state):
        state.version = 99
        state.context = "other"
        state.set("n", 1)

    updated = tracker.modify(tamper).get(timeout=WAIT)
    assert (updated.context, updated.version) == ("ctx", 1)


def test_save_returns_the_stored_version(tracker):
    tracker.set("n", 1).get(timeout=WAIT)
    assert tracker.save().get(timeout=WAIT) == 1


def test_create_recovery_point_snapshots_the_current_state(manager, tracker):
    tracker.set("n", 3).get(timeout=WAIT)
    point = tracker.create_recovery_point("before").get(timeout=WAIT)
    assert isinstance(point, RecoveryPoint)
    assert (point.context, point.version, point.label) == ("ctx", 1, "before")
    assert manager.list_recovery_points("ctx").get(timeout=WAIT) == [point]


# -- copies both ways --------------------------------------------------------------------------


def test_update_state_leaves_the_passed_state_untouched(tracker):
    state = tracker.get_state().get(timeout=WAIT)
    state.set("n", 1)
    before = state.snapshot()
    tracker.update_state(state).get(timeout=WAIT)
    assert state == before
    assert state.version == 0
    state.set("n", 2)  # mutating it afterwards does not reach the tracker either
    assert tracker.get("n").get(timeout=WAIT) == 1


def test_mutating_a_state_from_get_state_does_not_change_the_tracker(tracker):
    tracker.set("items", [1, 2]).get(timeout=WAIT)
    state = tracker.get_state().get(timeout=WAIT)
    state.data["items"].append(3)
    state.data["n"] = 100
    state.metadata["m"] = "x"
    state.version = 50
    fresh = tracker.get_state().get(timeout=WAIT)
    assert (fresh.data, fresh.metadata, fresh.version) == ({"n": 0, "items": [1, 2]}, {}, 1)


def test_mutating_a_value_from_get_does_not_change_the_tracker(tracker):
    tracker.set("items", [[1], [2]]).get(timeout=WAIT)
    value = tracker.get("items").get(timeout=WAIT)
    value[0].append("changed")
    value.append("more")
    assert tracker.get("items").get(timeout=WAIT) == [[1], [2]]


def test_mutating_a_value_after_set_does_not_change_what_was_stored(tracker):
    value = {"list": [1, 2], "inner": {"a": 1}}
    future = tracker.set("v", value)
    value["list"].append(3)
    value["inner"]["a"] = 2
    value["new"] = True
    future.get(timeout=WAIT)
    assert tracker.get("v").get(timeout=WAIT) == {"list": [1, 2], "inner": {"a": 1}}


def test_mutating_the_state_returned_by_modify_does_not_change_the_tracker(tracker):
    updated = tracker.modify(lambda s: s.set("items", [1])).get(timeout=WAIT)
    updated.data["items"].append(2)
    assert tracker.get("items").get(timeout=WAIT) == [1]


# -- expected errors come back to the caller and leave the actor healthy ---------------------


def _assert_healthy(tracker, version):
    assert _version(tracker) == version
    assert tracker.set("healthy", True).get(timeout=WAIT) == version + 1


def test_stale_update_state_raises_version_conflict_and_changes_nothing(tracker):
    stale = tracker.get_state().get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    stale.set("n", 99)
    with pytest.raises(VersionConflict) as info:
        tracker.update_state(stale).get(timeout=WAIT)
    assert (info.value.expected, info.value.actual) == (0, 1)
    assert tracker.get("n").get(timeout=WAIT) == 1
    _assert_healthy(tracker, 1)


def test_update_state_from_the_future_raises_version_conflict(tracker):
    state = tracker.get_state().get(timeout=WAIT)
    state.version = 5
    with pytest.raises(VersionConflict):
        tracker.update_state(state).get(timeout=WAIT)
    _assert_healthy(tracker, 0)


def test_update_state_with_a_state_of_another_context_raises_foreign_state_error(tracker):
    foreign = State.new("other", {"n": 1})
    with pytest.raises(ForeignStateError):
        tracker.update_state(foreign).get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 0
    _assert_healthy(tracker, 0)


def test_update_state_with_a_non_state_raises_invalid_value_error(tracker):
    with pytest.raises(InvalidValueError):
        tracker.update_state({"n": 1}).get(timeout=WAIT)
    _assert_healthy(tracker, 0)


def test_update_state_with_an_invalid_value_raises_invalid_value_error(tracker):
    state = tracker.get_state().get(timeout=WAIT)
    state.data["bad"] = {1, 2}
    with pytest.raises(InvalidValueError):
        tracker.update_state(state).get(timeout=WAIT)
    _assert_healthy(tracker, 0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("k", {1, 2}),
        ("k", (1, 2)),
        ("k", math.nan),
        ("k", math.inf),
        ("k", object()),
        ("k", {"nested": b"bytes"}),
        ("k", 2**64),
        (1, "value"),
        (None, "value"),
    ],
    ids=["set", "tuple", "nan", "inf", "object", "nested-bytes", "huge-int", "int-key", "none-key"],
)
def test_set_with_an_invalid_key_or_value_raises_invalid_value_error(tracker, key, value):
    with pytest.raises(InvalidValueError):
        tracker.set(key, value).get(timeout=WAIT)
    _assert_healthy(tracker, 0)


@pytest.mark.parametrize(("key", "value"), [("k", 1), (1, "v"), ("k", None)])
def test_set_metadata_with_a_non_str_raises_invalid_value_error(tracker, key, value):
    with pytest.raises(InvalidValueError):
        tracker.set_metadata(key, value).get(timeout=WAIT)
    _assert_healthy(tracker, 0)


def test_delete_of_a_missing_key_raises_key_not_found_error(tracker):
    with pytest.raises(KeyNotFoundError) as info:
        tracker.delete("missing").get(timeout=WAIT)
    assert isinstance(info.value, KeyError)
    _assert_healthy(tracker, 0)


def test_modify_whose_function_raises_changes_nothing_and_raises_that_exception(tracker):
    error = ValueError("user bug")

    def failing(state):
        state.set("n", 42)
        state.set("half", "done")
        raise error

    with pytest.raises(ValueError, match="user bug") as info:
        tracker.modify(failing).get(timeout=WAIT)
    assert info.value is error
    state = tracker.get_state().get(timeout=WAIT)
    assert (state.data, state.version) == ({"n": 0}, 0)
    _assert_healthy(tracker, 0)


def test_modify_producing_an_invalid_value_raises_invalid_value_error(tracker):
    def invalid(state):
        state.data["bad"] = {1, 2}

    with pytest.raises(InvalidValueError, match="modify"):
        tracker.modify(invalid).get(timeout=WAIT)
    assert tracker.get("bad").get(timeout=WAIT) is None
    _assert_healthy(tracker, 0)


def test_update_too_large_for_the_store_raises_and_changes_nothing():
    manager = make_manager("memory://", max_state_bytes=1_000)
    tracker = make_tracker(manager, data={"n": 0})
    with pytest.raises(StateTooLargeError):
        tracker.set("big", "x" * 5_000).get(timeout=WAIT)
    assert tracker.get("big").get(timeout=WAIT) is None
    _assert_healthy(tracker, 0)
    manager.shutdown().get(timeout=WAIT)


def test_calls_on_a_deactivated_context_raise_context_inactive_error(manager, tracker):
    manager.deactivate("ctx").get(timeout=WAIT)
    with pytest.raises(ContextInactiveError):
        tracker.get("n").get(timeout=WAIT)


def test_calls_on_a_deleted_context_raise_context_not_found_error(manager, tracker):
    manager.delete_context("ctx").get(timeout=WAIT)
    with pytest.raises(ContextNotFoundError):
        tracker.set("n", 1).get(timeout=WAIT)


def test_handle_works_again_after_reactivation(manager, tracker):
    tracker.set("n", 1).get(timeout=WAIT)
    manager.deactivate("ctx").get(timeout=WAIT)
    manager.get_tracker("ctx").get(timeout=WAIT)
    assert tracker.get("n").get(timeout=WAIT) == 1
    assert tracker.set("n", 2).get(timeout=WAIT) == 2


def test_keys_resolves_to_the_sorted_keys_and_moves_no_version(tracker):
    tracker.set("b", 1).get(timeout=WAIT)
    tracker.set("a", 2).get(timeout=WAIT)
    before = tracker.get_state().get(timeout=WAIT).version
    assert tracker.keys().get(timeout=WAIT) == ["a", "b", "n"]
    assert tracker.get_state().get(timeout=WAIT).version == before
