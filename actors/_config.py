"""Configuration: frozen attrs classes, validated when built."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from storage._codec import DEFAULT_MAX_STATE_BYTES

__all__ = ["Overflow", "SubscriptionConfig", "SupervisorConfig", "SyncPolicy", "TrackerConfig"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        msg = f"{attribute.name} must be positive, got {value!r}"
        raise ValueError(msg)


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        msg = f"{attribute.name} must not be negative, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class SyncPolicy:
    """When a tracker writes accepted updates to its store.

    - `SyncPolicy.durable()` (the default): every update is written before its future
      resolves. Acknowledged means stored; a crash loses nothing that was acknowledged.
    - `SyncPolicy.batched(max_updates, max_delay)`: updates are acknowledged at once and
      written together after `max_updates` of them or `max_delay` seconds after the first,
      whichever comes first, and on `save()`, deactivation and shutdown. A tracker crash or
      process death loses the acknowledged updates not yet written (at most `max_updates`,
      at most `max_delay` seconds' worth).
    """

    max_updates: int = attrs.field(default=1, validator=_positive)
    max_delay: float | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.max_delay is not None and not self.max_delay > 0:
            msg = f"max_delay must be positive or None, got {self.max_delay!r}"
            raise ValueError(msg)

    @classmethod
    def durable(cls) -> SyncPolicy:
        """Write every update before acknowledging it."""
        return cls()

    @classmethod
    def batched(cls, max_updates: int = 100, max_delay: float = 1.0) -> SyncPolicy:
        """Acknowledge at once; write after `max_updates` updates or `max_delay` seconds."""
        return cls(max_updates=max_updates, max_delay=max_delay)

    @property
    def is_durable(self) -> bool:
        """Whether every update is stored before it is acknowledged."""
        return self.max_updates == 1


@attrs.frozen
class SupervisorConfig:
    """How the manager restarts a failed tracker.

    A tracker may fail `max_restarts` times within `within_seconds`; one more failure marks
    its context failed, and calls to it raise `RecoveryError` until it is deactivated and
    activated again. The n-th restart in a window waits
    `min(backoff_initial * 2 ** (n - 1), backoff_max)` seconds; the first waits none.
    """

    max_restarts: int = attrs.field(default=3, validator=_not_negative)
    within_seconds: float = attrs.field(default=10.0, validator=_positive)
    backoff_initial: float = attrs.field(default=0.05, validator=_not_negative)
    backoff_max: float = attrs.field(default=2.0, validator=_not_negative)

    def backoff(self, restarts_in_window: int) -> float:
        """Seconds to wait before restart number `restarts_in_window` (counted from 0)."""
        if restarts_in_window == 0:
            return 0.0
        return min(self.backoff_initial * 2.0 ** (restarts_in_window - 1), self.backoff_max)


@attrs.frozen
class TrackerConfig:
    """Everything a tracker and its manager are configured with; see `ContextTrackerFactory`.

    Attributes:
        sync: when accepted updates reach the store.
        ask_timeout: default seconds a returned future waits before `ContextTimeoutError`.
        supervisor: restart limits and backoff.
        compression_level: zstd level for stores the manager opens from a URL.
        retain_heads: head snapshots kept per context by stores opened from a URL.
        max_state_bytes: largest encoded State (JSON bytes) stores opened from a URL accept;
            a bigger update fails with `StateTooLargeError` and changes nothing.
        snapshot_every: on stores that keep a journal, durable updates are journaled as
            deltas and every `snapshot_every`-th is a full snapshot (1: always snapshots).
        snapshot_bytes: a full snapshot is also written once the journal since the last one
            holds this many bytes.
        watch_interval: how often (seconds) a manager on a store other processes can share
            (SQLite, Redis) looks for their writes to the contexts it runs; a tracker whose
            context moved on catches up and publishes each version to its subscribers. None:
            only when a write of ours conflicts.
        passivate_after: a tracker that handled no request for this many seconds writes
            what it has unsaved and stops, freeing its thread; its context stays ACTIVE and
            the next call through any handle starts it again. None: never.
        group_commit: on stores that commit in batches (SQLite), durable writes of all
            trackers go through one writer actor, which commits whatever is queued as one
            transaction (one fsync for many updates).
    """

    sync: SyncPolicy = attrs.field(factory=SyncPolicy.durable)
    ask_timeout: float = attrs.field(default=10.0, validator=_positive)
    supervisor: SupervisorConfig = attrs.field(factory=SupervisorConfig)
    compression_level: int = 3
    retain_heads: int = 3
    max_state_bytes: int = attrs.field(default=DEFAULT_MAX_STATE_BYTES, validator=_positive)
    snapshot_every: int = attrs.field(default=100, validator=_positive)
    snapshot_bytes: int = attrs.field(default=2**20, validator=_positive)
    group_commit: bool = True
    passivate_after: float | None = 300.0
    watch_interval: float | None = 0.5

    def __attrs_post_init__(self) -> None:
        for name in ("passivate_after", "watch_interval"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                msg = f"{name} must be positive or None, got {value!r}"
                raise ValueError(msg)


class Overflow(enum.Enum):
    """What a subscription does when its buffer is full and another change arrives."""

    DROP_OLDEST = "drop_oldest"
    """Drop the oldest buffered change; the next one delivered reports the gap (`missed`)."""
    UNSUBSCRIBE = "unsubscribe"
    """Deliver what is buffered, then end the subscription with `SynchronizationError`."""


@attrs.frozen
class SubscriptionConfig:
    """How much a subscription buffers for a subscriber that falls behind, and what then.

    Attributes:
        buffer_size: changes kept for a subscriber busy with earlier ones. Besides these,
            the subscriber holds the batch it is working through (at most as many again).
        overflow: what a change arriving at a full buffer does (see `Overflow`).
    """

    buffer_size: int = attrs.field(default=1024, validator=_positive)
    overflow: Overflow = Overflow.DROP_OLDEST
