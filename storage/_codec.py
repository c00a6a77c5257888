"""The snapshot codec: State <-> cattrs-unstructured dict <-> JSON <-> zstd frame, behind a header.

A blob is a 16-byte header followed by one zstd frame (see docs/storage.md for the byte layout):

    offset  size  field
    0       4     magic b"CTXS"
    4       1     format version (1)
    5       1     codec id (1 = JSON, UTF-8)
    6       2     flags, reserved, 0
    8       4     CRC-32 of bytes 4..7 and of the zstd frame, little-endian
    12      4     length of the zstd frame in bytes, little-endian
    16      n     zstd frame, with content size and zstd's own content checksum

JSON was chosen over msgpack on measured numbers (orjson encodes a 10,000-key state about three
times faster than msgpack and thirteen times faster than the stdlib, and decodes it in about
0.6 of their time; after zstd the sizes are within 4%; see tests/benchmarks/codecs.py and
docs/storage.md), and a JSON body stays readable by any tool after `zstd -d`.
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import attrs
import cattrs
import orjson
import zstandard
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from storage._delta import Delta, apply_changes, apply_edits, edits_problem
from storage._exceptions import (
    ConfigurationError,
    CorruptSnapshotError,
    StateTooLargeError,
    UnsupportedFormatError,
)
from storage._state import State

__all__ = [
    "CODEC_JSON",
    "DEFAULT_MAX_STATE_BYTES",
    "FORMAT_VERSION",
    "HEADER",
    "JOURNAL_FORMAT_VERSION",
    "JOURNAL_MAGIC",
    "MAGIC",
    "SnapshotCodec",
]

MAGIC = b"CTXS"
"""The first four bytes of every snapshot blob."""

FORMAT_VERSION = 1
"""The newest snapshot format this library writes and reads."""

CODEC_JSON = 1
"""Codec id of a JSON (UTF-8) body."""

DEFAULT_MAX_STATE_BYTES = 64 * 2**20
"""Largest JSON body a State may encode to by default (64 MiB)."""

JOURNAL_MAGIC = b"CTXJ"
"""The first four bytes of every journal entry."""

JOURNAL_FORMAT_VERSION = 3
"""The journal entry format this library writes: a JSON array body with the version's cause
and the edits of values changed in part (see docs/storage.md). Entries of format 2 (an array
without them) and 1 (a JSON object body) are still read."""

HEADER = struct.Struct("<4sBBHII")
"""magic, format version, codec id, flags, CRC-32, frame length."""

# Every field must be in the body: State has defaults (version 0, "now", empty data), and
# structuring a body that lacks a field would silently fill them in.
_FIELDS = frozenset(field.name for field in attrs.fields(State))
# The fields of formats 1 and 2, and in format 2's order.
_DELTA_ORDER = (
    "context", "version", "updated_at", "changed",
    "removed", "metadata_changed", "metadata_removed",
)  # fmt: skip
_DELTA_FIELDS = frozenset(_DELTA_ORDER)
_SHORT_ENTRY = 4  # format 2: context, version, updated_at, changed: an entry that only sets
# Format 3's order: cause and edits come before the fields most entries leave empty.
_ENTRY_ORDER = (
    "context", "version", "updated_at", "cause", "changed", "edits",
    "removed", "metadata_changed", "metadata_removed",
)  # fmt: skip
_ENTRY_FIELDS = frozenset(_ENTRY_ORDER)
_SHORT = 6  # format 3: context, version, updated_at, cause, changed, edits

_CRC_AND_LENGTH = struct.Struct("<II")
# The CRC of bytes 4..7 (format, codec, flags) each format writes: where every CRC starts.
_CRC_SEEDS = {
    fmt: zlib.crc32(struct.pack("<BBH", fmt, CODEC_JSON, 0))
    for fmt in {FORMAT_VERSION, 2, JOURNAL_FORMAT_VERSION}
}
# The journal formats batched replay takes, by their first 8 bytes (format, CRC seed): replay
# checks a header with one lookup, and its CRC from the CRC of bytes 4..7, without unpacking.
_BATCHED = {
    struct.pack("<4sBBH", JOURNAL_MAGIC, fmt, CODEC_JSON, 0): (fmt, _CRC_SEEDS[fmt])
    for fmt in (2, JOURNAL_FORMAT_VERSION)
}


def _structure_datetime(value: Any, _: type) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        msg = f"timestamp {value!r} has no timezone"
        raise ValueError(msg)
    return parsed


def _exactly(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind:
            msg = f"expected {kind.__name__}, found {type(value).__name__} {value!r}"
            raise TypeError(msg)
        return value

    return structure


def _identity(value: Any) -> Any:
    return value


def _structure_data(value: Any, _: type) -> dict[str, Any]:
    # The body came out of orjson, so every value is JSON already; only the top level
    # shape can be wrong in a blob that passed its checksums but was written by a bug.
    if type(value) is not dict:
        msg = f"data must be an object, not {type(value).__name__}"
        raise TypeError(msg)
    return value


@functools.cache
def _make_converter() -> cattrs.Converter:
    # One per process, shared by every codec: building it (cattrs generates and compiles
    # its functions) is most of what opening a store costs, and it holds no options.
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, datetime.isoformat)
    converter.register_structure_hook(datetime, _structure_datetime)
    # cattrs would coerce ("3" -> 3, 5 -> "5"); a blob that needs coercing is not ours.
    converter.register_structure_hook(int, _exactly(int))
    converter.register_structure_hook(str, _exactly(str))
    # `data` was validated when it was set: pass it through instead of walking every value
    # again (a 10,000-key state unstructures in microseconds instead of milliseconds).
    converter.register_unstructure_hook(
        State, make_dict_unstructure_fn(State, converter, data=override(unstruct_hook=_identity))
    )
    converter.register_structure_hook(
        State,
        make_dict_structure_fn(State, converter, data=override(struct_hook=_structure_data)),
    )
    return converter


def _crc(header_fields: bytes, frame: bytes) -> int:
    return zlib.crc32(frame, zlib.crc32(header_fields))


class SnapshotCodec:
    """Encodes States to self-checking blobs and decodes them back, or raises.

    Thread-safe: zstd (de)compressor objects are not, so each thread gets its own.

    Raises:
        ConfigurationError: `compression_level` is not 1..22 or `max_state_bytes` not positive.
    """

    def __init__(
        self, compression_level: int = 3, max_state_bytes: int = DEFAULT_MAX_STATE_BYTES
    ) -> None:
        if not 1 <= compression_level <= 22:
            msg = f"zstd compression level must be 1..22, got {compression_level!r}"
            raise ConfigurationError(msg)
        if max_state_bytes < 1:
            msg = f"max_state_bytes must be positive, got {max_state_bytes!r}"
            raise ConfigurationError(msg)
        self.compression_level = compression_level
        self.max_state_bytes = max_state_bytes
        self._converter = _make_converter()
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(
                level=self.compression_level, write_checksum=True, write_content_size=True
            )
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor

    def unstructure(self, state: State) -> dict[str, Any]:
        """The plain-dict form of `state` that the JSON body holds."""
        result: dict[str, Any] = self._converter.unstructure(state)
        return result

    def encode(self, state: State, cause: str | None = None) -> bytes:
        """Encode `state` into a blob, recording `cause` (what made this version: the
        runtime's `ChangeCause` value) if given.

        Raises:
            StateTooLargeError: the JSON body is longer than `max_state_bytes`.
        """
        document = self.unstructure(state)
        if cause is not None:
            # An extra key: readers before it ignore it (they check for State's fields and
            # structure only those), so the snapshot format stays 1.
            document["cause"] = cause
        body = orjson.dumps(document)
        if len(body) > self.max_state_bytes:
            raise StateTooLargeError(state.context, len(body), self.max_state_bytes)
        return _frame(MAGIC, self._compressor().compress(body))

    def decode(
        self,
        blob: bytes,
        *,
        context: str | None = None,
        version: int | None = None,
    ) -> State:
        """Decode a blob, checking it holds `version` of `context` when they are given.

        Raises:
            CorruptSnapshotError: the blob is truncated, damaged, or holds another record.
            UnsupportedFormatError: the blob was written by a newer format or another codec.
        """
        return self.decode_recorded(blob, context=context, version=version)[0]

    def decode_recorded(
        self,
        blob: bytes,
        *,
        context: str | None = None,
        version: int | None = None,
    ) -> tuple[State, str | None]:
        """`decode`, and the cause the snapshot records (None if none: written without one,
        or before snapshots recorded it).

        Raises: as `decode`.
        """
        where = _describe("snapshot", context, version)
        _, frame = _unframe(blob, MAGIC, where)
        try:
            body = self._decompress(frame, where)
            document = orjson.loads(body)
            if type(document) is not dict or not document.keys() >= _FIELDS:
                raise CorruptSnapshotError(f"{where}: body is not a State with every field")
            cause = document.pop("cause", None)
            if cause is not None and type(cause) is not str:
                raise CorruptSnapshotError(f"{where}: its cause is not a string")
            state = self._converter.structure(document, State)
        except (zstandard.ZstdError, orjson.JSONDecodeError, cattrs.BaseValidationError) as exc:
            raise CorruptSnapshotError(f"{where}: {exc}") from exc
        if context is not None and state.context != context:
            raise CorruptSnapshotError(f"{where}: blob holds context {state.context!r}")
        if version is not None and state.version != version:
            raise CorruptSnapshotError(f"{where}: blob holds version {state.version}")
        return state, cause

    def _decompress(self, frame: bytes, where: str) -> bytes:
        """The frame's content, never more than `max_state_bytes` of it.

        A small blob can expand to gigabytes (a decompression bomb, or damage that passed
        the checksum): what a frame declares is checked before anything is allocated, and a
        frame that declares no size is decompressed into a buffer of the limit, which
        refuses to grow. Either way a body over the limit is damage, as `encode()` never
        writes one.
        """
        limit = self.max_state_bytes
        declared = zstandard.frame_content_size(frame)  # -1: not declared
        if declared > limit:
            msg = (
                f"{where}: its frame declares {declared} bytes of content, over the "
                f"max_state_bytes limit of {limit}"
            )
            raise CorruptSnapshotError(msg)
        try:
            return self._decompressor().decompress(frame, max_output_size=limit)
        except zstandard.ZstdError as exc:
            if declared == -1 and "did not decompress full frame" in str(exc):
                msg = f"{where}: its content expands past the max_state_bytes limit of {limit}"
                raise CorruptSnapshotError(msg) from exc
            raise

    def encode_delta(self, delta: Delta) -> bytes:
        """Encode a journal entry: the same header (magic b"CTXJ"), an uncompressed JSON body.

        Raises:
            StateTooLargeError: the JSON body is longer than `max_state_bytes`.
        """
        # A positional array, and the last three fields only when one is not empty (most
        # updates only set keys): replay parses one entry per update since the last snapshot,
        # and orjson builds a short array in well under half the time of the 7-field object
        # format 1 had. Written by hand: cattrs' generic unstructure cost more than orjson.
        # A key with edits is written as its edits, not its (maybe long) new value.
        changed, edits = delta.changed, delta.edits
        if edits:
            changed = {key: value for key, value in changed.items() if key not in edits}
        fields: list[Any] = [
            delta.context,
            delta.version,
            delta.updated_at,  # orjson writes exactly isoformat(), in a third of the time
            delta.cause,
            changed,
            edits,
        ]
        if delta.removed or delta.metadata_changed or delta.metadata_removed:
            fields += (delta.removed, delta.metadata_changed, delta.metadata_removed)
        body = orjson.dumps(fields)
        if len(body) > self.max_state_bytes:
            raise StateTooLargeError(delta.context, len(body), self.max_state_bytes)
        return _frame(JOURNAL_MAGIC, body, JOURNAL_FORMAT_VERSION)

    def decode_delta(self, blob: bytes, *, context: str, version: int) -> Delta:
        """Decode a journal entry, checking it holds `version` of `context`.

        Raises:
            CorruptSnapshotError: the entry is truncated, damaged, or holds another record.
            UnsupportedFormatError: the entry was written by a newer format.
        """
        document = _entry_document(blob, context, version)
        return Delta(
            context,
            version,
            document["updated_at"],
            document["changed"],
            tuple(document["removed"]),
            document["metadata_changed"],
            tuple(document["metadata_removed"]),
            document["edits"],
            document["cause"],
        )

    def replay(self, state: State, entries: Iterable[tuple[int, bytes]]) -> None:
        """Apply journal entries, `(version, blob)` in version order, to `state` in place.

        Stops at the first entry that is damaged or does not follow `state`: the entries
        before it stay applied (so `state.version + 1` is the version that failed) and the
        error is raised. The same as `decode_delta(...).apply(state)` for each entry, without
        building the Deltas: recovery replays up to thousands of entries.

        Raises: as `decode_delta`, and `StateError` if a version does not follow `state`'s.
        """
        entries = list(entries)
        documents = _parse_batch(entries)
        index = 0
        while index < len(entries):
            index = _apply_short_entries(state, entries, documents, index)
            if index == len(entries):
                break
            # What the fast path does not take (the long form, format 1, damage, a batch
            # that did not parse) goes through the reference path, which names any problem.
            version, blob = entries[index]
            document = _entry_document(blob, state.context, version)
            apply_changes(
                state,
                version,
                document["updated_at"],
                document["changed"],
                document["removed"],
                document["metadata_changed"],
                document["metadata_removed"],
                document["edits"],
            )
            index += 1


def _parse_batch(entries: list[tuple[int, bytes]]) -> list[tuple[int, Any]]:
    """The format and parsed body of the leading entries whose header and CRC are intact
    (formats 2 and 3), in one orjson call (or none, if the batch does not parse as one value
    per entry).

    Replay was 2.3 us per entry one by one (pyinstrument: header unpacking, CRC and per-call
    overheads); this checks a header with one 8-byte lookup and parses once.
    """
    payloads, formats = [], []
    unpack, crc32, size, batched = _CRC_AND_LENGTH.unpack_from, zlib.crc32, HEADER.size, _BATCHED
    for _version, blob in entries:
        known = batched.get(blob[:8])
        if known is None or len(blob) < size:
            break
        crc, length = unpack(blob, 8)
        payload = blob[size:]
        if len(payload) != length or crc32(payload, known[1]) != crc:
            break
        payloads.append(payload)
        formats.append(known[0])
    if not payloads:
        return []
    try:
        documents: list[Any] = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        return []
    # Each entry is checked to hold its own context and version below, so bodies that were
    # not one JSON value each (and shifted the rest) cannot be applied to the wrong version.
    if len(documents) != len(payloads):
        return []
    return list(zip(formats, documents, strict=True))


def _apply_short_entries(
    state: State, entries: list[tuple[int, bytes]], documents: list[tuple[int, Any]], start: int
) -> int:
    """Apply parsed entries from `start` while they are short-form (keys set, maybe by
    edits) and pass every check `_entry_document` makes; returns the index of the first one
    not applied (a failed edit is undone, for the reference path to report)."""
    context, data = state.context, state.data
    version, updated_at = state.version, state.updated_at
    parse = datetime.fromisoformat
    index = start
    while index < len(documents):
        short = _short_fields(*documents[index])
        if short is None:
            break
        name, number, stamp, changed, edits = short
        if not (
            name == context
            and type(number) is int
            and number == version + 1 == entries[index][0]
            and type(stamp) is str
            and type(changed) is dict
        ):
            break
        try:
            stamped = parse(stamp)
        except ValueError:
            break
        if stamped.tzinfo is None:
            break
        if edits:
            if not edits.keys().isdisjoint(changed) or edits_problem(edits) is not None:
                break
            try:
                apply_edits(data, edits)
            except ValueError:
                break
        data.update(changed)
        version, updated_at = number, stamped
        index += 1
    state.version, state.updated_at = version, updated_at
    return index


def _short_fields(fmt: int, document: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    """A short-form entry's context, version, timestamp, changed and edits (None for format
    2), or None if it is not one."""
    if type(document) is not list:
        return None
    if fmt == JOURNAL_FORMAT_VERSION:
        if len(document) != _SHORT:
            return None
        name, number, stamp, cause, changed, edits = document
        if not (cause is None or type(cause) is str) or type(edits) is not dict:
            return None
        return name, number, stamp, changed, edits
    if len(document) != _SHORT_ENTRY:
        return None
    name, number, stamp, changed = document
    return name, number, stamp, changed, None


def _entry_document(blob: bytes, context: str, version: int) -> dict[str, Any]:
    """The fields of a journal entry (any format) as a dict, checked down to the type of
    every field, with `updated_at` parsed.

    Written out instead of using the cattrs converter: replay reads one entry per update
    since the last snapshot, and the generated cattrs structure function was 5.5 us of the
    6.7 us each entry took when recovering 10,000 keys and 1,000 entries (pyinstrument).
    """
    try:
        fmt, payload = _unframe(blob, JOURNAL_MAGIC, "", newest=JOURNAL_FORMAT_VERSION)
        body = orjson.loads(payload)
        document: Any = _from_array(body, fmt) if fmt > 1 else body
        if fmt < JOURNAL_FORMAT_VERSION and type(document) is dict:
            document = _upgraded(document)
        problem = _entry_problem(document)
        if problem is None:
            document["updated_at"] = _structure_datetime(document["updated_at"], datetime)
    except (CorruptSnapshotError, UnsupportedFormatError) as exc:
        where = _describe("journal entry", context, version)
        raise type(exc)(f"{where}{exc}") from exc
    except (orjson.JSONDecodeError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        where = _describe("journal entry", context, version)
        raise CorruptSnapshotError(f"{where}: {problem}")
    if document["context"] != context or document["version"] != version:
        where = _describe("journal entry", context, version)
        raise CorruptSnapshotError(
            f"{where}: entry holds version {document['version']} of {document['context']!r}"
        )
    return dict(document)


def _upgraded(document: dict[str, Any]) -> dict[str, Any]:
    """A format 1 or 2 entry's fields with format 3's: no cause recorded, no edits."""
    if document.keys() != _DELTA_FIELDS:
        return document  # refused by `_entry_problem`
    return {**document, "cause": None, "edits": {}}


def _from_array(body: Any, fmt: int) -> Any:
    """An array body (format 2: 4 or 7 items; format 3: 6 or 9) as a dict of its fields,
    or None (for `_entry_problem` to refuse) if it is not one."""
    if type(body) is not list:
        return None
    order, short = (_ENTRY_ORDER, _SHORT) if fmt == JOURNAL_FORMAT_VERSION else (
        _DELTA_ORDER, _SHORT_ENTRY
    )  # fmt: skip
    if len(body) == short:
        body = [*body, [], {}, []]
    if len(body) != len(order):
        return None
    return dict(zip(order, body, strict=True))


def _entry_problem(document: Any) -> str | None:
    """What is wrong with the shape of a journal entry's JSON, if anything."""
    if type(document) is not dict or document.keys() != _ENTRY_FIELDS:
        return "body is not a delta with exactly its fields"
    removed, meta_changed = document["removed"], document["metadata_changed"]
    meta_removed, cause = document["metadata_removed"], document["cause"]
    if not (
        type(document["context"]) is str
        and type(document["version"]) is int
        and type(document["updated_at"]) is str
        and type(document["changed"]) is dict
        and (cause is None or type(cause) is str)
        and type(removed) is list
        and type(meta_changed) is dict
        and type(meta_removed) is list
        # Most entries remove nothing and touch no metadata: skip the loops then.
        and (not removed or all(type(key) is str for key in removed))
        and (not meta_removed or all(type(key) is str for key in meta_removed))
        and (not meta_changed or all(type(v) is str for v in meta_changed.values()))
    ):
        return "a delta field has the wrong type"
    edits = document["edits"]
    if edits:
        problem = edits_problem(edits)
        if problem is not None:
            return problem
        keys = edits.keys()
        if not keys.isdisjoint(document["changed"]) or not keys.isdisjoint(removed):
            return "a key is both edited and set whole or removed"
    elif type(edits) is not dict:
        return "edits are not an object"
    return None


