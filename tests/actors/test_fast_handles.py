"""`ContextManager.get_tracker()` of a running context answers without the manager actor.

The manager publishes the handle of each running context (`ContextRegistry.handles`) and
takes it back before it answers anything that ends the context's ACTIVE life; the facade
asks the manager, as before, while a `deactivate()`, `delete_context()`,
`restore_recovery_point()` or `shutdown()` it sent is not answered. Each test holds the
manager actor busy (`hold_manager`) where it matters, so that what is answered at once came
from the fast path and what waits was queued behind the manager's work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors import (
    ContextManager,
    ContextNotFoundError,
    ContextStatus,
    ContextTracker,
    InvalidArgumentError,
    InvalidValueError,
    RecoveryError,
    ShutdownError,
    SupervisorConfig,
)
from actors._future import ContextFuture
from actors._tracker import TrackerActor
from actors.testing import ManualClock, crash

from .conftest import WAIT, Hold, hold_manager, make_manager, make_tracker, run_threads, wait_until

PERIOD = 60.0


def _wait_get(future: ContextFuture[Any]) -> Any:
    return future.get(timeout=WAIT)


def _wait_await(future: ContextFuture[Any]) -> Any:
    async def wait() -> Any:
        return await asyncio.wait_for(_awaited(future), WAIT)

    return asyncio.run(wait())


async def _awaited(future: ContextFuture[Any]) -> Any:
    return await future


WAYS: dict[str, Callable[[ContextFuture[Any]], Any]] = {"get": _wait_get, "await": _wait_await}


@pytest.fixture(params=sorted(WAYS))
def wait(request: pytest.FixtureRequest) -> Callable[[ContextFuture[Any]], Any]:
    """How the caller waits: `.get()` from a thread, or `await` in an event loop."""
    return WAYS[request.param]


@pytest.fixture
def held() -> Iterator[Hold]:
    """A `Hold` released at the end of the test whatever happens."""
    hold = Hold()
    yield hold
    hold.release.set()


def published(manager: ContextManager, name: str) -> ContextTracker:
    """The running tracker of `name`, once the manager has published its handle (it does
    so in its own thread, just after the first caller got the handle)."""
    tracker = manager.get_tracker(name).get(timeout=WAIT)
    assert wait_until(lambda: name in manager._handles)
    return tracker


def hold(manager: ContextManager, held: Hold) -> None:
    hold_manager(manager, held)
    assert held.entered.wait(WAIT)


def test_a_running_context_s_handle_comes_without_the_manager(wait, held):
    with make_manager() as manager:
        tracker = make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        hold(manager, held)  # the manager answers nothing until released

        future = manager.get_tracker("ctx")
        created = manager.get_tracker("ctx", create=True)
        assert future.done()
        assert created.done()
        assert wait(future) == tracker
        assert wait(created) == tracker
        held.release.set()
        assert wait(wait(future).get("n")) == 1


def test_create_with_data_answers_the_running_context_and_ignores_the_data(wait, held):
    with make_manager() as manager:
        make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        hold(manager, held)

        future = manager.get_tracker("ctx", create=True, data={"n": 99}, metadata={"a": "b"})
        assert future.done()
        held.release.set()
        tracker = wait(future)
        assert wait(tracker.get("n")) == 1  # as the manager does: the seed is for a new one
        assert dict(wait(tracker.get_state()).metadata) == {}


def test_bad_arguments_are_refused_even_for_a_running_context(wait, held):
    with make_manager() as manager:
        make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        hold(manager, held)

        with pytest.raises(InvalidArgumentError, match="without create=True"):
            wait(manager.get_tracker("ctx", data={"n": 2}))
        with pytest.raises(InvalidValueError):
            wait(manager.get_tracker("ctx", create=True, data={"n": object()}))
        with pytest.raises(InvalidValueError):
            wait(manager.get_tracker("ctx", create=True, metadata={"a": 1}))  # type: ignore[dict-item]
        held.release.set()


def test_get_tracker_after_a_deactivate_not_waited_for_gets_a_working_handle(wait, held):
    with make_manager() as manager:
        make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        hold(manager, held)

        deactivated = manager.deactivate("ctx")  # not waited for: the caller goes on
        future = manager.get_tracker("ctx")
        assert not future.done()  # queued behind the deactivation, in the manager
        held.release.set()

        tracker = wait(future)
        assert deactivated.done()
        assert wait(tracker.get("n")) == 1
        assert wait(manager.status("ctx")) is ContextStatus.ACTIVE
        assert "ctx" in manager._handles


def test_get_tracker_after_a_waited_deactivate_activates_again(wait):
    with make_manager() as manager:
        make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        wait(manager.deactivate("ctx"))
        assert "ctx" not in manager._handles
        assert wait(wait(manager.get_tracker("ctx")).get("n")) == 1
        assert wait(manager.status("ctx")) is ContextStatus.ACTIVE


def test_get_tracker_after_a_delete_not_waited_for_finds_no_context(wait, held):
    with make_manager() as manager:
        make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        hold(manager, held)

        deleted = manager.delete_context("ctx")
        future = manager.get_tracker("ctx")
        assert not future.done()
        held.release.set()

        with pytest.raises(ContextNotFoundError):
            wait(future)
        assert deleted.done()
        assert "ctx" not in manager._handles


def test_a_failed_context_is_no_longer_handed_out(wait):
    with make_manager(supervisor=SupervisorConfig(max_restarts=0)) as manager:
        tracker = make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        with pytest.raises(RecoveryError):
            wait(crash(tracker))  # past the restart limit: FAILED

        assert "ctx" not in manager._handles
        with pytest.raises(RecoveryError):
            wait(manager.get_tracker("ctx"))


def test_get_tracker_after_a_shutdown_not_waited_for_is_refused(wait, held):
    manager = make_manager()
    make_tracker(manager, data={"n": 1})
    published(manager, "ctx")
    hold(manager, held)

    stopped = manager.shutdown()
    future = manager.get_tracker("ctx")
    assert not future.done()
    held.release.set()

    with pytest.raises(ShutdownError):
        wait(future)
    wait(stopped)
    assert manager._handles == {}
    with pytest.raises(ShutdownError):
        wait(manager.get_tracker("ctx"))


def _idle(clock: ManualClock) -> bool:
    """Let time pass until no tracker runs (every one passivated)."""

    def passivated() -> bool:
        clock.advance(PERIOD)
        return not pykka.ActorRegistry.get_by_class(TrackerActor)

    return wait_until(passivated)


def test_a_passivated_context_s_handle_comes_without_the_manager(wait, held):
    clock = ManualClock()
    with make_manager(clock=clock, passivate_after=PERIOD) as manager:
        tracker = make_tracker(manager, data={"n": 1})
        published(manager, "ctx")
        assert _idle(clock)
        hold(manager, held)

        future = manager.get_tracker("ctx")
        assert future.done()
        assert wait(future) == tracker
        held.release.set()
        assert wait(wait(future).get("n")) == 1  # its tracker starts again
        assert len(pykka.ActorRegistry.get_by_class(TrackerActor)) == 1


def test_get_tracker_after_a_restore_not_waited_for_loads_the_restored_state(wait, held, tmp_path):
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with make_manager(url, clock=clock, passivate_after=PERIOD) as manager:
        tracker = make_tracker(manager, data={"n": 1})
        point = wait(tracker.create_recovery_point())
        wait(tracker.set("n", 2))
        published(manager, "ctx")
        assert _idle(clock)  # passivated: the manager restores it in the store
        hold(manager, held)

        restored = manager.restore_recovery_point("ctx", point)
        future = manager.get_tracker("ctx")
        assert not future.done()  # behind the restore
        held.release.set()

        assert wait(restored).get("n") == 1
        assert wait(wait(future).get("n")) == 1


def test_each_thread_s_own_order_holds_while_others_deactivate_and_delete():
    # Every thread works on its own context and never waits for its deactivations; the
    # others' calls keep the manager and the published handles busy meanwhile.
    rounds = 25

    with make_manager() as manager:

        def work(index: int) -> int:
            name = f"ctx-{index}"
            tracker = manager.get_tracker(name, create=True, data={"n": 0}).get(timeout=WAIT)
            for i in range(1, rounds + 1):
                tracker.set("n", i).get(timeout=WAIT)
                manager.deactivate(name)  # not waited for
                tracker = manager.get_tracker(name).get(timeout=WAIT)
                assert tracker.get("n").get(timeout=WAIT) == i
                if i % 5 == 0:
                    manager.delete_context(name)  # not waited for either
                    with pytest.raises(ContextNotFoundError):
                        manager.get_tracker(name).get(timeout=WAIT)
                    tracker = manager.get_tracker(name, create=True, data={"n": i})
                    tracker = tracker.get(timeout=WAIT)
            assert manager.status(name).get(timeout=WAIT) is ContextStatus.ACTIVE
            return int(tracker.get("n").get(timeout=WAIT))

        assert run_threads(4, work) == [rounds] * 4
