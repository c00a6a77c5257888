"""Journal entries at the codec level: format 2 on disk, format 1 still read, batched replay."""

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


def test_a_key_set_is_written_as_a_four_item_array():
    codec = SnapshotCodec()
    blob = codec.encode_delta(Delta("ctx", 3, T0, {"a": 1}))
    assert blob[:4] == JOURNAL_MAGIC
    assert blob[4] == JOURNAL_FORMAT_VERSION == 2
    assert orjson.loads(blob[HEADER.size :]) == ["ctx", 3, T0.isoformat(), {"a": 1}]


def test_removals_and_metadata_are_written_as_a_seven_item_array():
    codec = SnapshotCodec()
    delta = Delta("ctx", 3, T0, {}, ("gone",), {"m": "x"}, ("old",))
    body = orjson.loads(codec.encode_delta(delta)[HEADER.size :])
    assert body == ["ctx", 3, T0.isoformat(), {}, ["gone"], {"m": "x"}, ["old"]]
    assert codec.decode_delta(codec.encode_delta(delta), context="ctx", version=3) == delta


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
    # Format 1 and 2 mixed, as in a store written before and after an upgrade.
    entries = [
        (d.version, _format_1(d) if d.version in {7, 8} else codec.encode_delta(d)) for d in deltas
    ]
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
