"""Configuration: validated frozen values, the backoff schedule, the tracker factory, and
`create_manager`'s keyword options."""

from __future__ import annotations

import math
import time

import attrs
import pytest

from actors import (
    ConfigurationError,
    ContextTimeoutError,
    ContextTrackerFactory,
    SubscriptionConfig,
    SupervisorConfig,
    SyncPolicy,
    TrackerConfig,
    create_manager,
)
from storage import MemoryStore, SqliteStore
from tests.actors.conftest import WAIT, Hold, make_tracker


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


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: SyncPolicy(max_updates=0), "SyncPolicy.max_updates must be a whole number"),
        (lambda: SyncPolicy(max_updates=2.5), "SyncPolicy.max_updates must be a whole number"),
        (lambda: SyncPolicy(max_updates=True), "got True"),
        (lambda: SyncPolicy.batched(10, 0), "SyncPolicy.max_delay must be a positive number"),
        (lambda: SyncPolicy.batched(10, math.nan), "got nan"),
        (lambda: SyncPolicy.batched(10, "1"), "got '1'"),
        (lambda: TrackerConfig(ask_timeout=0), "TrackerConfig.ask_timeout must be a positive"),
        (lambda: TrackerConfig(ask_timeout=math.inf), "TrackerConfig.ask_timeout .* got inf"),
        (lambda: TrackerConfig(ask_timeout="2"), "TrackerConfig.ask_timeout .* got '2'"),
        (lambda: TrackerConfig(ask_timeout=None), "TrackerConfig.ask_timeout .* got None"),
        (lambda: TrackerConfig(sync="durable"), "TrackerConfig.sync must be a SyncPolicy"),
        (lambda: TrackerConfig(supervisor={}), "TrackerConfig.supervisor must be a Supervisor"),
        (lambda: TrackerConfig(compression_level=23), "compression_level must be 1 to 22"),
        (lambda: TrackerConfig(compression_level=0), "compression_level must be 1 to 22, got 0"),
        (lambda: TrackerConfig(retain_heads=0), "TrackerConfig.retain_heads must be a whole"),
        (lambda: TrackerConfig(max_state_bytes=0), "TrackerConfig.max_state_bytes must be"),
        (lambda: TrackerConfig(snapshot_every=1.5), "TrackerConfig.snapshot_every must be"),
        (lambda: TrackerConfig(snapshot_bytes=0), "TrackerConfig.snapshot_bytes must be"),
        (lambda: TrackerConfig(group_commit="yes"), "TrackerConfig.group_commit must be a bool"),
        (lambda: TrackerConfig(passivate_after=0), "TrackerConfig.passivate_after must be"),
        (lambda: TrackerConfig(watch_interval=-1.0), "TrackerConfig.watch_interval .* got -1.0"),
        (lambda: SupervisorConfig(max_restarts=-1), "SupervisorConfig.max_restarts must be"),
        (lambda: SupervisorConfig(max_restarts=1.0), "SupervisorConfig.max_restarts .* 1.0"),
        (lambda: SupervisorConfig(within_seconds=0), "SupervisorConfig.within_seconds must"),
        (lambda: SupervisorConfig(backoff_initial=-0.1), "SupervisorConfig.backoff_initial"),
        (lambda: SupervisorConfig(backoff_max=math.inf), "SupervisorConfig.backoff_max"),
        (lambda: SubscriptionConfig(buffer_size=0), "SubscriptionConfig.buffer_size must be"),
        (lambda: SubscriptionConfig(overflow="drop_oldest"), "overflow must be an Overflow"),
    ],
)
def test_validators_raise_configuration_errors_naming_field_and_value(build, says):
    with pytest.raises(ConfigurationError, match=says):
        build()


