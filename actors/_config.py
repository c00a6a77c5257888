"""Configuration: frozen attrs classes, validated when built.

Every option, its default, its unit and what it trades is in docs/configuration.md. A bad
value is a `ConfigurationError` naming the class, the field and the value.
"""

from __future__ import annotations

import enum
import math
from typing import Any, NoReturn

import attrs

from storage import ConfigurationError

__all__ = [
    "LeasePolicy",
    "Overflow",
    "SubscriptionConfig",
    "SupervisorConfig",
    "SyncPolicy",
    "TrackerConfig",
]


def _refuse(
    instance: object, attribute: attrs.Attribute[Any], value: object, wanted: str
) -> NoReturn:
    msg = f"{type(instance).__name__}.{attribute.name} must be {wanted}, got {value!r}"
    raise ConfigurationError(msg)


def _is_number(value: object) -> bool:
    """An int, or a finite float; not a bool (callers may be untyped)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (_is_number(value) and value > 0):
        _refuse(instance, attribute, value, "a positive number of seconds")


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (_is_number(value) and value >= 0):
        _refuse(instance, attribute, value, "a number of seconds, 0 or more")


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value is not None and not (_is_number(value) and value > 0):
        _refuse(instance, attribute, value, "a positive number of seconds or None")


def _whole(least: int, most: int | None = None) -> Any:
    """A validator of ints from `least` to `most` (no bools)."""
    wanted = f"a whole number of at least {least}" if most is None else f"{least} to {most}"

    def check(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < least
            or (most is not None and value > most)
        ):
            _refuse(instance, attribute, value, wanted)

    return check


def _or_none(validator: Any) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check


def _instance_of(kind: type) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            article = "an" if kind.__name__[0] in "AEIOU" else "a"
            _refuse(instance, attribute, value, f"{article} {kind.__name__}")

    return check


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

    `max_updates=1` is the durable policy; it takes no `max_delay` (nothing waits).
    """

    max_updates: int = attrs.field(default=1, validator=_whole(1))
    max_delay: float | None = attrs.field(default=None, validator=_positive_or_none)

    def __attrs_post_init__(self) -> None:
        if self.max_updates == 1 and self.max_delay is not None:
            msg = (
                f"SyncPolicy.max_delay must be None when max_updates is 1, got "
                f"{self.max_delay!r}: a policy of one update per write is durable, nothing "
                "waits; use SyncPolicy.durable(), or SyncPolicy.batched() with max_updates >= 2"
            )
            raise ConfigurationError(msg)

    @classmethod
    def durable(cls) -> SyncPolicy:
        """Write every update before acknowledging it."""
        return cls()

    @classmethod
    def batched(cls, max_updates: int = 100, max_delay: float | None = 1.0) -> SyncPolicy:
        """Acknowledge at once; write after `max_updates` updates (at least 2) or `max_delay`
        seconds (None: only after `max_updates`, or on save, deactivation, passivation and
        shutdown).

        Raises:
            ConfigurationError: `max_updates` is less than 2 (a batch of one would be
                `durable()`: say so) or `max_delay` is not positive.
        """
        if isinstance(max_updates, int) and max_updates < 2:
            msg = (
                f"SyncPolicy.batched() needs max_updates of at least 2, got {max_updates!r}; "
                "for every update written before it is acknowledged, use SyncPolicy.durable()"
            )
            raise ConfigurationError(msg)
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

    max_restarts: int = attrs.field(default=3, validator=_whole(0))
    within_seconds: float = attrs.field(default=10.0, validator=_positive)
    backoff_initial: float = attrs.field(default=0.05, validator=_not_negative)
    backoff_max: float = attrs.field(default=2.0, validator=_not_negative)

    def backoff(self, restarts_in_window: int) -> float:
        """Seconds to wait before restart number `restarts_in_window` (counted from 0)."""
        if restarts_in_window == 0:
            return 0.0
        return min(self.backoff_initial * 2.0 ** (restarts_in_window - 1), self.backoff_max)


