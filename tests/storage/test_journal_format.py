"""Journal entries at the codec level: format 3 on disk, formats 1 and 2 still read, batched
replay."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from storage import (
    JOURNAL_FORMAT_VERSION,
    CorruptSnapshotError,
    SnapshotCodec,
    State,
    UnsupportedFormatError,
)
from storage._codec import HEADER, JOURNAL_MAGIC
from storage._delta import Delta

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _entry(body: bytes, fmt: int = JOURNAL_FORMAT_VERSION) -> bytes:
    """A journal entry framed by hand, so the test does not trust the codec's framing."""
    fields = struct.pack("<BBH", fmt, 1, 0)
    crc = zlib.crc32(body, zlib.crc32(fields))
    return HEADER.pack(JOURNAL_MAGIC, fmt, 1, 0, crc, len(body)) + body


def _format_1(delta: Delta) -> bytes:
    return _entry(
        orjson.dumps(
            {
                "context": delta.context,
                "version": delta.version,
                "updated_at": delta.updated_at.isoformat(),
                "changed": delta.changed,
                "removed": delta.removed,
                "metadata_changed": delta.metadata_changed,
                "metadata_removed": delta.metadata_removed,
            }
        ),
        fmt=1,
    )


def _format_2(delta: Delta) -> bytes:
    fields: list[object] = [delta.context, delta.version, delta.updated_at, delta.changed]
    if delta.removed or delta.metadata_changed or delta.metadata_removed:
        fields += [delta.removed, delta.metadata_changed, delta.metadata_removed]
    return _entry(orjson.dumps(fields), fmt=2)


# Entries as the format-2 library (before cause and edits) wrote them, byte for byte.
FORMAT_2_ENTRY = bytes.fromhex(
    "4354584a020100006c3b443f380000005b22637478222c312c22323032362d30312d30325430333a30343a"
    "30352e3637383930312b30303a3030222c7b2261223a5b312c325d7d5d"
)
FORMAT_2_LONG_ENTRY = bytes.fromhex(
    "4354584a020100004f5a11484a0000005b22637478222c322c22323032362d30312d30325430333a30343a"
    "30352e3637383930312b30303a3030222c7b2263223a337d2c5b2262225d2c7b226d223a2278227d2c5b226e"
    "225d5d"
)


def _deltas(count: int, start: int = 1) -> list[Delta]:
    """Deltas from `start`: mostly key sets, every fifth also removes and touches metadata."""
    deltas = []
    for version in range(start, start + count):
        stamp = T0 + timedelta(seconds=version)
        if version % 5:
            deltas.append(Delta("ctx", version, stamp, {f"k{version % 7}": version}))
        else:
            deltas.append(
                Delta("ctx", version, stamp, {"n": [version]}, ("k1",), {"m": str(version)}, ())
            )
    return deltas


def _replayed_one_by_one(state: State, deltas: list[Delta]) -> State:
    expected = state.snapshot()
    for delta in deltas:
        delta.apply(expected)
    return expected


def test_a_key_set_is_written_as_a_six_item_array():
    codec = SnapshotCodec()
    blob = codec.encode_delta(Delta("ctx", 3, T0, {"a": 1}, cause="update"))
    assert blob[:4] == JOURNAL_MAGIC
    assert blob[4] == JOURNAL_FORMAT_VERSION == 3
    body = orjson.loads(blob[HEADER.size :])
    assert body == ["ctx", 3, T0.isoformat(), "update", {"a": 1}, {}]


def test_removals_and_metadata_are_written_as_a_nine_item_array():
    codec = SnapshotCodec()
    delta = Delta("ctx", 3, T0, {}, ("gone",), {"m": "x"}, ("old",))
    body = orjson.loads(codec.encode_delta(delta)[HEADER.size :])
    assert body == ["ctx", 3, T0.isoformat(), None, {}, {}, ["gone"], {"m": "x"}, ["old"]]
    assert codec.decode_delta(codec.encode_delta(delta), context="ctx", version=3) == delta


def test_an_edited_key_is_written_as_its_edits_not_its_value():
    codec = SnapshotCodec()
    old = State.new("ctx", {"cart": list(range(1000)), "n": 1})
    new = old.successor(old.snapshot())
    new.data["cart"].append(1000)
    delta = Delta.between(old, new, "update")
    assert delta.edits == {"cart": [("a", (), [1000])]}
    assert delta.changed["cart"] is new.data["cart"]  # whole, for subscribers
    blob = codec.encode_delta(delta)
    assert len(blob) < 100
    body = orjson.loads(blob[HEADER.size :])
    assert body[3:] == ["update", {}, {"cart": [["a", [], [1000]]]}]
    read = codec.decode_delta(blob, context="ctx", version=1)
    assert (read.changed, read.edits, read.cause) == ({}, {"cart": [["a", [], [1000]]]}, "update")
    assert read.keys_set == ("cart",)
    state = old.snapshot()
    read.apply(state)
    assert state == new
    assert read.changed == {"cart": new.data["cart"]}  # filled in by apply


