"""Leaks: what a manager keeps for a context or an adapter goes once they are gone.

Counted, not timed: after thousands of throwaway contexts and adapters, every table of the
manager (and of its hub and watcher) is back to what it held before.
"""

from __future__ import annotations

import gc

import pykka
import pytest

from actors import create_adapter, create_manager

CYCLES = 2_000


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _settled(ref):
    """The actor behind `ref`, once it has handled every message told to it before (an
    ask() of a message it ignores comes back after them)."""
    ref.ask(_Barrier(), timeout=30)
    return ref._actor_weakref()


class _Barrier:
    pass


def _tables(manager):
    """The size of everything the manager keeps per context or per adapter, read once the
    manager, then its hub and watcher, have handled what was told to them."""
    actor = _settled(manager._ref)
    sizes = {"restart histories": len(actor._restarts)}
    sizes.update(actor._contexts.sizes())  # cells, reports, transitions in flight
    sizes.update(actor._currents.sizes())  # each adapter's current context and switches
    sizes["hub topics"] = len(_settled(actor._hub)._topics)
    if actor._watcher is not None:
        watcher = _settled(actor._watcher)
        sizes["watched"] = len(watcher._targets)
        sizes["seen"] = len(watcher._seen)
    return sizes


@pytest.mark.timeout(120)
def test_deleted_contexts_leave_nothing_in_the_manager(tmp_path):
    # synchronous=off: this counts tables, it does not need 6,000 fsyncs.
    manager = create_manager(f"sqlite:///{tmp_path / 'leak.db'}?synchronous=off")
    try:
        before = _tables(manager)
        for i in range(CYCLES):
            name = f"throwaway-{i}"
            manager.create_context(name, {"n": i}).get(timeout=30)
            if i % 2:  # half of them were activated, written and subscribed to
                tracker = manager.get_tracker(name).get(timeout=30)
                tracker.set("n", -i).get(timeout=30)
                tracker.subscribe(lambda _change: None).get(timeout=30)
            if i % 10 == 3:
                manager.create_recovery_point(name).get(timeout=30)
            manager.delete_context(name).get(timeout=30)
        assert _tables(manager) == before
        assert manager.list_contexts().get() == []
    finally:
        manager.shutdown().get(timeout=30)


@pytest.mark.timeout(120)
def test_dropped_adapters_leave_nothing_in_the_manager():
    manager = create_manager()
    try:
        manager.create_context("shared").get()
        # Running, its handle published, before the count: the second get_tracker() is
        # answered once the manager has published it (the first, from the tracker's thread).
        manager.get_tracker("shared").get()
        manager.get_tracker("shared").get()
        before = _tables(manager)
        for i in range(CYCLES):
            adapter = create_adapter(manager)
            adapter.switch_context("shared").get(timeout=30)
            if i % 5 == 0:
                adapter.subscribe_current(lambda _change: None).get(timeout=30)
            del adapter  # its finalizer tells the manager to forget it
        gc.collect()
        assert _tables(manager) == before
    finally:
        manager.shutdown().get(timeout=30)


RUNNING = 400


@pytest.mark.timeout(120)
def test_a_running_context_keeps_few_objects_for_the_garbage_collector(tmp_path):
    # Every full collection walks every object the collector tracks; a web service keeps
    # thousands of contexts running, so each one's share is paid in every pause
    # (docs/performance.md, "Web service"). Here 18.9 per context while the empty stash,
    # batch and restart-waiter containers were kept, 15.9 since: the tracker, its ref,
    # Pykka's weak reference to it, its mailbox and the mailbox's two deques, stop flag,
    # phase, State, write path and its next batch, stash, publisher, cell and topic.
    manager = create_manager(f"sqlite:///{tmp_path / 'gc.db'}?synchronous=off")
    try:
        for i in range(20):  # the first activations make what every later one shares
            manager.get_tracker(f"warm-{i}", create=True).get(timeout=30).set("n", i).get(
                timeout=30
            )
        gc.collect()
        before = len(gc.get_objects())
        trackers = [
            manager.get_tracker(f"running-{i}", create=True).get(timeout=30) for i in range(RUNNING)
        ]
        for tracker in trackers:
            tracker.set("n", 1).get(timeout=30)
        del trackers, tracker
        gc.collect()
        per_context = (len(gc.get_objects()) - before) / RUNNING
        assert per_context <= 17.5, f"{per_context:.1f} objects per running context"
    finally:
        manager.shutdown().get(timeout=30)
