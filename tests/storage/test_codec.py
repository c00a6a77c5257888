"""SnapshotCodec: byte layout, and that no damaged or foreign blob ever decodes to a State."""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import orjson
import pytest
import zstandard

from storage import (
    FORMAT_VERSION,
    ConfigurationError,
    CorruptSnapshotError,
    PersistenceError,
    SnapshotCodec,
    State,
    StateTooLargeError,
    UnsupportedFormatError,
)

HEADER_SIZE = 16


@pytest.fixture
def codec() -> SnapshotCodec:
    return SnapshotCodec()


@pytest.fixture
def state() -> State:
    state = State.new("orders", {"count": 3, "items": ["a", {"b": [1.5, None, True]}]})
    state.set_metadata("owner", "team-a")
    state.version = 7
    return state


def make_blob(
    body: bytes, *, fmt: int = FORMAT_VERSION, codec_id: int = 1, flags: int = 0
) -> bytes:
    """A blob with a correct CRC and length around any body, as a buggy writer might make."""
    frame = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True).compress(body)
    return reheader(frame, fmt=fmt, codec_id=codec_id, flags=flags)


def reheader(frame: bytes, *, fmt: int, codec_id: int = 1, flags: int = 0) -> bytes:
    fields = struct.pack("<BBH", fmt, codec_id, flags)
    crc = zlib.crc32(frame, zlib.crc32(fields))
    return b"CTXS" + fields + struct.pack("<II", crc, len(frame)) + frame


def test_round_trip(codec: SnapshotCodec, state: State) -> None:
    decoded = codec.decode(codec.encode(state), context="orders", version=7)

    assert decoded == state
    assert decoded is not state
    assert decoded.created_at.utcoffset() is not None


def test_header_layout(codec: SnapshotCodec, state: State) -> None:
    blob = codec.encode(state)
    frame = blob[HEADER_SIZE:]

    assert blob[0:4] == b"CTXS"
    assert blob[4] == FORMAT_VERSION == 1
    assert blob[5] == 1  # codec id: JSON
    assert blob[6:8] == b"\x00\x00"  # flags
    (crc,) = struct.unpack_from("<I", blob, 8)
    assert crc == zlib.crc32(blob[4:8] + frame)
    (length,) = struct.unpack_from("<I", blob, 12)
    assert length == len(frame)


def test_body_is_zstd_framed_json_of_the_unstructured_state(
    codec: SnapshotCodec, state: State
) -> None:
    frame = codec.encode(state)[HEADER_SIZE:]
    params = zstandard.get_frame_parameters(frame)
    body = zstandard.ZstdDecompressor().decompress(frame)

    assert params.has_checksum
    assert params.content_size == len(body)
    document = orjson.loads(body)
    assert list(document) == ["context", "version", "created_at", "updated_at", "data", "metadata"]
    assert document["context"] == "orders"
    assert document["version"] == 7
    assert document["data"] == state.data
    assert document["metadata"] == {"owner": "team-a"}
    for field in ("created_at", "updated_at"):
        assert document[field].endswith("+00:00")
        assert datetime.fromisoformat(document[field]) == getattr(state, field)
    assert document == codec.unstructure(state)


def test_every_single_byte_flip_is_refused(codec: SnapshotCodec) -> None:
    blob = codec.encode(State.new("c", {"k": [1, "two"]}))
    assert len(blob) < 200  # small enough to try every offset with several masks

    for offset in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(blob)
            damaged[offset] ^= mask
            # A raised format version is reported as such before the CRC is checked;
            # any other damage is corruption.
            expected = (
                UnsupportedFormatError
                if offset == 4 and damaged[4] > FORMAT_VERSION
                else CorruptSnapshotError
            )
            with pytest.raises(expected):
                codec.decode(bytes(damaged))


