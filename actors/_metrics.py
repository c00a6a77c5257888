"""Metrics through the OpenTelemetry API: what a manager and its trackers count and time.

Install the `metrics` extra (`opentelemetry-api`) and configure an SDK `MeterProvider` as
for any instrumented library; without an SDK the API's instruments do nothing, and without
the API installed these instruments are no-ops of our own, so metrics cost nothing unused.
A manager takes its meter from `create_manager(meter_provider=...)` or else the global
provider (`opentelemetry.metrics.set_meter_provider()`), under the instrumentation scope
`context_runtime`. Names, units and kinds follow OpenTelemetry's semantic conventions
(dot-separated, UCUM units, `{thing}` for counts); docs/operations.md lists them. No
instrument carries the context name as an attribute: a service has too many contexts for a
time series each (the logs carry it, see actors/_logs.py).
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any, Protocol

__all__ = ["METER_NAME", "NO_METRICS", "Histogram", "Instruments", "instruments_for"]

METER_NAME = "context_runtime"
"""The instrumentation scope of every instrument."""


class _Counter(Protocol):
    def add(self, amount: int | float, attributes: Any = None) -> None: ...


class Histogram(Protocol):
    """What we use of an OpenTelemetry histogram."""

    def record(self, amount: int | float, attributes: Any = None) -> None: ...


class _Nothing:
    """An instrument that records nothing (the API is not installed)."""

    def add(self, amount: int | float, attributes: Any = None) -> None:
        pass

    def record(self, amount: int | float, attributes: Any = None) -> None:
        pass


class Instruments:
    """The instruments of one manager (see the module docstring and docs/operations.md)."""

    def __init__(self, meter: Any | None) -> None:
        """Create the instruments on an OpenTelemetry `meter`; None: instruments that
        record nothing."""
        counter = meter.create_counter if meter else _nothing
        updown = meter.create_up_down_counter if meter else _nothing
        histogram = meter.create_histogram if meter else _nothing
        self.updates: _Counter = counter(
            "context_runtime.updates",
            unit="{update}",
            description="Updates applied to contexts' States (each is then stored, or undone "
            "and its caller told; one run again after a lost race counts again)",
        )
        self.reads: _Counter = counter(
            "context_runtime.reads", unit="{read}", description="Reads answered by trackers"
        )
        self.write_duration: Histogram = histogram(
            "context_runtime.write.duration",
            unit="s",
            description="From a durable update's arrival at its tracker until it is stored "
            "(what its caller waits, less the hop to the tracker)",
        )
        self.commit_duration: Histogram = histogram(
            "context_runtime.store.commit.duration",
            unit="s",
            description="One store transaction of the group writer (the store's own time)",
        )
        self.batch_size: Histogram = histogram(
            "context_runtime.store.commit.writes",
            unit="{write}",
            description="Writes committed together in one store transaction (group commit)",
        )
        self.conflicts: _Counter = counter(
            "context_runtime.conflicts",
            unit="{conflict}",
            description="Writes refused because another process wrote the context first",
        )
        self.retries: _Counter = counter(
            "context_runtime.conflict.retries",
            unit="{retry}",
            description="Requests run again on a reloaded State after losing a write race",
        )
        self.restarts: _Counter = counter(
            "context_runtime.restarts",
            unit="{restart}",
            description="Tracker restarts decided by the supervisor after an unexpected error",
        )
        self.give_ups: _Counter = counter(
            "context_runtime.give_ups",
            unit="{context}",
            description="Contexts the supervisor stopped restarting (status FAILED)",
        )
        self.activations: _Counter = counter(
            "context_runtime.activations",
            unit="{activation}",
            description="Trackers started (activations and reactivations after passivation)",
        )
        self.passivations: _Counter = counter(
            "context_runtime.passivations",
            unit="{passivation}",
            description="Idle trackers stopped to free their memory",
        )
        self.active: _Counter = updown(
            "context_runtime.contexts.active",
            unit="{context}",
            description="Contexts with a running tracker (passivated ones are not counted)",
        )
        self.queued: Histogram = histogram(
            "context_runtime.mailbox.queued",
            unit="{message}",
            description="Messages in a tracker's mailbox each time it is given a thread",
        )
        self.leases_taken: _Counter = counter(
            "context_runtime.leases.taken",
            unit="{lease}",
            description="Leases taken by trackers before writing (TrackerConfig.leases)",
        )
        self.lease_handovers: _Counter = counter(
            "context_runtime.leases.handed_over",
            unit="{lease}",
            description="Leases given up because another process asked for them",
        )
        self.leases_lost: _Counter = counter(
            "context_runtime.leases.lost",
            unit="{lease}",
            description="Leases that ended while held (not renewed in time, or taken over): "
            "the writes in flight under them were refused and run again",
        )
        self.drops: _Counter = counter(
            "context_runtime.subscription.drops",
            unit="{change}",
            description="Changes a subscription dropped because its subscriber fell behind",
        )


def _nothing(*_: Any, **__: Any) -> _Nothing:
    return _Nothing()


def instruments_for(meter_provider: Any = None) -> Instruments:
    """The instruments on the meter of `meter_provider` (None: the global provider), or
    instruments that record nothing if the OpenTelemetry API is not installed."""
    try:
        from opentelemetry import metrics  # noqa: PLC0415 - an optional dependency
    except ImportError:
        return NO_METRICS
    return Instruments(metrics.get_meter(METER_NAME, _version(), meter_provider=meter_provider))


@functools.cache
def _version() -> str:
    """This package's version (reading the installed metadata takes a millisecond)."""
    return importlib.metadata.version("context-runtime")


NO_METRICS = Instruments(None)
"""Instruments that record nothing (no API installed, or actors built outside a manager)."""
