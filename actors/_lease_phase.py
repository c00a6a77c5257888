"""Taking a context's lease before a write (`TrackerConfig.leases`, `actors/_lease.py`).

A request that would write, run by a tracker that does not hold its context's lease, is not
applied: the tracker takes the lease, catches up with what the previous owner wrote, and
runs the request again on that State. If another process holds the lease, the store notes
that we asked (its keeper tells it to hand over) and the tracker waits in `AwaitingLease`,
asking again on a short backoff, holding later requests back in order, for up to
`LeasePolicy.wait` seconds; then the caller gets `NotOwner`, naming the holder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from actors._future import reject
from actors._messages import Stop, TrackerRequest
from actors._phases import Phase, Running
from storage import ContextError, NotOwner

if TYPE_CHECKING:
    from actors._tracker import TrackerActor

__all__ = ["AwaitingLease", "LeaseTick", "take_lease"]

_FIRST_DELAY = 0.001
_MAX_DELAY = 0.005
"""Seconds between asks for a lease held elsewhere: doubling from the first to the most.
The holder hands over within `hold` plus one look of its keeper (`hold / 4`); a poll is
one read of the lease."""


@attrs.frozen(eq=False)
class LeaseTick:
    """Ask for the lease again (one waits at a time: compared by identity)."""


def take_lease(t: TrackerActor, message: TrackerRequest, attempt: int) -> Phase:
    """`message` would write and the tracker holds no lease: take it, catch up, and run the
    message again; or wait for it (`AwaitingLease`)."""
    hold = t.lease
    assert hold is not None
    now = t.clock.now()
    if now < hold.resting_until:  # we just handed over: let the asker take it first
        return AwaitingLease(t, message, attempt, now, None).wait(hold.resting_until - now)
    try:
        hold.take(t.actor_ref)
    except NotOwner as exc:
        if hold.policy.wait == 0:
            reject(message.reply, exc)
            return Running(t)
        return AwaitingLease(t, message, attempt, now, exc).wait(_FIRST_DELAY)
    except ContextError as exc:  # the store failed: the caller hears it, nothing changed
        reject(message.reply, exc)
        return Running(t)
    suspended = t.refresh_quietly()  # what the previous owner wrote
    if suspended is not None:
        t.stash.put_back([message])  # runs once restarted
        return suspended
    return Running(t).request(message, attempt)


class AwaitingLease(Phase):
    """A write waits for the lease another process holds; later requests wait behind it in
    the stash, a Stop puts it back there (the stop answers or passes it on)."""

    def __init__(
        self,
        tracker: TrackerActor,
        message: TrackerRequest,
        attempt: int,
        since: float,
        refusal: NotOwner | None,
    ) -> None:
        super().__init__(tracker)
        self.message = message
        self.attempt = attempt
        self.since = since
        self.refusal = refusal
        self.delay = _FIRST_DELAY
        self.tick = LeaseTick()

    def wait(self, delay: float) -> AwaitingLease:
        self.tick = LeaseTick()
        self.t.tell_after(delay, self.tick)
        return self

    def receive(self, message: Any) -> Phase | None:
        if isinstance(message, LeaseTick):
            return self._ask_again() if message is self.tick else self
        return super().receive(message)

    def _ask_again(self) -> Phase:
        t = self.t
        hold = t.lease
        assert hold is not None
        try:
            if self.refusal is not None and not hold.worth_asking():
                return self._later(self.refusal)  # still held, and its holder knows we wait
            hold.take(t.actor_ref)
        except NotOwner as exc:
            return self._later(exc)
        except ContextError as exc:
            reject(self.message.reply, exc)
            return Running(t)
        suspended = t.refresh_quietly()
        if suspended is not None:
            t.stash.put_back([self.message])
            return suspended
        return Running(t).request(self.message, self.attempt)

    def _later(self, refusal: NotOwner) -> Phase:
        """Ask again after a longer backoff, or refuse the write once `wait` has passed."""
        t = self.t
        assert t.lease is not None
        if t.clock.now() - self.since >= t.lease.policy.wait:
            reject(self.message.reply, refusal)
            return Running(t)
        self.refusal = refusal
        self.delay = min(self.delay * 2, _MAX_DELAY)
        return self.wait(self.delay)

    def stop(self, message: Stop) -> Phase | None:
        self.t.stash.put_back([self.message])
        return Running(self.t).stop(message)

    def held(self) -> list[Any]:
        return [self.message]
