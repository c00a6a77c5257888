"""`get_tracker(name, create=True)` of a context that is not stored: its creation is the
first write of the new tracker's chain, committed by the group writer (`Store.commit` with a
create write) with other contexts' writes, not a `Store.create` of its own beside the writer.
The callers hear once it is stored; one that another process beat to it loads theirs; a
failed one fails its callers and leaves nothing running."""

from __future__ import annotations

import pytest

from actors import ContextNotFoundError, PersistenceError, State
from actors.testing import FaultyStore
from storage import SqliteStore

from .conftest import WAIT, WatchedStore, make_manager, wait_until


def test_a_new_context_is_created_by_the_group_writer_before_its_callers_hear(watched):
    with make_manager(watched) as manager:
        trackers = [manager.get_tracker("new", create=True, data={"n": 1}) for _ in range(5)]
        tracker = trackers[0].get(timeout=WAIT)
        assert all(future.get(timeout=WAIT) == tracker for future in trackers[1:])
        # Stored before anyone heard: through commit, never a create of its own.
        assert watched.inner.read_head("new").data == {"n": 1}
        assert watched.calls.get("create", 0) == 0
        assert tracker.set("n", 2).get(timeout=WAIT) == 1
        state = tracker.get_state().get(timeout=WAIT)
        assert (state.version, dict(state.items())) == (1, {"n": 2})
    assert watched.inner.read_head("new").data == {"n": 2}


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
        assert dict(tracker.get_state().get(timeout=WAIT).items()) == {"theirs": 1}
        assert tracker.set("n", 1).get(timeout=WAIT) == 1
    assert sqlite_store.read_head("cart").data == {"theirs": 1, "n": 1}


def test_a_failed_create_fails_its_callers_and_a_later_one_succeeds(watched: FaultyStore):
    with make_manager(watched) as manager:
        watched.fail("commit", OSError("disk full"))
        with pytest.raises(PersistenceError, match="disk full"):
            manager.get_tracker("cart", create=True).get(timeout=WAIT)
        assert watched.inner.list_contexts() == []
        # The tracker that failed finds nothing stored on its restart and stops (as when a
        # create failed in its load); the next get-or-create then starts over and makes it.
        assert wait_until(lambda: manager.active_contexts().get(timeout=WAIT) == [])
        tracker = manager.get_tracker("cart", create=True, data={"n": 0})
        state = tracker.get(timeout=WAIT).get_state().get(timeout=WAIT)
        assert (state.version, dict(state.items())) == (0, {"n": 0})
    assert watched.inner.read_head("cart").data == {"n": 0}