def _unframe(
    blob: bytes, magic: bytes, where: str, newest: int = FORMAT_VERSION
) -> tuple[int, bytes]:
    """Check a blob's header and CRC; return its format version and payload, or raise."""
    blob = bytes(blob)
    if len(blob) < HEADER.size:
        raise CorruptSnapshotError(
            f"{where}: blob is {len(blob)} bytes, shorter than the {HEADER.size}-byte header"
        )
    found, fmt, codec, flags, crc, length = HEADER.unpack_from(blob)
    if found != magic:
        raise CorruptSnapshotError(f"{where}: bad magic {found!r}, expected {magic!r}")
    if fmt > newest:
        raise UnsupportedFormatError(
            f"{where}: written in format {fmt}; this library reads up to {newest}"
        )
    payload = blob[HEADER.size :]
    if len(payload) != length:
        raise CorruptSnapshotError(
            f"{where}: payload is {len(payload)} bytes, header says {length} (truncated?)"
        )
    if _crc(blob[4:8], payload) != crc:
        raise CorruptSnapshotError(f"{where}: CRC-32 mismatch")
    if fmt < 1 or codec != CODEC_JSON or flags != 0:
        raise UnsupportedFormatError(
            f"{where}: format {fmt}, codec {codec}, flags {flags} are not supported"
        )
    return fmt, payload


def _frame(magic: bytes, payload: bytes, fmt: int = FORMAT_VERSION) -> bytes:
    crc = zlib.crc32(payload, _CRC_SEEDS[fmt])
    return HEADER.pack(magic, fmt, CODEC_JSON, 0, crc, len(payload)) + payload


def _describe(kind: str, context: str | None, version: int | None) -> str:
    parts = [kind]
    if context is not None:
        parts.append(f"of context {context!r}")
    if version is not None:
        parts.append(f"version {version}")
    return " ".join(parts)