def test_truncation_is_corruption(codec: SnapshotCodec, state: State) -> None:
    blob = codec.encode(state)

    for length in (0, 1, 4, 8, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, len(blob) - 1):
        with pytest.raises(CorruptSnapshotError):
            codec.decode(blob[:length])
    with pytest.raises(CorruptSnapshotError):
        codec.decode(blob[: len(blob) // 2])


def test_trailing_bytes_are_corruption(codec: SnapshotCodec, state: State) -> None:
    with pytest.raises(CorruptSnapshotError):
        codec.decode(codec.encode(state) + b"\x00")


def test_newer_format_with_valid_crc_is_unsupported(codec: SnapshotCodec, state: State) -> None:
    frame = codec.encode(state)[HEADER_SIZE:]

    with pytest.raises(UnsupportedFormatError, match="format 2"):
        codec.decode(reheader(frame, fmt=2))


@pytest.mark.parametrize(
    ("fmt", "codec_id", "flags"),
    [(0, 1, 0), (1, 0, 0), (1, 2, 0), (1, 1, 1), (1, 1, 0x8000)],
)
def test_unknown_codec_flags_or_old_format_with_valid_crc_are_unsupported(
    codec: SnapshotCodec, state: State, fmt: int, codec_id: int, flags: int
) -> None:
    frame = codec.encode(state)[HEADER_SIZE:]

    with pytest.raises(UnsupportedFormatError):
        codec.decode(reheader(frame, fmt=fmt, codec_id=codec_id, flags=flags))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"context": "c"}',
        b'{"context": "c", "version": 0, "created_at": "2024-01-01T00:00:00+00:00",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": [], "metadata": {}}',
        b'{"context": "c", "version": 0, "created_at": "2024-01-01T00:00:00",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": {}, "metadata": {}}',
        b'{"context": "c", "version": 0, "created_at": "yesterday",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": {}, "metadata": {}}',
        b'{"context": "c", "version": "3", "created_at": "2024-01-01T00:00:00+00:00",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": {}, "metadata": {}}',
        b'{"context": "c", "version": 0, "created_at": "2024-01-01T00:00:00+00:00",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": {}, "metadata": {"a": 5}}',
        b'{"context": 7, "version": 0, "created_at": "2024-01-01T00:00:00+00:00",'
        b' "updated_at": "2024-01-01T00:00:00+00:00", "data": {}, "metadata": {}}',
    ],
    ids=[
        "not-json",
        "array",
        "missing-fields",
        "data-not-object",
        "naive-time",
        "bad-time",
        "version-as-str",
        "metadata-not-str",
        "context-not-str",
    ],
)
def test_well_framed_but_malformed_body_is_corruption(codec: SnapshotCodec, body: bytes) -> None:
    # Only a buggy writer makes these (the CRC is right), but they must still not decode;
    # a body lacking fields would otherwise come back filled with defaults.
    with pytest.raises(CorruptSnapshotError):
        codec.decode(make_blob(body))


def test_garbage_frame_with_valid_crc_is_corruption(codec: SnapshotCodec) -> None:
    with pytest.raises(CorruptSnapshotError):
        codec.decode(reheader(b"\x28\xb5\x2f\xfd garbage", fmt=FORMAT_VERSION))


def test_context_or_version_mismatch_is_corruption(codec: SnapshotCodec, state: State) -> None:
    blob = codec.encode(state)

    with pytest.raises(CorruptSnapshotError, match="'orders'"):
        codec.decode(blob, context="invoices")
    with pytest.raises(CorruptSnapshotError, match="version 7"):
        codec.decode(blob, version=6)
    with pytest.raises(CorruptSnapshotError):
        codec.decode(blob, context="orders", version=8)
    assert codec.decode(blob, context="orders", version=7) == state


def test_errors_are_persistence_errors(codec: SnapshotCodec) -> None:
    with pytest.raises(PersistenceError):
        codec.decode(b"")
    assert issubclass(UnsupportedFormatError, PersistenceError)


def test_state_over_the_limit_is_refused(state: State) -> None:
    body_size = len(orjson.dumps(SnapshotCodec().unstructure(state)))

    SnapshotCodec(max_state_bytes=body_size).encode(state)  # exactly at the limit is fine
    with pytest.raises(StateTooLargeError) as caught:
        SnapshotCodec(max_state_bytes=body_size - 1).encode(state)

    assert caught.value.name == "orders"
    assert caught.value.size == body_size
    assert caught.value.limit == body_size - 1


def test_large_state_is_refused_by_default_limit_only_when_over_it() -> None:
    state = State.new("big", {"blob": "x" * 2000})

    with pytest.raises(StateTooLargeError):
        SnapshotCodec(max_state_bytes=1000).encode(state)
    assert SnapshotCodec().decode(SnapshotCodec().encode(state)) == state


@pytest.mark.parametrize("level", [0, -1, 23, 100])
def test_bad_compression_level_is_a_value_error(level: int) -> None:
    with pytest.raises(ConfigurationError, match="compression level"):
        SnapshotCodec(compression_level=level)


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_size_limit_is_a_value_error(limit: int) -> None:
    with pytest.raises(ConfigurationError, match="max_state_bytes"):
        SnapshotCodec(max_state_bytes=limit)


@pytest.mark.parametrize("level", [1, 22])
def test_compression_level_bounds_are_accepted(level: int, state: State) -> None:
    codec = SnapshotCodec(compression_level=level)

    assert SnapshotCodec().decode(codec.encode(state)) == state


def test_one_codec_is_shared_by_threads(codec: SnapshotCodec) -> None:
    states = [State.new(f"c{i}", {"i": i, "pad": "y" * i}) for i in range(64)]

    def round_trip(state: State) -> State:
        return codec.decode(codec.encode(state), context=state.context)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(round_trip, states, timeout=30))

    assert results == states
