"""Measure candidate body encodings for snapshots: `uv run python -m tests.benchmarks.codecs`.

For states of 10, 1,000 and 10,000 keys, times encoding and decoding of the inner body (the
cattrs-unstructured State) with the stdlib `json`, `orjson` and `msgpack`, then the whole
`SnapshotCodec` round (unstructure, orjson, zstd, header, CRC). Sizes are of the body as
encoded and after zstd level 3 (what a stored blob would hold). Prints one table; not a test.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
import zstandard

from storage import SnapshotCodec, State

SIZES = (10, 1_000, 10_000)
REPEAT = 5
RUN_SECONDS = 0.05


def make_state(keys: int) -> State:
    """A State shaped like a service's working set: one small record per key."""
    state = State.new("benchmark", metadata={"owner": "bench"})
    for i in range(keys):
        state.set(
            f"user:{i}",
            {
                "id": i,
                "name": f"user number {i}",
                "score": i * 1.25,
                "active": i % 3 == 0,
                "tags": ["alpha", "beta", str(i % 7)],
                "address": {"city": "Springfield", "zip": f"{10000 + i}"},
                "last_seen": None,
            },
        )
    return state


def best_seconds(call: Callable[[], object]) -> float:
    """The fastest of REPEAT runs, per call, with enough calls per run to be measurable."""
    timer = timeit.Timer(call)
    number = 1
    while timer.timeit(number) < RUN_SECONDS:
        number *= 2
    return min(timer.repeat(repeat=REPEAT, number=number)) / number


def measure(keys: int) -> list[tuple[str, float, float, int, int]]:
    """(format, encode s, decode s, bytes, bytes after zstd) for each format at this size."""
    state = make_state(keys)
    codec = SnapshotCodec()
    document: dict[str, Any] = codec.unstructure(state)

    zstd = zstandard.ZstdCompressor(level=3)
    stdlib = json.dumps(document, separators=(",", ":")).encode()
    fast = orjson.dumps(document)
    packed = msgpack.packb(document)
    blob = codec.encode(state)
    assert json.loads(stdlib) == orjson.loads(fast) == msgpack.unpackb(packed) == document
    assert codec.decode(blob) == state

    return [
        (
            "json (stdlib)",
            best_seconds(lambda: json.dumps(document, separators=(",", ":")).encode()),
            best_seconds(lambda: json.loads(stdlib)),
            len(stdlib),
            len(zstd.compress(stdlib)),
        ),
        (
            "orjson",
            best_seconds(lambda: orjson.dumps(document)),
            best_seconds(lambda: orjson.loads(fast)),
            len(fast),
            len(zstd.compress(fast)),
        ),
        (
            "msgpack",
            best_seconds(lambda: msgpack.packb(document)),
            best_seconds(lambda: msgpack.unpackb(packed)),
            len(packed),
            len(zstd.compress(packed)),
        ),
        (
            "SnapshotCodec (full blob)",
            best_seconds(lambda: codec.encode(state)),
            best_seconds(lambda: codec.decode(blob)),
            len(blob),
            len(blob),
        ),
    ]


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


def main() -> None:
    header = (
        f"{'keys':>7}  {'format':<26} {'encode':>11}  {'decode':>11}  {'bytes':>10}"
        f"  {'zstd bytes':>10}"
    )
    print(header)
    print("-" * len(header))
    for keys in SIZES:
        for name, encode, decode, size, packed in measure(keys):
            print(
                f"{keys:>7,}  {name:<26} {_time(encode)}  {_time(decode)}  {size:>10,}"
                f"  {packed:>10,}"
            )
        print()


if __name__ == "__main__":
    main()
