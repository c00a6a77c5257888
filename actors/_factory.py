"""ContextTrackerFactory: builds trackers that all share one frozen configuration."""

from __future__ import annotations

import difflib
from typing import Any

import attrs
import pykka

from actors._changes import Topic
from actors._clock import Clock
from actors._config import TrackerConfig
from actors._dispatch import Dispatcher
from actors._future import Reply
from actors._lease import Leases
from actors._metrics import NO_METRICS, Instruments
from actors._tracker import TrackerActor
from storage import ConfigurationError, State, Store

__all__ = ["ContextTrackerFactory"]


class ContextTrackerFactory:
    """Starts preconfigured tracker actors; a manager uses one for all its trackers.

    Build it from a `TrackerConfig`, from keyword overrides of the default one, or both:
    `ContextTrackerFactory(sync=SyncPolicy.batched(50, 0.5), ask_timeout=2.0)`.

    Raises:
        ConfigurationError: `config` is not a TrackerConfig, an override is not one of its
            fields, or a value is out of range.
    """

    def __init__(self, config: TrackerConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else TrackerConfig()
        if not isinstance(base, TrackerConfig):  # callers may be untyped
            msg = f"config must be a TrackerConfig, not {type(base).__name__}"  # type: ignore[unreachable]
            raise ConfigurationError(msg)
        fields = list(attrs.fields_dict(TrackerConfig))
        for name in overrides:
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                msg = (
                    f"unknown configuration option {name!r}{hint}; TrackerConfig has "
                    f"{', '.join(fields)}"
                )
                raise ConfigurationError(msg)
        self.config: TrackerConfig = attrs.evolve(base, **overrides) if overrides else base

    def __repr__(self) -> str:
        return f"ContextTrackerFactory({self.config!r})"

    def start(
        self,
        name: str,
        store: Store,
        supervisor: pykka.ActorRef[Any],
        ready: Reply[None],
        writer: pykka.ActorRef[Any] | None = None,
        *,
        changes: Topic | None = None,
        clock: Clock,
        dispatcher: Dispatcher,
        seed: State | None = None,
        metrics: Instruments = NO_METRICS,
        leases: Leases | None = None,
    ) -> pykka.ActorRef[Any]:
        """Start the tracker actor of context `name`; `ready` resolves once it has loaded.
        With a `writer`, its durable writes go through that group-commit actor; with
        `changes`, it publishes every change there for subscribers."""
        return TrackerActor.start(
            name,
            store,
            self.config,
            supervisor,
            ready,
            writer=writer,
            changes=changes,
            clock=clock,
            dispatcher=dispatcher,
            seed=seed,
            metrics=metrics,
            leases=leases,
        )
