"""What each request does to a State, called directly: no actor, no store, no thread."""

from __future__ import annotations

import pytest

from actors import _updates as updates
from actors._changes import ChangeCause
from storage import (
    InvalidArgumentError,
    InvalidValueError,
    KeyNotFoundError,
    State,
    VersionConflict,
)


def _state(**data: object) -> State:
    state = State.new("ctx", dict(data))
    state.metadata["owner"] = "ada"
    return state


def test_set_value_makes_the_next_version_and_changes_nothing_in_place():
    state = _state(n=1)
    update = updates.set_value(state, "m", 2)
    assert update.state is None
    assert update.result == update.delta.version == state.version + 1
    assert update.delta.changed == {"m": 2}
    assert state.data == {"n": 1}


def test_delete_value_of_a_missing_key_raises_key_not_found():
    state = _state(n=1)
    assert updates.delete_value(state, "n").delta.removed == ("n",)
    with pytest.raises(KeyNotFoundError):
        updates.delete_value(state, "missing")
    assert state.data == {"n": 1}


def test_set_metadata_changes_metadata_only():
    update = updates.set_metadata(_state(), "owner", "grace")
    assert update.delta.metadata_changed == {"owner": "grace"}
    assert update.delta.changed == {}


def test_apply_in_place_and_its_undo_restore_the_state_exactly():
    state = _state(n=1, gone=True)
    before = state.snapshot()
    for update in (
        updates.set_value(state, "n", 2),
        updates.delete_value(state, "gone"),
        updates.set_metadata(state, "team", "x"),
    ):
        undo = updates.apply_in_place(state, update.delta)
        assert state.version == update.delta.version
        undo()
        assert state == before
        assert state.updated_at == before.updated_at


def test_update_state_of_a_stale_version_raises_version_conflict():
    state = _state(n=1)
    stale = state.snapshot()
    stale.version -= 1
    with pytest.raises(VersionConflict):
        updates.update_state(state, stale)
    fresh = state.snapshot()
    fresh.data["n"] = 5
    update = updates.update_state(state, fresh)
    assert update.state is not None
    assert update.state.version == state.version + 1
    assert update.result == update.state
    assert update.result is not update.state  # the caller's copy
    assert update.delta.changed == {"n": 5}
    assert state.data == {"n": 1}


def test_modify_runs_the_function_on_a_copy():
    state = _state(n=1)
    update = updates.modify(state, lambda s: s.set("n", s.get("n") + 1))
    assert update.state is not None
    assert update.state.data == {"n": 2}
    assert state.data == {"n": 1}


def test_modify_wraps_what_the_function_raises_and_refuses_bad_results():
    state = _state(n=1)

    def boom(_: State) -> None:
        raise RuntimeError("mine")

    with pytest.raises(updates.UserFunctionError) as info:
        updates.modify(state, boom)
    assert isinstance(info.value.user_error, RuntimeError)
    with pytest.raises(InvalidArgumentError):
        updates.modify(state, lambda _: {"n": 2})

    def bad_value(s: State) -> None:
        s.data["n"] = object()

    with pytest.raises(InvalidValueError, match="modify"):
        updates.modify(state, bad_value)
    assert state.data == {"n": 1}


def test_replace_carries_its_cause():
    state = _state(n=1)
    update = updates.replace(state, _state(n=9), ChangeCause.RESTORE)
    assert update.cause is ChangeCause.RESTORE
    assert update.delta.changed == {"n": 9}


def test_reads_return_copies():
    state = _state(items=[1])
    copy = updates.get_state(state)
    copy.data["items"].append(2)
    value = updates.get_value(state, "items", None)
    value.append(3)
    assert state.data == {"items": [1]}
    assert updates.get_value(state, "missing", "d") == "d"


def test_keys_are_sorted():
    assert updates.keys(_state(b=1, a=2)) == ["a", "b"]
