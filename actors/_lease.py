"""Leases: one owner per context across processes (`TrackerConfig.leases`).

Each tracker whose context takes leases holds a `LeaseHold`: the epoch of the lease it holds
in the store, if any. It takes the lease before its first write (`actors/_lease_phase.py`),
fences every write with the epoch (the store refuses a write of an ended lease:
`LeaseLost`), and gives the lease up when it stops or hands it over. One `LeaseKeeper` actor
per manager renews every lease its trackers hold in one store call every `ttl / 3`, and in
between looks, every `hold / 4`, at whether another process asked for one of them: that
tracker is told `HandOver`, and one whose lease ended is told `LeaseEnded`.

The keeper, not the trackers, does this periodic store I/O, so that a thousand held leases
cost one round trip per look rather than a thousand timers.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Any

import attrs
import pykka

from actors._clock import Clock
from actors._config import LeasePolicy
from actors._metrics import NO_METRICS, Instruments
from actors._periodic import PeriodicActor
from actors._tell import tell_quietly
from storage import ContextError, Store

__all__ = [
    "HandOver",
    "LeaseEnded",
    "LeaseGiven",
    "LeaseHold",
    "LeaseKeeper",
    "LeaseTaken",
    "Leases",
    "new_owner_id",
]

logger = logging.getLogger("actors.leases")


def new_owner_id() -> str:
    """A name for one manager as a lease owner: host, process and a random part (two
    managers of one process are two owners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@attrs.frozen
class LeaseTaken:
    """To the keeper: `tracker` holds the lease of `name` with `epoch`; keep it renewed."""

    name: str
    epoch: int
    tracker: pykka.ActorRef[Any]


@attrs.frozen
class LeaseGiven:
    """To the keeper: the lease of `name` with `epoch` was given up."""

    name: str
    epoch: int


@attrs.frozen
class HandOver:
    """To a tracker: another process asked for the lease of epoch `epoch` you hold."""

    epoch: int


@attrs.frozen
class LeaseEnded:
    """To a tracker: your lease of epoch `epoch` has ended (it was not renewed in time, or
    another process holds the context now)."""

    epoch: int


@attrs.frozen
class Leases:
    """What a manager's trackers share about leases: the policy, who they are as an owner,
    and their keeper."""

    policy: LeasePolicy
    owner: str
    keeper: pykka.ActorRef[Any]
    metrics: Instruments = NO_METRICS

    def hold_for(self, name: str, store: Store, clock: Clock) -> LeaseHold | None:
        """The `LeaseHold` of context `name`'s tracker, or None if it takes no lease."""
        return LeaseHold(self, name, store, clock) if self.policy.covers(name) else None


class LeaseHold:
    """One tracker's lease (used in the tracker's thread only): which epoch it holds, since
    when, and whether it was asked to hand it over."""

    def __init__(self, leases: Leases, name: str, store: Store, clock: Clock) -> None:
        self.leases = leases
        self.policy = leases.policy
        self.name = name
        self._store = store
        self._clock = clock
        self.epoch: int | None = None
        """The epoch of the lease held; None: not held (writes must take it first)."""
        self.taken_at = 0.0
        self.asked = False
        """Another process asked for it: hand it over once nothing is in flight."""
        self.resting_until = 0.0
        """After a hand-over, when this tracker may ask again (the asker goes first)."""

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def take(self, tracker: pykka.ActorRef[Any]) -> None:
        """Take (or extend) the lease in the store. Raises `NotOwner` (the store notes that
        we asked) or the store's error."""
        lease = self._store.acquire_lease(self.name, self.leases.owner, self.policy.ttl)
        if lease.epoch != self.epoch:
            self.leases.metrics.leases_taken.add(1)
            self.epoch = lease.epoch
            self.taken_at = self._clock.now()
            self.asked = False
            # A keeper stopped means the manager is shutting down: nothing to renew.
            tell_quietly(self.leases.keeper, LeaseTaken(self.name, lease.epoch, tracker))

    def worth_asking(self) -> bool:
        """Whether taking the lease may succeed now, or our asking was forgotten (another
        asker took it): one read, so that a waiter does not take the store's write lock
        (SQLite) or the lease's row lock (PostgreSQL) every few milliseconds while the
        holder writes."""
        lease = self._store.read_leases([self.name])[self.name]
        return not lease.held or lease.owner == self.leases.owner or lease.wanted_by is None

    def hand_over_due(self) -> bool:
        """Whether we were asked for the lease and have held it for `hold` seconds."""
        return self.held and self.asked and self._clock.now() - self.taken_at >= self.policy.hold

    def give(self, *, resting: bool = False) -> None:
        """Give the lease up in the store (a failure is logged: the lease then ends by
        itself within `ttl`). `resting`: a hand-over, so do not ask again for `hold`
        seconds, letting the asker take it."""
        epoch, self.epoch, self.asked = self.epoch, None, False
        if epoch is None:
            return
        if resting:
            self.leases.metrics.lease_handovers.add(1)
            self.resting_until = self._clock.now() + self.policy.hold
        tell_quietly(self.leases.keeper, LeaseGiven(self.name, epoch))
        try:
            self._store.release_lease(self.name, self.leases.owner, epoch)
        except ContextError as exc:
            logger.warning(
                "could not give up the lease of context %r (it ends by itself): %s",
                self.name,
                exc,
                extra={"context": self.name},
            )

    def lost(self, epoch: int | None = None) -> None:
        """Our lease has ended: the keeper found so (`epoch`: the one it means), or the store
        refused a write of ours with `LeaseLost` (None: whichever we held)."""
        held = self.epoch
        if held is None or epoch not in (None, held):
            return  # about a lease we no longer hold
        self.leases.metrics.leases_lost.add(1)
        self.epoch, self.asked = None, False
        tell_quietly(self.leases.keeper, LeaseGiven(self.name, held))


class LeaseKeeper(PeriodicActor):
    """Renews the leases a manager's trackers hold and passes on hand-over requests; see the
    module docstring."""

    def __init__(self, store: Store, policy: LeasePolicy, owner: str, clock: Clock) -> None:
        super().__init__(clock, policy.hold / 4)
        self._store = store
        self._policy = policy
        self._owner = owner
        self._held: dict[str, tuple[int, pykka.ActorRef[Any]]] = {}
        self._renewed_at = clock.now()

    def receive(self, message: Any) -> None:
        if isinstance(message, LeaseTaken):
            self._held[message.name] = (message.epoch, message.tracker)
        elif (
            isinstance(message, LeaseGiven)
            and self._held.get(message.name, (None,))[0] == message.epoch
        ):
            del self._held[message.name]

    def look(self) -> None:
        if not self._held:
            return
        epochs = {name: epoch for name, (epoch, _) in self._held.items()}
        now = self._clock.now()
        try:
            if now - self._renewed_at >= self._policy.ttl / 3:
                leases = self._store.renew_leases(self._owner, epochs, self._policy.ttl)
                self._renewed_at = now
            else:
                leases = self._store.read_leases(list(epochs))
        except ContextError as exc:  # the store is down: writes are fenced; look again
            logger.warning("renewing or reading leases failed: %s", exc)
            return
        for name, lease in leases.items():
            epoch, tracker = self._held[name]
            if not lease.held_by(self._owner, epoch):
                del self._held[name]
                message: Any = LeaseEnded(epoch)
            elif lease.wanted_by is not None and lease.wanted_by != self._owner:
                message = HandOver(epoch)
            else:
                continue
            tell_quietly(tracker, message)
