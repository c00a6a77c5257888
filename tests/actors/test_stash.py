"""The tracker's bounded stash: what waits while the tracker cannot run requests."""

from __future__ import annotations

import pytest

from actors import ContextBusyError, TrackerConfig
from actors._future import new_reply
from actors._messages import SetValue, Stop
from actors._stash import Stash
from actors.testing import crash
from storage import ConfigurationError, ContextInactiveError

from .conftest import WAIT, Hold, hold_manager, make_manager, make_tracker


def test_a_request_at_a_full_stash_is_refused_and_changes_nothing():
    manager = make_manager(stash_capacity=2)
    try:
        tracker = make_tracker(manager, data={"n": 0})
        busy = Hold()
        hold_manager(manager, busy)  # no Restart comes: the tracker stays suspended
        assert busy.entered.wait(WAIT)
        restarted = crash(tracker)
        first, second = tracker.set("a", 1), tracker.set("b", 2)  # stashed
        third = tracker.set("c", 3)
        with pytest.raises(ContextBusyError, match=r"'ctx' already holds 2 waiting requests"):
            third.get(timeout=WAIT)
        busy.release.set()  # the Restart, a control message, still gets in
        restarted.get(timeout=WAIT)
        assert first.get(timeout=WAIT) == 1
        assert second.get(timeout=WAIT) == 2
        state = tracker.get_state().get(timeout=WAIT)
        assert state.data == {"n": 0, "a": 1, "b": 2}
        assert state.version == 2
    finally:
        manager.shutdown().get(timeout=WAIT)


def test_stash_capacity_is_validated():
    assert TrackerConfig().stash_capacity == 10_000
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ConfigurationError, match=r"TrackerConfig\.stash_capacity"):
            TrackerConfig(stash_capacity=bad)


def test_the_stash_refuses_a_request_when_full_but_always_keeps_a_stop():
    stash = Stash("ctx", capacity=1)
    kept, refused = SetValue("a", 1, new_reply()), SetValue("b", 2, new_reply())
    stop = Stop(new_reply(), ContextInactiveError("ctx"))
    assert stash.add(kept)
    assert not stash.add(refused)
    with pytest.raises(ContextBusyError, match="1 waiting requests"):
        refused.reply.result(timeout=0)
    assert stash.add(stop)  # a control message is never refused
    assert list(stash) == [kept, stop]
    assert stash.take_stops() == [stop]
    assert stash.pop() is kept
    assert not kept.reply.done()
