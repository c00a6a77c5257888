"""The cost of a typed modify: `uv run python -m tests.benchmarks.typed_modify`.

A 10-field model (strs, numbers, a bool, a datetime, an Optional, lists and a dict); each
update increments one int field, untyped (`state.set`) and typed (`model.count += 1`). Two
figures each: the update's work as the tracker runs it (the plain `modify` function, no
actor), and a call waited for with `.get()` on an in-memory manager. Prints one table; not
a test (docs/typed-contexts.md quotes it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from actors import ContextFuture, State, TypedTracker, create_manager
from actors._updates import modify

CALLS = 3000
ROUNDS = 5


@attrs.define
class Ten:
    name: str = "ann"
    count: int = 0
    ratio: float = 0.5
    flag: bool = True
    tags: list[str] = attrs.Factory(lambda: ["a", "b", "c"])
    scores: dict[str, int] = attrs.Factory(lambda: {"x": 1, "y": 2})
    when: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    note: str | None = None
    lines: list[int] = attrs.Factory(lambda: list(range(10)))
    owner: str = "bob"


def bump(model: Ten) -> None:
    model.count += 1


def bump_state(state: State) -> None:
    state.set("count", state.get("count") + 1)


def best(call: Callable[[], object]) -> float:
    """Seconds per call, best of `ROUNDS` rounds of `CALLS` calls."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            call()
        times.append((time.perf_counter() - start) / CALLS)
    return min(times)


class _Capture:
    """Stands in for a ContextTracker to catch the plain function a typed modify sends."""

    name = "bench"

    def __init__(self) -> None:
        self.fn: Callable[[State], object] | None = None

    def modify(self, fn: Callable[[State], object]) -> ContextFuture[Any]:
        self.fn = fn
        return ContextFuture.failed(RuntimeError("captured"), what="bench")


def main() -> None:
    capture = _Capture()
    TypedTracker(capture, Ten).modify(bump)  # type: ignore[arg-type]
    typed_fn = capture.fn
    assert typed_fn is not None
    with create_manager() as manager:
        typed = manager.typed(Ten).get_tracker("ten", create=True, initial=Ten()).get()
        untyped = typed.tracker
        state = untyped.get_state().get()
        rows = [
            (
                "the update's work in the tracker",
                lambda: modify(state, bump_state),
                lambda: modify(state, typed_fn),
            ),
            (
                "a call waited for (.get()), in memory",
                lambda: untyped.modify(bump_state).get(),
                lambda: typed.modify(bump).get(),
            ),
        ]
        print(f"{'':40} {'untyped':>10} {'typed':>10} {'ratio':>6}")
        for label, plain, typed_call in rows:
            for _ in range(300):  # warm up: cattrs builds its functions on first use
                plain()
                typed_call()
            u, t = best(plain), best(typed_call)
            print(f"{label:40} {u * 1e6:8.1f}us {t * 1e6:8.1f}us {t / u:6.2f}")


if __name__ == "__main__":
    main()
