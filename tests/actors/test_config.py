"""Configuration: validated frozen values, the backoff schedule, and the tracker factory."""

from __future__ import annotations

import attrs
import pytest

from actors import (
    ContextTrackerFactory,
    SupervisorConfig,
    SyncPolicy,
    TrackerConfig,
    create_manager,
)


def test_default_sync_policy_is_durable():
    assert TrackerConfig().sync == SyncPolicy.durable()
    assert SyncPolicy.durable().is_durable


def test_batched_policy_is_not_durable():
    policy = SyncPolicy.batched(max_updates=10, max_delay=0.5)
    assert (policy.max_updates, policy.max_delay) == (10, 0.5)
    assert not policy.is_durable


@pytest.mark.parametrize(
    "build",
    [
        lambda: SyncPolicy(max_updates=0),
        lambda: SyncPolicy(max_updates=1, max_delay=0),
        lambda: SyncPolicy.batched(10, -1.0),
        lambda: TrackerConfig(ask_timeout=0),
        lambda: TrackerConfig(max_state_bytes=0),
        lambda: SupervisorConfig(max_restarts=-1),
        lambda: SupervisorConfig(within_seconds=0),
        lambda: SupervisorConfig(backoff_initial=-0.1),
        lambda: SupervisorConfig(backoff_max=-1),
    ],
    ids=[
        "no-updates",
        "zero-delay",
        "negative-delay",
        "zero-ask-timeout",
        "zero-state-bytes",
        "negative-restarts",
        "zero-window",
        "negative-backoff",
        "negative-backoff-max",
    ],
)
def test_invalid_configuration_is_refused(build):
    with pytest.raises(ValueError, match="must"):
        build()


def test_configuration_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        TrackerConfig().ask_timeout = 1.0  # type: ignore[misc]


def test_backoff_doubles_from_the_second_restart_up_to_the_maximum():
    policy = SupervisorConfig(backoff_initial=0.1, backoff_max=0.35)
    assert [policy.backoff(n) for n in range(5)] == [0.0, 0.1, 0.2, 0.35, 0.35]


def test_factory_applies_overrides_to_the_given_config():
    base = TrackerConfig(ask_timeout=3.0)
    factory = ContextTrackerFactory(base, sync=SyncPolicy.batched(5, 0.5))
    assert factory.config == TrackerConfig(ask_timeout=3.0, sync=SyncPolicy.batched(5, 0.5))
    assert ContextTrackerFactory().config == TrackerConfig()


def test_manager_uses_the_factory_config():
    factory = ContextTrackerFactory(ask_timeout=2.5)
    manager = create_manager(factory=factory)
    assert manager.config.ask_timeout == 2.5
    manager.shutdown().get()


def test_manager_refuses_both_factory_and_config():
    with pytest.raises(ValueError, match="not both"):
        create_manager(factory=ContextTrackerFactory(), config=TrackerConfig())
