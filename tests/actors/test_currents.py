"""Currents without threads: the latest successful switch wins, whatever the completion order."""

from __future__ import annotations

from typing import Any

from actors._changes import CurrentContextChange, Topic
from actors._currents import Currents


class RecordingTopic(Topic):
    """A live topic that keeps what is published instead of telling a hub."""

    def __init__(self) -> None:
        super().__init__("adapter", None)
        self.live = True
        self.published: list[Any] = []

    def publish(self, item: Any) -> None:
        self.published.append(item)


def test_a_switch_that_completes_sets_the_current_context():
    currents = Currents()
    ticket = currents.begin(1, "a")
    assert currents.current(1) is None  # not until it completes
    currents.finish(1, ticket, succeeded=True)
    assert currents.current(1) == "a"


def test_an_earlier_switch_completing_last_does_not_undo_a_later_one():
    currents = Currents()
    first = currents.begin(1, "slow")
    second = currents.begin(1, "fast")
    currents.finish(1, second, succeeded=True)
    currents.finish(1, first, succeeded=True)
    assert currents.current(1) == "fast"


def test_a_failed_switch_changes_nothing():
    currents = Currents()
    currents.finish(1, currents.begin(1, "a"), succeeded=True)
    currents.finish(1, currents.begin(1, "b"), succeeded=False)
    assert currents.current(1) == "a"


def test_a_later_failed_switch_leaves_an_earlier_successful_one_to_apply():
    currents = Currents()
    first = currents.begin(1, "a")
    second = currents.begin(1, "b")
    currents.finish(1, second, succeeded=False)
    currents.finish(1, first, succeeded=True)
    assert currents.current(1) == "a"


def test_adapters_are_independent():
    currents = Currents()
    currents.finish(1, currents.begin(1, "a"), succeeded=True)
    currents.finish(2, currents.begin(2, "b"), succeeded=True)
    assert (currents.current(1), currents.current(2)) == ("a", "b")


def test_a_context_stopped_during_a_switch_to_it_is_not_made_current():
    currents = Currents()
    currents.finish(1, currents.begin(1, "a"), succeeded=True)
    ticket = currents.begin(1, "b")
    other = currents.begin(2, "b")
    currents.stopped("b")
    currents.finish(1, ticket, succeeded=True)
    currents.finish(2, other, succeeded=True)
    assert currents.current(1) is None  # the switch took effect, to a context now stopped
    assert currents.current(2) is None


def test_a_stopped_or_forgotten_context_is_current_nowhere():
    currents = Currents()
    for adapter in (1, 2):
        currents.finish(adapter, currents.begin(adapter, "a"), succeeded=True)
    currents.finish(3, currents.begin(3, "b"), succeeded=True)
    currents.forget_context("a")
    assert [currents.current(a) for a in (1, 2, 3)] == [None, None, "b"]
    currents.stopped("b")
    assert currents.current(3) is None


def test_changes_are_published_once_each_to_a_live_topic():
    currents = Currents()
    topic = RecordingTopic()
    assert currents.topic(1, lambda: topic) is topic
    assert currents.topic(1, RecordingTopic) is topic  # one per adapter
    currents.finish(1, currents.begin(1, "a"), succeeded=True)
    currents.finish(1, currents.begin(1, "a"), succeeded=True)  # no change: not published
    currents.forget_context("a")
    assert topic.published == [CurrentContextChange(None, "a"), CurrentContextChange("a", None)]


def test_a_forgotten_adapter_leaves_nothing_even_with_a_switch_under_way():
    currents = Currents()
    empty = currents.sizes()
    topic = RecordingTopic()
    currents.topic(1, lambda: topic)
    currents.finish(1, currents.begin(1, "a"), succeeded=True)
    ticket = currents.begin(1, "b")
    currents.stopped("b")
    assert currents.forget_adapter(1) is topic
    currents.finish(1, ticket, succeeded=True)  # completes after: keeps nothing
    assert currents.current(1) is None
    assert currents.sizes() == empty
    assert currents.forget_adapter(1) is None
