"""Journal entries the size of the change (format 3): the diff's edits, exact replay of random
nested edits, and entries whose edits are damaged or hostile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import event, given, settings
from hypothesis import strategies as st

from storage import CorruptSnapshotError, SnapshotCodec, State, StateTooLargeError
from storage._codec import HEADER, MAGIC, _frame
from storage._delta import Delta, apply_edits, diff_value, edits_problem
from storage._state import MAX_DEPTH, copy_json_value
from tests.storage.test_journal_format import _entry

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _next(state: State, change: Any) -> State:
    """The successor of `state` made by `change(data)` on a private copy, as modify() does."""
    draft = state.snapshot()
    change(draft.data)
    new = state.successor(draft)
    new.updated_at = T0 + timedelta(seconds=new.version)
    return new


# -- the diff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "edits"),
    [
        ([1, 2], [1, 2, 3, 4], [("a", (), [3, 4])]),
        ([1, 2, 3, 4], [1, 2], [("t", (), 2)]),
        ([1, 2, 3, 4], [1, 9, 3, 4], [("s", (1,), 9)]),
        ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}, [("d", ("c",))]),
        ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3, "d": 4}, [("s", ("d",), 4)]),
        (
            {"items": [{"q": 1}, {"q": 2}], "n": 0},
            {"items": [{"q": 1}, {"q": 3}, {"q": 4}], "n": 0},
            [("s", ("items", 1, "q"), 3), ("a", ("items",), [{"q": 4}])],
        ),
        ({"u": {"p": {"name": "a", "age": 3}}}, {"u": {"p": {"name": "b", "age": 3}}}, None),
        # 1, 1.0 and True are equal in Python, not in JSON: the change is kept.
        ([1, 1, 1, 1], [1, 1.0, 1, 1], [("s", (1,), 1.0)]),
        ([0, 0, 0, 0], [0, False, 0, 0], [("s", (1,), False)]),
    ],
)
def test_the_diff_finds_appends_truncations_and_nested_changes(old, new, edits):
    found = diff_value(old, new)
    if edits is None:  # one field of a one-field path: whatever it is, it replays exactly
        assert found is not None
    else:
        assert found == edits
    value = copy_json_value(old)
    apply_edits({"k": value}, {"k": found})
    assert value == new
    assert _json(value) == _json(new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([1, 2, 3, 4], [0, 1, 2, 3, 4]),  # an insertion before the end shifts everything
        ([1, 2, 3, 4], [2, 3, 4]),
        ({"a": 1, "b": 2}, {"a": 3, "b": 4}),  # more than half changed
        ([1, 2], {"a": 1}),  # another type
        ("text", "other"),
        (1, 2),
    ],
)
def test_the_diff_sets_the_value_whole_where_edits_are_not_smaller(old, new):
    assert diff_value(old, new) is None


def test_an_append_to_a_long_list_is_an_entry_of_the_item_not_of_the_list():
    codec = SnapshotCodec()
    items = [{"sku": f"item-{n}", "qty": n} for n in range(12_000)]
    state = State.new("ctx", {"cart": items})
    sizes = []
    for n in range(3):
        new = _next(state, lambda data, n=n: data["cart"].append({"sku": f"new-{n}", "qty": 1}))
        delta = Delta.between(state, new, "update")
        blob = codec.encode_delta(delta)
        sizes.append(len(blob))
        state = new
    assert max(sizes) < 150
    assert delta.changed["cart"] is state.data["cart"]


# -- exact replay of random nested edits ------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
keys = st.sampled_from(["a", "b", "c", "d", "e"])
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of every list and dict inside `value`, itself included."""
    found = []
    if type(value) is dict:
        found.append(path)
        for key, item in value.items():
            found += _containers(item, (*path, key))
    elif type(value) is list:
        found.append(path)
        for index, item in enumerate(value):
            found += _containers(item, (*path, index))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for segment in path:
        value = value[segment]
    return value