def test_format_2_entries_are_still_read():
    codec = SnapshotCodec()
    short = Delta("ctx", 1, T0, {"a": [1, 2]})
    long = Delta("ctx", 2, T0, {"c": 3}, ("b",), {"m": "x"}, ("n",))
    assert codec.decode_delta(_format_2(short), context="ctx", version=1) == short
    assert codec.decode_delta(_format_2(long), context="ctx", version=2) == long
    # Bytes a format-2 writer stored, kept as they were.
    assert _format_2(short) == FORMAT_2_ENTRY
    assert _format_2(long) == FORMAT_2_LONG_ENTRY
    read = codec.decode_delta(FORMAT_2_ENTRY, context="ctx", version=1)
    assert read.cause is None
    assert read.edits == {}
    state = State.new("ctx", {"b": 0}, {"n": "y"})
    codec.replay(state, [(1, FORMAT_2_ENTRY), (2, FORMAT_2_LONG_ENTRY)])
    assert (state.version, state.data, state.metadata) == (2, {"a": [1, 2], "c": 3}, {"m": "x"})


def test_format_1_entries_are_still_read():
    codec = SnapshotCodec()
    delta = Delta("ctx", 1, T0, {"a": [1, 2]}, ("b",), {"m": "x"}, ("n",))
    assert codec.decode_delta(_format_1(delta), context="ctx", version=1) == delta
    state = State.new("ctx", {"b": 0}, {"n": "y"})
    codec.replay(state, [(1, _format_1(delta))])
    assert (state.version, state.data, state.metadata) == (1, {"a": [1, 2]}, {"m": "x"})
    assert state.updated_at == T0


def test_batched_replay_equals_applying_each_delta():
    codec = SnapshotCodec()
    start = State.new("ctx", {"k0": "x"})
    deltas = _deltas(40)
    # Formats 1, 2 and 3 mixed, as in a store written before and after upgrades.
    old = {7: _format_1, 8: _format_1, 20: _format_2, 21: _format_2, 22: _format_2}
    entries = [(d.version, old.get(d.version, codec.encode_delta)(d)) for d in deltas]
    state = start.snapshot()
    codec.replay(state, entries)
    assert state == _replayed_one_by_one(start, deltas)
    assert state.version == 40
    assert state.updated_at == T0 + timedelta(seconds=40)


@pytest.mark.parametrize("position", [0, 1, 17, 29])
@pytest.mark.parametrize("how", ["flip", "truncate", "newer format", "wrong version"])
def test_a_damaged_entry_in_a_batch_stops_replay_just_before_it(position, how):
    codec = SnapshotCodec()
    start = State.new("ctx")
    deltas = _deltas(30)
    entries = [(d.version, codec.encode_delta(d)) for d in deltas]
    version, blob = entries[position]
    damaged = bytearray(blob)
    if how == "flip":
        damaged[HEADER.size + 3] ^= 0x20
        expected_error = CorruptSnapshotError
    elif how == "truncate":
        damaged = damaged[:-2]
        expected_error = CorruptSnapshotError
    elif how == "newer format":
        damaged[4] = JOURNAL_FORMAT_VERSION + 1
        expected_error = UnsupportedFormatError
    else:  # well framed, but holds the next version
        body = orjson.loads(blob[HEADER.size :])
        body[1] += 1
        damaged = bytearray(_entry(orjson.dumps(body)))
        expected_error = CorruptSnapshotError
    entries[position] = (version, bytes(damaged))
    state = start.snapshot()
    with pytest.raises(expected_error, match=f"journal entry of context 'ctx' version {version}"):
        codec.replay(state, entries)
    assert state == _replayed_one_by_one(start, deltas[:position])


@pytest.mark.parametrize(
    "body",
    [
        b'["ctx", 1, "2026-01-02T03:04:05+00:00", {"a": 1}], ["ctx", 2',  # two values, cut
        b'{"context": "ctx", "version": 1}',  # format 2 header, object body
        b'["ctx", 1, "2026-01-02T03:04:05", {"a": 1}]',  # no timezone
        b'["ctx", 1, "2026-01-02T03:04:05+00:00", [["a", 1]]]',  # changed not an object
        b'["ctx", true, "2026-01-02T03:04:05+00:00", {"a": 1}]',  # version a bool
        b'["ctx", 1, "2026-01-02T03:04:05+00:00", {"a": 1}, ["b"]]',  # five items
        b'["other", 1, "2026-01-02T03:04:05+00:00", {"a": 1}]',  # another context
    ],
)
def test_a_well_framed_but_malformed_body_is_refused_and_changes_nothing(body):
    codec = SnapshotCodec()
    state = State.new("ctx", {"a": 0})
    before = state.snapshot()
    good = codec.encode_delta(Delta("ctx", 2, T0, {"b": 2}))
    with pytest.raises(CorruptSnapshotError, match="journal entry of context 'ctx' version 1"):
        codec.replay(state, [(1, _entry(body)), (2, good)])
    assert state == before
    with pytest.raises(CorruptSnapshotError):
        codec.decode_delta(_entry(body), context="ctx", version=1)
