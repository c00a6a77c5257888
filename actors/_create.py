"""`create_manager()`: open (or take) a store, build the configuration, start a manager."""

from __future__ import annotations

from typing import Any

from actors._clock import Clock, SystemClock
from actors._config import TrackerConfig
from actors._exit import register_manager
from actors._factory import ContextTrackerFactory
from actors._handle import ContextTracker
from actors._manager import ContextManager
from actors._metrics import instruments_for
from actors._supervisor import ManagerActor
from storage import ConfigurationError, SnapshotCodec, Store, open_store

__all__ = ["create_manager"]


_STORE_FIELDS = ("compression_level", "max_state_bytes", "retain_heads")
"""TrackerConfig fields that configure a store the manager opens from a URL."""


def create_manager(
    store: Store | str | None = None,
    *,
    factory: ContextTrackerFactory | None = None,
    config: TrackerConfig | None = None,
    clock: Clock | None = None,
    meter_provider: Any = None,
    **overrides: Any,
) -> ContextManager:
    """Start a context manager on `store`: a `Store`, a store URL for `open_store()` (which
    may carry the store's options: `"sqlite:///app.db?synchronous=normal"`), or None for a
    new in-memory store.

    Keyword arguments override fields of `config` (default `TrackerConfig()`) as
    `attrs.evolve` would: `create_manager("sqlite:///app.db", ask_timeout=2.0,
    sync=SyncPolicy.batched(50, 0.5))`. A `factory` brings its own configuration, so it
    takes neither. docs/configuration.md lists every option.

    A store opened here from a URL (or created for None) is closed by `shutdown()`; a
    `Store` passed in is left open for its owner.

    `clock` is where the manager and its trackers read the time and wait out every delay
    (backoffs, batched flushes, passivation); by default the real one. Tests pass
    `actors.testing.ManualClock()` and advance it instead of sleeping.

    `meter_provider` is the OpenTelemetry `MeterProvider` its metrics go to (the `metrics`
    extra; docs/operations.md lists them); by default the global one, which records nothing
    until an SDK is configured.

    Raises:
        ConfigurationError: an unknown option or a bad value; `factory` together with
            `config` or overrides; a `store` that is no Store, str or None; a bad store URL;
            or `compression_level`, `max_state_bytes` or `retain_heads` set for a `Store`
            passed in (they configure a store opened from a URL; build yours with them).
        PersistenceError: the store of the URL cannot be opened.
    """
    if factory is not None:
        if config is not None or overrides:
            named = ["config"] * (config is not None) + list(overrides)
            msg = (
                f"pass factory= or a configuration (config= and keyword options), not both; "
                f"got factory= and {'=, '.join(named)}="
            )
            raise ConfigurationError(msg)
    else:
        factory = ContextTrackerFactory(config, **overrides)
    settings = factory.config
    owns_store = not isinstance(store, Store)
    if store is None:
        store = "memory://"
    if isinstance(store, str):
        codec_options = {
            name: getattr(settings, name)
            for name in ("compression_level", "max_state_bytes")
            if getattr(settings, name) is not None
        }
        options: dict[str, Any] = {"codec": SnapshotCodec(**codec_options)}
        if settings.retain_heads is not None:
            options["retain_heads"] = settings.retain_heads
        store = open_store(store, **options)
    elif isinstance(store, Store):
        fixed = [name for name in _STORE_FIELDS if getattr(settings, name) is not None]
        if fixed:
            msg = (
                f"{fixed[0]} configures a store the manager opens from a URL; the Store passed "
                f"in was configured when it was built (codec=SnapshotCodec(...), retain_heads=...)"
            )
            raise ConfigurationError(msg)
    else:  # callers may be untyped
        msg = f"store must be a Store, a store URL or None, not {type(store).__name__}"  # type: ignore[unreachable]
        raise ConfigurationError(msg)
    _check_leases(settings, store, owns_store=owns_store)
    group_commit = factory.config.group_commit and store.commits_in_batches
    own_clock = SystemClock() if clock is None else None
    handles: dict[str, ContextTracker] = {}  # written by the manager actor, read by the facade
    try:
        ref = ManagerActor.start(
            store,
            factory,
            owns_store,
            group_commit,
            clock or own_clock,
            owns_clock=own_clock is not None,
            metrics=instruments_for(meter_provider),
            handles=handles,
        )
    except BaseException:
        # Nobody else will close what was opened here.
        if own_clock is not None:
            own_clock.close()
        if owns_store:
            store.close()
        raise
    manager = ContextManager(ref, store, factory.config, handles)
    register_manager(manager)  # its threads are daemons: the exit hook shuts it down
    return manager


def _check_leases(settings: TrackerConfig, store: Store, *, owns_store: bool) -> None:
    if settings.leases is not None and not store.supports_leases:
        if owns_store:
            store.close()
        kind = type(store).__name__
        msg = f"TrackerConfig.leases needs a store that keeps leases; {kind} does not"
        raise ConfigurationError(msg)