def test_a_batch_of_one_is_refused_and_points_at_durable():
    with pytest.raises(ConfigurationError, match=r"at least 2, got 1.*SyncPolicy\.durable\(\)"):
        SyncPolicy.batched(1, 0.5)
    with pytest.raises(ConfigurationError, match=r"max_delay must be None when max_updates is 1"):
        SyncPolicy(max_updates=1, max_delay=0.5)
    assert SyncPolicy() == SyncPolicy(max_updates=1) == SyncPolicy.durable()
    assert SyncPolicy.durable().is_durable
    assert not SyncPolicy.batched(2, None).is_durable


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


def test_manager_refuses_a_factory_with_keyword_options():
    with pytest.raises(ConfigurationError, match="not both; got factory= and ask_timeout="):
        create_manager(factory=ContextTrackerFactory(), ask_timeout=1.0)


# -- create_manager keywords ----------------------------------------------------------------


def test_manager_keywords_reach_the_trackers():
    manager = create_manager(ask_timeout=0.2, sync=SyncPolicy.batched(50, 60.0))
    assert manager.config == TrackerConfig(ask_timeout=0.2, sync=SyncPolicy.batched(50, 60.0))
    tracker = make_tracker(manager, data={"n": 0})

    # batched: acknowledged, not yet written
    assert tracker.set("n", 1).get(timeout=WAIT) == 1
    assert manager.store.head_version("ctx") == 0

    # ask_timeout: a call to a busy tracker gives up after 0.2 s by default
    hold = Hold()
    tracker.modify(hold)
    assert hold.entered.wait(WAIT)
    started = time.monotonic()
    try:
        with pytest.raises(ContextTimeoutError, match=r"within 0\.2 s"):
            tracker.get_state().get()
        waited = time.monotonic() - started
    finally:
        hold.release.set()
    assert 0.15 <= waited < WAIT
    manager.shutdown().get(timeout=WAIT)


def test_manager_keywords_override_the_config_like_evolve():
    base = TrackerConfig(ask_timeout=3.0, snapshot_every=5, passivate_after=None)
    manager = create_manager(config=base, ask_timeout=2.0, watch_interval=None)
    assert manager.config == attrs.evolve(base, ask_timeout=2.0, watch_interval=None)
    manager.shutdown().get(timeout=WAIT)


def test_unknown_manager_keyword_is_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"'ask_timout' \(did you mean 'ask_timeout'"):
        create_manager(ask_timout=1.0)
    with pytest.raises(ConfigurationError, match="unknown configuration option 'synchronous'"):
        create_manager("memory://", synchronous="NORMAL")


def test_bad_manager_keyword_value_is_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"TrackerConfig\.ask_timeout .* got -1"):
        create_manager(ask_timeout=-1)


def test_store_options_in_the_url_and_codec_options_as_keywords(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}?synchronous=normal&busy_timeout=0.5&retain_heads=5"
    manager = create_manager(url, compression_level=9, max_state_bytes=1000)
    store = manager.store
    assert isinstance(store, SqliteStore)
    assert store.pragmas() == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 500}
    assert store.retain_heads == 5
    assert (store.codec.compression_level, store.codec.max_state_bytes) == (9, 1000)
    manager.shutdown().get(timeout=WAIT)


def test_retain_heads_as_keyword_reaches_a_store_opened_from_a_url(tmp_path):
    manager = create_manager(f"sqlite:///{tmp_path / 'r.db'}", retain_heads=4)
    assert manager.store.retain_heads == 4
    manager.shutdown().get(timeout=WAIT)


def test_a_store_option_in_the_url_and_as_keyword_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="both set retain_heads"):
        create_manager(f"sqlite:///{tmp_path / 'r.db'}?retain_heads=5", retain_heads=4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["retain_heads", "compression_level", "max_state_bytes"])
def test_store_options_are_refused_for_a_store_passed_in(option):
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match=f"{option} configures a store the manager opens"):
        create_manager(store, **{option: 5})
    store.close()


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ("nosuch://x", "unknown store URL scheme"),
        ("sqlite:///x.db?synchronous=fast", "synchronous must be one of off, normal"),
        (42, "store must be a Store, a store URL or None, not int"),
    ],
)
def test_a_bad_store_is_a_configuration_error(store, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=says):
        create_manager(store)