def _contexts_filter(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        _refuse(instance, attribute, value, "a function of a context name, or None")


def _owner_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        _refuse(instance, attribute, value, "a non-empty string of at most 200 characters")


@attrs.frozen
class LeasePolicy:
    """One owner per context across processes (`TrackerConfig.leases`): a tracker takes its
    context's lease in the store before its first write, and every write it makes is fenced
    with the lease's epoch, so two processes never race for one context and a former owner
    (paused, cut off) can never write over its successor. docs/architecture.md, "Leases".

    Attributes:
        ttl: seconds a lease lasts by the store's clock unless renewed; the manager renews
            all its leases in one store call every `ttl / 3`. A process paused longer than
            this loses its leases (its writes are then refused: `LeaseLost`).
        hold: seconds a tracker keeps the lease, once another process asked for it, before
            it hands over (after storing what is in flight): longer trades the other
            process's wait for fewer hand-overs.
        wait: seconds a write of a tracker that does not hold the lease waits for it (the
            holder is asked to hand over) before its caller gets `NotOwner`, naming the
            holder. 0: at once, for applications that route each call to the owner.
        contexts: which contexts take leases (a function of the name); None: all.
        owner: the name the manager holds leases under, which `NotOwner` tells the other
            processes: an address they can route calls to (`"10.0.0.7:8000"`). It must be
            unique to one manager at a time (two managers with one name would both write).
            None: host, process id and a random part.
    """

    ttl: float = attrs.field(default=10.0, validator=_positive)
    hold: float = attrs.field(default=0.1, validator=_positive)
    wait: float = attrs.field(default=5.0, validator=_not_negative)
    contexts: Any = attrs.field(default=None, validator=_contexts_filter)
    owner: str | None = attrs.field(default=None, validator=_or_none(_owner_name))

    def __attrs_post_init__(self) -> None:
        if self.hold >= self.ttl / 3:
            msg = f"LeasePolicy.hold ({self.hold!r}) must be under a third of ttl ({self.ttl!r})"
            raise ConfigurationError(msg)

    def covers(self, name: str) -> bool:
        """Whether context `name` takes a lease under this policy."""
        return self.contexts is None or bool(self.contexts(name))


@attrs.frozen
class TrackerConfig:
    """Everything a tracker and its manager are configured with; see `ContextTrackerFactory`.

    Attributes:
        sync: when accepted updates reach the store.
        ask_timeout: default seconds a returned future waits before `ContextTimeoutError`.
        supervisor: restart limits and backoff.
        compression_level: zstd level (1 to 22) for a store the manager opens from a URL;
            None: the codec's default, 3.
        retain_heads: head snapshots kept per context by a store the manager opens from a
            URL; None: the URL's `retain_heads`, else the store's default, 3.
        max_state_bytes: largest encoded State (JSON bytes) a store the manager opens from
            a URL accepts; a bigger update fails with `StateTooLargeError` and changes
            nothing. None: the codec's default, 64 MiB.
        snapshot_every: on stores that keep a journal, durable updates are journaled as
            deltas and every `snapshot_every`-th is a full snapshot (1: always snapshots).
        snapshot_bytes: a full snapshot is also written once the journal since the last one
            holds this many bytes.
        watch_interval: how often (seconds) a manager on a store other processes can share
            (SQLite, Redis) looks for their writes to the contexts it runs; a tracker whose
            context moved on catches up and publishes each version to its subscribers. None:
            only when a write of ours conflicts.
        passivate_after: a tracker that handled no request for this many seconds writes
            what it has unsaved and stops, freeing its memory; its context stays ACTIVE and
            the next call through any handle starts it again. None: never.
        tracker_threads: most threads the manager's trackers share (its dispatcher); they
            start as needed and stay until shutdown. A tracker holds one only while it
            handles a message, so this bounds how many store calls of trackers (loads,
            catch-ups, batched flushes) run at once, not how many contexts are active.
        group_commit: on stores that commit in batches (SQLite), durable writes of all
            trackers go through one writer actor, which commits whatever is queued as one
            transaction (one fsync for many updates).
        exit_timeout: seconds the exit hook waits for this manager when the process exits
            without `shutdown()` (its trackers write what is unsaved, then stop), and for its
            subscription callbacks to finish what they were handed; what is not done by then
            is logged and left (see docs/architecture.md, "Exit"). 0: do not wait.
        stash_capacity: requests a tracker holds back while it cannot run them (a write in
            flight, a conflict backoff, a restart); one more is refused with
            `ContextBusyError` and changes nothing. Control messages are never refused.
        leases: one owner per context across processes (`LeasePolicy`); None: any process
            may write any context, arbitrated by compare-and-set. Needs the durable sync
            policy and a store that keeps leases.
    """

    sync: SyncPolicy = attrs.field(factory=SyncPolicy.durable, validator=_instance_of(SyncPolicy))
    ask_timeout: float = attrs.field(default=10.0, validator=_positive)
    supervisor: SupervisorConfig = attrs.field(
        factory=SupervisorConfig, validator=_instance_of(SupervisorConfig)
    )
    compression_level: int | None = attrs.field(default=None, validator=_or_none(_whole(1, 22)))
    retain_heads: int | None = attrs.field(default=None, validator=_or_none(_whole(1)))
    max_state_bytes: int | None = attrs.field(default=None, validator=_or_none(_whole(1)))
    snapshot_every: int = attrs.field(default=100, validator=_whole(1))
    snapshot_bytes: int = attrs.field(default=2**20, validator=_whole(1))
    group_commit: bool = attrs.field(default=True, validator=_instance_of(bool))
    passivate_after: float | None = attrs.field(default=300.0, validator=_positive_or_none)
    watch_interval: float | None = attrs.field(default=0.5, validator=_positive_or_none)
    exit_timeout: float = attrs.field(default=5.0, validator=_not_negative)
    stash_capacity: int = attrs.field(default=10_000, validator=_whole(1))
    tracker_threads: int = attrs.field(default=16, validator=_whole(1, 1024))
    leases: LeasePolicy | None = attrs.field(
        default=None, validator=_or_none(_instance_of(LeasePolicy))
    )

    def __attrs_post_init__(self) -> None:
        if self.leases is not None and not self.sync.is_durable:
            msg = (
                "TrackerConfig.leases needs the durable sync policy: a batched update is "
                "acknowledged before it is written, so it could not wait for the lease"
            )
            raise ConfigurationError(msg)


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

    buffer_size: int = attrs.field(default=1024, validator=_whole(1))
    overflow: Overflow = attrs.field(default=Overflow.DROP_OLDEST, validator=_instance_of(Overflow))