@st.composite
def changes(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with a few random edits, deep or shallow."""
    data = copy_json_value(data)
    for _ in range(draw(st.integers(1, 4))):
        top = draw(st.sampled_from([*sorted(data), "new"]))
        if top not in data or draw(st.integers(0, 9)) == 0:
            data[top] = draw(values)
            continue
        if draw(st.integers(0, 19)) == 0:
            del data[top]
            continue
        holder = {"v": data[top]}
        paths = _containers(holder["v"])
        if not paths:
            data[top] = draw(values)
            continue
        target = _at(holder["v"], draw(st.sampled_from(paths)))
        if type(target) is list:
            how = draw(st.sampled_from(["append", "extend", "pop", "set", "insert", "clear"]))
            if how == "append":
                target.append(draw(values))
            elif how == "extend":
                target.extend(draw(st.lists(values, max_size=3)))
            elif how == "pop" and target:
                target.pop()
            elif how == "set" and target:
                target[draw(st.integers(0, len(target) - 1))] = draw(values)
            elif how == "insert":
                target.insert(0, draw(values))
            elif how == "clear":
                target.clear()
        else:
            how = draw(st.sampled_from(["set", "delete"]))
            if how == "delete" and target:
                del target[draw(st.sampled_from(sorted(target)))]
            else:
                target[draw(keys)] = draw(values)
    return data


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_replay_of_random_nested_edits_rebuilds_every_version_exactly(data):
    codec = SnapshotCodec()
    start = State.new("ctx", data.draw(st.dictionaries(keys, values, max_size=4)))
    start.updated_at = T0
    versions = [start]
    entries = []
    for _ in range(data.draw(st.integers(1, 8))):
        state = versions[-1]
        target = data.draw(changes(state.data))
        new = _next(state, lambda d, target=target: (d.clear(), d.update(target)))
        delta = Delta.between(state, new, "update")
        event("an entry with edits" if delta.edits else "an entry without edits")
        entries.append((new.version, codec.encode_delta(delta)))
        versions.append(new)
    snapshot = codec.encode(start)
    # Every version, from the snapshot and the entries up to it: one batch, and one by one.
    for version, expected in enumerate(versions):
        rebuilt = codec.decode(snapshot)
        codec.replay(rebuilt, entries[:version])
        assert rebuilt == expected
        # Strictly: 1 and 1.0 are equal in Python, not in JSON. (Dict order is not kept: a
        # State's equality ignores it, and so does the diff, as it did before edits.)
        assert _json(rebuilt.data) == _json(expected.data)
        one_by_one = codec.decode(snapshot)
        for number, blob in entries[:version]:
            delta = codec.decode_delta(blob, context="ctx", version=number)
            delta.apply(one_by_one)
            # After apply, a delta read back says what a subscriber hears: every key's value.
            assert set(delta.changed) == set(delta.keys_set)
        assert one_by_one == expected


# -- damage and hostile entries ---------------------------------------------------------------

STAMP = "2026-01-02T03:04:05+00:00"


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _body(edits: Any, changed: Any = None) -> bytes:
    return orjson.dumps(["ctx", 1, STAMP, "update", changed or {}, edits])


@pytest.mark.parametrize(
    "edits",
    [
        [["a", [], [1]]],  # not an object
        {"l": []},  # no edits
        {"l": [["x", [], [1]]]},  # unknown kind
        {"l": [["a", [], [1], 5]]},  # too many items
        {"l": [["a", "0", [1]]]},  # path not a list
        {"l": [["a", [1.5], [1]]]},  # a float segment
        {"l": [["a", [-1], [1]]]},  # a negative index
        {"l": [["a", [True], [1]]]},  # a bool segment
        {"l": [["s", [], 1]]},  # set with no path
        {"l": [["d", []]]},  # delete with no path
        {"l": [["t", [], -1]]},  # negative length
        {"l": [["t", [], "1"]]},  # length not an int
        {"l": [["a", [], {"x": 1}]]},  # items not a list
        {"l": [["a", [0] * (MAX_DEPTH + 1), [1]]]},  # a path deeper than MAX_DEPTH
        {"d": [["s", ["a"] * 100, _nested(30)]]},  # 100 + 30 levels: over MAX_DEPTH
        {"l": [["s", [0], 2**64 - 1]]},  # an int outside signed 64 bits
    ],
)
def test_malformed_or_too_deep_edits_are_refused_and_change_nothing(edits):
    codec = SnapshotCodec()
    state = State.new("ctx", {"l": [0, 1], "d": {"a": 1}})
    before = state.snapshot()
    good = codec.encode_delta(Delta("ctx", 2, T0, {"b": 2}))
    with pytest.raises(CorruptSnapshotError, match="journal entry of context 'ctx' version 1"):
        codec.replay(state, [(1, _entry(_body(edits))), (2, good)])
    assert state == before
    with pytest.raises(CorruptSnapshotError):
        codec.decode_delta(_entry(_body(edits)), context="ctx", version=1)


def test_a_key_both_edited_and_set_whole_is_refused():
    codec = SnapshotCodec()
    body = _body({"l": [["a", [], [2]]]}, changed={"l": [9]})
    with pytest.raises(CorruptSnapshotError, match="both edited and set whole"):
        codec.decode_delta(_entry(body), context="ctx", version=1)


@pytest.mark.parametrize(
    "edits",
    [
        {"missing": [["a", [], [1]]]},  # no such key
        {"l": [["a", [], [1]], ["s", [9], 1]]},  # the first applies, the second does not
        {"l": [["t", [], 5]]},  # keeps more than there is
        {"d": [["a", [], [1]]]},  # append to a dict
        {"d": [["s", ["a", "b"], 1]]},  # through a scalar
        {"d": [["s", ["x", "y"], 1]]},  # through a missing key
        {"l": [["d", [0]]]},  # delete from a list
        {"l": [["s", ["a"], 1]]},  # a str index into a list
        {"d": [["s", ["a"], 5]], "l": [["s", [7], 1]]},  # the first key edited, then not
    ],
)
def test_edits_that_do_not_fit_the_state_are_damage_and_leave_it_as_it_was(edits):
    codec = SnapshotCodec()
    state = State.new("ctx", {"l": [0, 1], "d": {"a": 1}})
    before = state.snapshot()
    earlier = codec.encode_delta(Delta("ctx", 1, T0, {"n": 1}))
    body = orjson.dumps(["ctx", 2, STAMP, "update", {"z": 1}, edits])
    with pytest.raises(CorruptSnapshotError, match="journal entry of context 'ctx' version 2"):
        codec.replay(state, [(1, earlier), (2, _entry(body))])
    expected = before.snapshot()
    expected.data["n"] = 1
    assert (state.version, state.data) == (1, expected.data)
    read = codec.decode_delta(_entry(body), context="ctx", version=2)  # well formed
    with pytest.raises(CorruptSnapshotError):
        read.apply(state)
    assert (state.version, state.data) == (1, expected.data)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damage_to_an_entry_of_edits_stops_replay_just_before_it(how):
    codec = SnapshotCodec()
    state = State.new("ctx", {"cart": list(range(100))})
    entries, states = [], [state]
    for _ in range(5):
        new = _next(states[-1], lambda data: data["cart"].append(len(data["cart"])))
        entries.append((new.version, codec.encode_delta(Delta.between(states[-1], new))))
        states.append(new)
    version, blob = entries[3]
    damaged = bytearray(blob)
    if how == "flip":
        damaged[HEADER.size + 40] ^= 0x01
    else:
        damaged = damaged[:-3]
    entries[3] = (version, bytes(damaged))
    rebuilt = state.snapshot()
    with pytest.raises(CorruptSnapshotError, match=f"version {version}"):
        codec.replay(rebuilt, entries)
    assert rebuilt == states[3]


def test_an_entry_of_edits_over_the_size_limit_is_refused():
    codec = SnapshotCodec(max_state_bytes=1000)
    old = State.new("ctx", {"l": [0]})
    new = _next(old, lambda data: data["l"].extend(["x" * 100] * 20))
    with pytest.raises(StateTooLargeError):
        codec.encode_delta(Delta.between(old, new))


def test_edits_problem_accepts_what_the_diff_writes():
    old = {"a": [1, {"b": 2}], "c": 1, "d": 0, "e": 0, "f": 0}
    edits = diff_value(old, {"a": [1, {"b": 3}, 4], "c": 1, "e": 0, "f": 0})
    assert edits is not None
    assert edits_problem(orjson.loads(orjson.dumps({"k": edits}))) is None


# -- causes in snapshots ----------------------------------------------------------------------


def test_a_snapshot_records_its_cause_as_an_extra_key_of_format_1():
    codec = SnapshotCodec()
    state = State.new("ctx", {"a": 1})
    blob = codec.encode(state, "restore")
    assert blob[4] == 1  # the snapshot format did not change: older readers ignore the key
    assert codec.decode_recorded(blob) == (state, "restore")
    assert codec.decode(blob) == state
    assert codec.decode_recorded(codec.encode(state)) == (state, None)


def test_a_snapshot_cause_that_is_not_a_string_is_damage():
    codec = SnapshotCodec()
    state = State.new("ctx", {"a": 1})
    document = {**codec.unstructure(state), "cause": 7}
    blob = _frame(MAGIC, zstandard.ZstdCompressor().compress(orjson.dumps(document)))
    with pytest.raises(CorruptSnapshotError, match="cause is not a string"):
        codec.decode(blob)
