"""`get_tracker(name, create=True)` of a context that is not stored: its creation is the
first write of the new tracker's chain, committed by the group writer (`Store.commit` with a
create write) with other contexts' writes, not a `Store.create` of its own beside the writer.
The handle comes at once; a write made through it while the create waits for the writer
goes in the create's transaction, and nothing is answered before the create is stored. A
create another process won loads theirs; a failed one fails every request that waited on
it."""

from __future__ import annotations

import threading

import pytest

from actors import ContextNotFoundError, PersistenceError, State
from storage import ContextError, SqliteStore
from storage._store import Write

from .conftest import WAIT, WatchedStore, make_manager, wait_until


class GatedStore(WatchedStore):
    """Records what each commit carried; while `gate` is clear, a commit waits for it (so
    a test can hold the writer busy while it lines writes up behind it)."""

    def __init__(self, inner: SqliteStore) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()
        self.batches: list[list[tuple[str, bool, int]]] = []

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        self.batches.append([(w.context, w.create, w.version) for w in writes])
        if not self.gate.is_set():
            self.waiting.set()
            assert self.gate.wait(WAIT), "never released"
        return super()._commit(writes)


@pytest.fixture
def gated(sqlite_store: SqliteStore) -> GatedStore:
    return GatedStore(sqlite_store)


def _processed(manager, name: str) -> None:
    """Return once the tracker of `name` has handled what was told it before this call
    (stats() asks it, behind those messages)."""
    assert any(s.name == name for s in manager.stats().get(timeout=WAIT))


def test_a_new_context_and_its_first_write_go_in_one_commit_with_others(gated):
    with make_manager(gated) as manager:
        manager.create_context("other").get(timeout=WAIT)
        other = manager.get_tracker("other").get(timeout=WAIT)
        gated.gate.clear()
        busy = other.set("x", 1)  # the writer waits in this commit
        assert gated.waiting.wait(WAIT)
        trackers = [manager.get_tracker("cart", create=True, data={"n": 0}) for _ in range(3)]
        cart = trackers[0].get(timeout=WAIT)  # the create waits in the writer's mailbox
        assert all(future.get(timeout=WAIT) == cart for future in trackers[1:])
        first = cart.set("n", 1)
        _processed(manager, "cart")
        more = other.set("x", 2)
        gated.gate.set()
        assert busy.get(timeout=WAIT) == 1
        assert first.get(timeout=WAIT) == 1
        assert more.get(timeout=WAIT) == 2
        assert cart.get_state().get(timeout=WAIT).version == 1
    assert ("cart", True, 0) in gated.batches[1]
    assert ("cart", False, 1) in gated.batches[1]  # the same transaction
    assert gated.calls.get("create", 0) == 1  # create_context("other") only
    head = gated.inner.read_head("cart")
    assert (head.version, head.data) == (1, {"n": 1})


def _busy_writer(manager, gated: GatedStore):
    """Hold the group writer in a commit of another context (its future), so that a batch
    told to it waits in its mailbox. (An idle writer commits a batch at once in the thread
    that tells it.)"""
    manager.create_context("other").get(timeout=WAIT)
    other = manager.get_tracker("other").get(timeout=WAIT)
    gated.gate.clear()
    busy = other.set("x", 1)
    assert gated.waiting.wait(WAIT)
    return busy


def test_nothing_is_answered_before_the_create_is_stored(gated):
    with make_manager(gated) as manager:
        busy = _busy_writer(manager, gated)
        cart = manager.get_tracker("cart", create=True).get(timeout=WAIT)
        read = cart.get_state()
        write = cart.set("n", 1)
        _processed(manager, "cart")
        assert not read.done()
        assert not write.done()
        assert gated.inner.list_contexts() == ["other"]
        gated.gate.set()
        assert busy.get(timeout=WAIT) == 1
        assert read.get(timeout=WAIT).version == 0  # held behind the create, as it was
        assert write.get(timeout=WAIT) == 1
    assert gated.batches[1] == [("cart", True, 0), ("cart", False, 1)]


class CreatedMeanwhile(WatchedStore):
    """Another process creates the context right after our tracker found it missing."""

    def __init__(self, inner: SqliteStore, theirs: State) -> None:
        super().__init__(inner)
        self.theirs: State | None = theirs

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        try:
            return super()._read_latest_parts(name)
        except ContextNotFoundError:
            theirs, self.theirs = self.theirs, None
            if theirs is not None:
                self.inner.create(theirs)
            raise


def test_a_create_another_process_won_loads_their_context(sqlite_store):
    store = CreatedMeanwhile(sqlite_store, State.new("cart", {"theirs": 1}))
    with make_manager(store) as manager:
        tracker = manager.get_tracker("cart", create=True, data={"ours": 1}).get(timeout=WAIT)
        assert tracker.set("n", 1).get(timeout=WAIT) == 1  # runs again on theirs
        assert dict(tracker.get_state().get(timeout=WAIT).items()) == {"theirs": 1, "n": 1}
    assert sqlite_store.read_head("cart").data == {"theirs": 1, "n": 1}


def test_a_failed_create_fails_what_waited_on_it_and_a_later_one_succeeds(gated):
    with make_manager(gated) as manager:
        busy = _busy_writer(manager, gated)
        gated.fail("commit", OSError("disk full"), times=2)  # the busy one, then the create's
        cart = manager.get_tracker("cart", create=True).get(timeout=WAIT)
        read, write = cart.get_state(), cart.set("n", 1)
        _processed(manager, "cart")
        gated.gate.set()
        for future in (busy, read, write):
            with pytest.raises(PersistenceError, match="disk full"):
                future.get(timeout=WAIT)
        assert gated.inner.list_contexts() == ["other"]
        # The tracker that failed finds nothing stored on its restart and stops (as when a
        # create failed in its load); the next get-or-create then starts over and makes it.
        assert wait_until(lambda: manager.active_contexts().get(timeout=WAIT) == ["other"])
        cart = manager.get_tracker("cart", create=True, data={"n": 0}).get(timeout=WAIT)
        state = cart.get_state().get(timeout=WAIT)
        assert (state.version, dict(state.items())) == (0, {"n": 0})
    assert gated.inner.read_head("cart").data == {"n": 0}
