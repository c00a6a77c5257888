"""Shared test configuration.

Only what every test package needs lives here; backend fixtures live next to the tests that
use them (see tests/storage/test_store_contract.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline turns a slow CI machine into a flaky failure; hangs are
# caught by pytest-timeout (60 s default, set in pyproject.toml) instead.
settings.register_profile("context-runtime", deadline=None)
settings.load_profile("context-runtime")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench",
        action="store_true",
        help="also run the tests that run the benchmark commands end to end (tests/benchmarks)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The benchmark commands' tests check that each command runs and its counts hold, not a
    # speed; they take about 50 s, so the default run leaves them to CI (`.ci/run`).
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="runs a benchmark command: pass --bench to run it")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)


def _by_get(future: Any) -> Any:
    return future.get()


def _by_await(future: Any) -> Any:
    async def waiter() -> Any:
        return await future

    return asyncio.run(waiter())


@pytest.fixture(params=[_by_get, _by_await], ids=["get", "await"])
def wait(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    """Wait for a `ContextFuture` one of the two ways a caller can: `.get()` from a thread, or
    `await` in an event loop. A test taking this runs once each way, so that no result or
    error is checked through one of them only."""
    return request.param  # type: ignore[no-any-return]
