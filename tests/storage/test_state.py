"""State: the record's mapping behaviour, deep-copy snapshots, and refusal of non-JSON input."""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import ContextError, InvalidValueError, SnapshotCodec, State, StateError
from storage._state import INT_MAX, INT_MIN


class _Str(str):
    __slots__ = ()


def test_new_is_version_zero_with_equal_utc_timestamps() -> None:
    state = State.new("ctx")

    assert state.context == "ctx"
    assert state.version == 0
    assert state.data == {}
    assert state.metadata == {}
    assert state.created_at == state.updated_at
    assert state.created_at.tzinfo is UTC


def test_new_copies_its_input() -> None:
    data: dict[str, Any] = {"items": [1, {"deep": [2]}]}
    metadata = {"owner": "me"}

    state = State.new("ctx", data, metadata)
    data["items"][1]["deep"].append(3)
    data["extra"] = True
    metadata["owner"] = "you"

    assert state.data == {"items": [1, {"deep": [2]}]}
    assert state.metadata == {"owner": "me"}


def test_new_refuses_bad_data() -> None:
    with pytest.raises(InvalidValueError, match=r"data\['bad'\]"):
        State.new("ctx", {"ok": 1, "bad": {1, 2}})
    with pytest.raises(InvalidValueError, match=r"metadata\['m'\]"):
        State.new("ctx", {}, {"m": 1})  # type: ignore[dict-item]


def test_get_set_delete_contains() -> None:
    state = State.new("ctx")

    state.set("a", 1)
    state.set("b", {"nested": [None, True, 1.5, "s"]})
    state.set("a", 2)

    assert state.get("a") == 2
    assert state.get("b") == {"nested": [None, True, 1.5, "s"]}
    assert state.get("missing") is None
    assert state.get("missing", "fallback") == "fallback"
    assert "a" in state
    assert "missing" not in state

    state.delete("a")

    assert "a" not in state
    with pytest.raises(KeyError):
        state.delete("a")


def test_keys_items_len_follow_insertion_order() -> None:
    state = State.new("ctx")
    for key, value in [("z", 1), ("a", 2), ("m", 3)]:
        state.set(key, value)

    assert len(state) == 3
    assert list(state.keys()) == ["z", "a", "m"]
    assert list(state.items()) == [("z", 1), ("a", 2), ("m", 3)]


def test_accepts_the_edges_of_the_allowed_range() -> None:
    state = State.new("ctx")

    state.set("max", INT_MAX)
    state.set("min", INT_MIN)
    state.set("tiny", 5e-324)
    state.set("huge", 1.7976931348623157e308)
    state.set("empty", {"": [], "list": [[]]})

    assert state.get("max") == 2**63 - 1
    assert state.get("min") == -(2**63)


def test_snapshot_is_equal_but_independent_both_ways() -> None:
    state = State.new("ctx", {"list": [1, [2, 3]], "dict": {"a": {"b": [4]}}}, {"m": "1"})
    state.version = 4

    copy = state.snapshot()
    assert copy == state
    assert copy is not state

    # Mutating the original never reaches the snapshot...
    state.get("list")[1].append(99)
    state.get("dict")["a"]["b"].append(99)
    state.set("new", 1)
    state.set_metadata("m", "2")
    assert copy.data == {"list": [1, [2, 3]], "dict": {"a": {"b": [4]}}}
    assert copy.metadata == {"m": "1"}

    # ... and mutating the snapshot never reaches the original.
    before = state.snapshot()
    copy.get("list")[1].clear()
    copy.get("dict")["a"]["c"] = 1
    copy.delete("dict")
    copy.set_metadata("other", "x")
    copy.version = 99
    assert state == before


def test_set_metadata() -> None:
    state = State.new("ctx")

    state.set_metadata("owner", "team-a")
    state.set_metadata("owner", "team-b")

    assert state.metadata == {"owner": "team-b"}
    assert state.data == {}


# (key, value, path named in the error, type named in the error)
BAD_VALUES: list[tuple[Any, Any, str, str]] = [
    ("k", {1, 2}, "data['k']", "set"),
    ("k", (1, 2), "data['k']", "tuple"),
    ("k", object(), "data['k']", "object"),
    ("k", math.nan, "data['k']", "float"),
    ("k", math.inf, "data['k']", "float"),
    ("k", -math.inf, "data['k']", "float"),
    ("k", 2**63, "data['k']", "int"),
    ("k", -(2**63) - 1, "data['k']", "int"),
    ("k", {"a": {"b": [0, {1: "x"}]}}, "data['k']['a']['b'][1][1]", "int"),
    ("k", {"a": [{"ok": 1}, [{"fine": (3,)}]]}, "data['k']['a'][1][0]['fine']", "tuple"),
    ("k", OrderedDict(a=1), "data['k']", "OrderedDict"),
    ("k", _Str("x"), "data['k']", "_Str"),
    ("k", b"bytes", "data['k']", "bytes"),
    (5, 1, "data key 5", "int"),
    (None, 1, "data key None", "NoneType"),
    (("t",), 1, "data key ('t',)", "tuple"),
]


