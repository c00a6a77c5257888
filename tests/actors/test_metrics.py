"""Metrics: read with the OpenTelemetry SDK's in-memory reader after a known workload."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors import Overflow, SubscriptionConfig, create_manager
from actors.testing import FaultyStore, ManualClock, crash
from storage import MemoryStore

from .conftest import FAST_RESTARTS, WAIT, wait_until


@pytest.fixture
def reader():
    return InMemoryMetricReader()


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    """Each metric's value: a sum's total, a histogram's (count, sum)."""
    values: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "context_runtime"
            for metric in scope.metrics:
                points = list(metric.data.data_points)
                if hasattr(points[0], "bucket_counts"):
                    values[metric.name] = (
                        sum(p.count for p in points),
                        sum(p.sum for p in points),
                    )
                else:
                    values[metric.name] = sum(p.value for p in points)
                values[f"{metric.name} unit"] = metric.unit
    return values


def test_activations_passivations_restarts_and_active_contexts_are_counted(reader):
    clock = ManualClock()
    provider = MeterProvider(metric_readers=[reader])
    store = FaultyStore(MemoryStore())
    manager = create_manager(store, clock=clock, meter_provider=provider, supervisor=FAST_RESTARTS)
    for name in ("a", "b", "c"):
        manager.create_context(name, {"n": 0}).get(timeout=WAIT)
    trackers = [manager.get_tracker(name).get(timeout=WAIT) for name in ("a", "b", "c")]
    for tracker in trackers:
        tracker.set("n", 1).get(timeout=WAIT)
    crash(trackers[0]).get(timeout=WAIT)
    values = collect(reader)
    assert values["context_runtime.activations"] == 3
    assert values["context_runtime.contexts.active"] == 3
    assert values["context_runtime.restarts"] == 1
    assert values["context_runtime.restarts unit"] == "{restart}"
    count, _ = values["context_runtime.mailbox.queued"]
    assert count >= 3 * 2  # every tracker was given a thread for its load and its set

    manager.deactivate("c").get(timeout=WAIT)
    period = manager.config.passivate_after or 0.0

    def passivated() -> bool:
        clock.advance(period)
        return collect(reader).get("context_runtime.passivations") == 2

    assert wait_until(passivated)
    values = collect(reader)
    assert values["context_runtime.contexts.active"] == 0
    trackers[0].get("n").get(timeout=WAIT)  # reactivated by the call
    values = collect(reader)
    assert values["context_runtime.activations"] == 4
    assert values["context_runtime.contexts.active"] == 1
    manager.shutdown().get(timeout=WAIT)
    assert collect(reader)["context_runtime.contexts.active"] == 0
    store.close()


def test_without_a_provider_nothing_is_recorded_and_nothing_fails():
    with create_manager() as manager:
        manager.create_context("x").get(timeout=WAIT)
        manager.get_tracker("x").get(timeout=WAIT).set("n", 1).get(timeout=WAIT)


def test_subscription_drops_are_counted(reader):
    provider = MeterProvider(metric_readers=[reader])
    entered, release = threading.Event(), threading.Event()

    def slow(_change: object) -> None:
        entered.set()
        release.wait(WAIT)

    with create_manager(meter_provider=provider) as manager:
        manager.create_context("c", {"n": 0}).get(timeout=WAIT)
        tracker = manager.get_tracker("c").get(timeout=WAIT)
        config = SubscriptionConfig(buffer_size=4, overflow=Overflow.DROP_OLDEST)
        subscription = tracker.subscribe(slow, config).get(timeout=WAIT)
        tracker.set("n", 1).get(timeout=WAIT)
        assert entered.wait(WAIT)  # the callback now blocks on version 1
        for n in range(2, 21):
            tracker.set("n", n).get(timeout=WAIT)
        assert wait_until(lambda: subscription.dropped == 15)
        release.set()
        assert wait_until(lambda: collect(reader).get("context_runtime.subscription.drops") == 15)


def test_updates_reads_write_times_and_group_commits_are_measured(reader, tmp_path):
    provider = MeterProvider(metric_readers=[reader])
    with create_manager(f"sqlite:///{tmp_path / 'm.db'}", meter_provider=provider) as manager:
        manager.create_context("hot", {"n": 0}).get(timeout=WAIT)
        tracker = manager.get_tracker("hot").get(timeout=WAIT)
        threads = [
            threading.Thread(
                target=lambda: [
                    tracker.modify(lambda s: s.set("n", s.get("n") + 1)).get(timeout=WAIT)
                    for _ in range(25)
                ]
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert tracker.get("n").get(timeout=WAIT) == 100
        tracker.get_state().get(timeout=WAIT)
    values = collect(reader)
    assert values["context_runtime.updates"] == 100
    assert values["context_runtime.reads"] == 2
    writes, seconds = values["context_runtime.write.duration"]
    assert writes == 100
    assert seconds > 0
    assert values["context_runtime.write.duration unit"] == "s"
    batches, written = values["context_runtime.store.commit.writes"]
    assert written == 100
    assert batches == values["context_runtime.store.commit.duration"][0]
    assert batches < 100  # queued writes of the hot context shared transactions


def test_conflicts_with_another_process_and_their_retries_are_counted(reader, tmp_path):
    provider = MeterProvider(metric_readers=[reader])
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with create_manager(url, meter_provider=provider, watch_interval=None) as ours:
        ours.create_context("c", {"n": 0}).get(timeout=WAIT)
        tracker = ours.get_tracker("c").get(timeout=WAIT)
        with create_manager(url) as theirs:  # another process, as far as ours can tell
            theirs.get_tracker("c").get(timeout=WAIT).set("n", 10).get(timeout=WAIT)
        assert tracker.modify(lambda s: s.set("n", s.get("n") + 1)).get(timeout=WAIT).get("n") == 11
    values = collect(reader)
    assert values["context_runtime.conflicts"] == 1
    assert values["context_runtime.conflict.retries"] == 1