@pytest.mark.parametrize(
    ("key", "value", "path", "type_name"),
    BAD_VALUES,
    ids=[f"{type(v).__name__}-{p}" for _, v, p, _ in BAD_VALUES],
)
def test_set_refuses_non_json_and_leaves_state_unchanged(
    key: Any, value: Any, path: str, type_name: str
) -> None:
    state = State.new("ctx", {"k": "original", "other": [1, 2]}, {"m": "1"})
    before = state.snapshot()

    with pytest.raises(InvalidValueError) as caught:
        state.set(key, value)

    assert caught.value.path == path
    assert path in str(caught.value)
    assert f"(got {type_name})" in str(caught.value)
    assert state == before


@pytest.mark.parametrize(
    ("key", "value", "path", "type_name"),
    [
        ("m", 5, "metadata['m']", "int"),
        ("m", None, "metadata['m']", "NoneType"),
        ("m", ["x"], "metadata['m']", "list"),
        ("m", _Str("x"), "metadata['m']", "_Str"),
        (7, "x", "metadata key 7", "int"),
    ],
)
def test_set_metadata_refuses_non_str_and_leaves_state_unchanged(
    key: Any, value: Any, path: str, type_name: str
) -> None:
    state = State.new("ctx", {"k": 1}, {"m": "original"})
    before = state.snapshot()

    with pytest.raises(InvalidValueError) as caught:
        state.set_metadata(key, value)

    assert caught.value.path == path
    assert path in str(caught.value)
    assert f"(got {type_name})" in str(caught.value)
    assert state == before


def test_invalid_value_error_is_in_the_hierarchy() -> None:
    state = State.new("ctx")

    with pytest.raises(InvalidValueError) as caught:
        state.set("k", {1})

    assert isinstance(caught.value, StateError)
    assert isinstance(caught.value, ContextError)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, ValueError)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    state = State.new("ctx")

    with pytest.raises(InvalidValueError, match="nested more than 128 deep"):
        state.set("deep", value)

    assert "deep" not in state


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("k", "\ud800", "data['k']"),
        ("k", {"a": ["ok", "lone \udfff"]}, "data['k']['a'][1]"),
        ("\udc80", 1, "data key '\\udc80'"),
        ("k", {"\ud83d": 1}, "data['k']['\\ud83d']"),
    ],
)
def test_lone_surrogates_are_refused(key: str, value: Any, path: str) -> None:
    # A str holding a lone surrogate has no UTF-8 form, so no store could keep it.
    state = State.new("ctx", {"k": "original"})
    before = state.snapshot()

    with pytest.raises(InvalidValueError) as caught:
        state.set(key, value)

    assert caught.value.path == path
    assert state == before


def test_lone_surrogates_are_refused_in_metadata() -> None:
    state = State.new("ctx")

    with pytest.raises(InvalidValueError, match=r"metadata\['m'\]"):
        state.set_metadata("m", "\ud800")
    with pytest.raises(InvalidValueError, match="metadata key"):
        state.set_metadata("\ud800", "v")

    assert state.metadata == {}


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=40,
)


def assert_identical(actual: Any, expected: Any) -> None:
    """Equal *and* of the same types all the way down (1 == 1.0 == True would hide a bug)."""
    assert type(actual) is type(expected), (actual, expected)
    if type(expected) is dict:
        assert list(actual) == list(expected)
        for key, item in expected.items():
            assert_identical(actual[key], item)
    elif type(expected) is list:
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected, strict=True):
            assert_identical(got, want)
    elif type(expected) is float:
        assert repr(actual) == repr(expected)  # exact, and keeps the sign of -0.0
    else:
        assert actual == expected


@given(key=st.text(), value=JSON_VALUES)
def test_any_json_value_round_trips_through_the_codec(key: str, value: Any) -> None:
    codec = SnapshotCodec()
    state = State.new("ctx")

    state.set(key, value)
    decoded = codec.decode(codec.encode(state), context="ctx", version=0)

    assert decoded == state
    assert_identical(decoded.get(key), value)


def test_a_snapshot_shares_no_container_with_its_source_at_any_depth():
    # copy_json_dict copies a dict of scalars in one C call; nested containers are copied
    # one by one, so that mutating either State never changes the other.
    state = State.new("ctx", {"s": "x", "n": 1, "l": [1, [2]], "d": {"e": {"f": [3]}}})
    copy = state.snapshot()
    assert copy.data == state.data
    copy.data["l"][1].append(9)
    copy.data["d"]["e"]["f"].append(9)
    copy.data["s"] = "y"
    assert state.data == {"s": "x", "n": 1, "l": [1, [2]], "d": {"e": {"f": [3]}}}
    flat = State.new("flat", {f"k{i}": i for i in range(10)})
    assert flat.snapshot().data == flat.data
    assert flat.snapshot().data is not flat.data
