"""Store contract: leases (one owner per context across processes) and fenced writes. Run on
every backend that keeps leases, against real servers.

A lease is taken by compare-and-set on a record beside the context, ends by the store's
clock, and carries an epoch that only grows; a write fenced with an epoch goes in only while
that lease holds, so a former owner (paused, partitioned) can never write over its
successor.
"""

from __future__ import annotations

import time

import pytest

from storage import (
    InvalidArgumentError,
    Lease,
    LeaseLost,
    NotOwner,
    State,
    Store,
    VersionConflict,
)
from storage._delta import Delta

from .test_store_contract import (  # noqa: F401 - the contract's fixtures, found by name
    backend,
    make_store,
    next_state,
)
from .test_store_contract import store as store  # noqa: PLC0414 - a fixture, found by name

pytestmark = pytest.mark.timeout(60)

TTL = 30.0
SHORT = 0.3  # a lease the tests let end


@pytest.fixture
def leased(store: Store) -> Store:
    # Every store of this library keeps leases; only a third-party store run through this
    # suite (a Backend entry of its own) may say it does not, and is skipped.
    if not store.supports_leases:
        assert not type(store).__module__.startswith("storage."), f"{store!r} keeps no leases"
        pytest.skip(f"{type(store).__name__} keeps no leases")
    return store


def _fenced(store: Store, state: State, epoch: int | None) -> list[object]:
    """Commit the next version of `state` fenced with `epoch`; the outcome."""
    following = next_state(state, n=state.version + 1)
    if store.supports_journal:
        write = store.prepare_delta(Delta.between(state, following), state.version, lease=epoch)
    else:
        write = store.prepare_snapshot(following, state.version, lease=epoch)
    return list(store.commit([write]))


def _until_ended(store: Store, name: str) -> Lease:
    """Wait (bounded) until the lease of `name` has ended by the store's clock."""
    deadline = time.monotonic() + 10
    while True:
        lease = store.read_leases([name])[name]
        if not lease.held:
            return lease
        assert time.monotonic() < deadline, f"lease never ended: {lease}"
        time.sleep(min(0.05, max(lease.expires_in, 0.001)))


def test_a_free_lease_is_taken_with_epoch_one(leased: Store) -> None:
    lease = leased.acquire_lease("a", "p1", TTL)
    assert (lease.context, lease.owner, lease.epoch) == ("a", "p1", 1)
    assert lease.held_by("p1", 1)
    assert 0 < lease.expires_in <= TTL
    assert leased.read_leases(["a"])["a"].held_by("p1", 1)


def test_a_lease_never_taken_reads_as_epoch_zero(leased: Store) -> None:
    lease = leased.read_leases(["never"])["never"]
    assert (lease.owner, lease.epoch, lease.held) == (None, 0, False)


def test_the_holder_taking_it_again_extends_it_with_the_same_epoch(leased: Store) -> None:
    leased.acquire_lease("a", "p1", SHORT)
    lease = leased.acquire_lease("a", "p1", TTL)
    assert lease.epoch == 1
    assert lease.expires_in > SHORT


def test_another_owner_gets_not_owner_naming_the_holder_and_is_noted(leased: Store) -> None:
    leased.acquire_lease("a", "p1", TTL)
    with pytest.raises(NotOwner) as caught:
        leased.acquire_lease("a", "p2", TTL)
    assert caught.value.owner == "p1"
    assert caught.value.name == "a"
    assert "'p1'" in str(caught.value)
    lease = leased.read_leases(["a"])["a"]
    assert lease.held_by("p1", 1)
    assert lease.wanted_by == "p2"


def test_a_released_lease_is_taken_by_the_next_owner_with_the_next_epoch(leased: Store) -> None:
    leased.acquire_lease("a", "p1", TTL)
    with pytest.raises(NotOwner):
        leased.acquire_lease("a", "p2", TTL)
    leased.release_lease("a", "p1", 1)
    assert not leased.read_leases(["a"])["a"].held
    lease = leased.acquire_lease("a", "p2", TTL)
    assert (lease.owner, lease.epoch, lease.wanted_by) == ("p2", 2, None)


def test_release_by_a_non_holder_or_of_another_epoch_changes_nothing(leased: Store) -> None:
    leased.acquire_lease("a", "p1", TTL)
    leased.release_lease("a", "p2", 1)
    leased.release_lease("a", "p1", 7)
    assert leased.read_leases(["a"])["a"].held_by("p1", 1)


def test_an_ended_lease_is_taken_over_with_the_next_epoch(leased: Store) -> None:
    leased.acquire_lease("a", "p1", SHORT)
    _until_ended(leased, "a")
    lease = leased.acquire_lease("a", "p2", TTL)
    assert (lease.owner, lease.epoch) == ("p2", 2)


def test_renew_extends_what_is_held_and_reports_what_is_lost(leased: Store) -> None:
    leased.acquire_lease("kept", "p1", SHORT)
    leased.acquire_lease("lost", "p1", SHORT)
    _until_ended(leased, "lost")
    leased.acquire_lease("lost", "p2", TTL)  # lost's ended, and p2 took it
    # kept ended too, by the same clock, but nobody took it: renewing it is refused too,
    # since a write fenced with it was refused meanwhile and may be retried elsewhere.
    renewed = leased.renew_leases("p1", {"kept": 1, "lost": 1}, TTL)
    assert set(renewed) == {"kept", "lost"}
    assert renewed["lost"].held_by("p2", 2)
    assert not renewed["lost"].held_by("p1", 1)
    assert not renewed["kept"].held


def test_renew_of_held_leases_extends_them(leased: Store) -> None:
    leased.acquire_lease("a", "p1", SHORT * 4)
    leased.acquire_lease("b", "p1", SHORT * 4)
    renewed = leased.renew_leases("p1", {"a": 1, "b": 1}, TTL)
    assert all(lease.held_by("p1", 1) for lease in renewed.values())
    assert all(lease.expires_in > SHORT * 4 for lease in renewed.values())
    assert leased.renew_leases("p1", {}, TTL) == {}


def test_a_write_fenced_with_the_held_lease_is_stored(leased: Store) -> None:
    leased.create(State.new("a", {"n": 0}))
    epoch = leased.acquire_lease("a", "p1", TTL).epoch
    assert _fenced(leased, leased.read_head("a"), epoch) == [None]
    assert leased.head_version("a") == 1


def test_a_former_owner_s_write_is_refused_with_lease_lost_and_changes_nothing(
    leased: Store,
) -> None:
    leased.create(State.new("a", {"n": 0}))
    leased.acquire_lease("a", "p1", SHORT)
    head = leased.read_head("a")
    _until_ended(leased, "a")
    leased.acquire_lease("a", "p2", TTL)
    (outcome,) = _fenced(leased, head, 1)
    assert isinstance(outcome, LeaseLost)
    assert (outcome.name, outcome.epoch, outcome.current) == ("a", 1, 2)
    assert leased.head_version("a") == 0


def test_a_write_fenced_with_an_ended_lease_nobody_took_is_refused(leased: Store) -> None:
    leased.create(State.new("a", {"n": 0}))
    leased.acquire_lease("a", "p1", SHORT)
    _until_ended(leased, "a")
    (outcome,) = _fenced(leased, leased.read_head("a"), 1)
    assert isinstance(outcome, LeaseLost)
    assert leased.head_version("a") == 0


def test_a_write_fenced_after_release_or_with_no_lease_is_refused(leased: Store) -> None:
    leased.create(State.new("a", {"n": 0}))
    leased.create(State.new("b", {"n": 0}))
    leased.acquire_lease("a", "p1", TTL)
    leased.release_lease("a", "p1", 1)
    (after_release,) = _fenced(leased, leased.read_head("a"), 1)
    (never_taken,) = _fenced(leased, leased.read_head("b"), 1)
    assert isinstance(after_release, LeaseLost)
    assert isinstance(never_taken, LeaseLost)
    assert never_taken.current == 0
    assert (leased.head_version("a"), leased.head_version("b")) == (0, 0)


def test_the_chain_behind_a_refused_fenced_write_is_refused_and_others_go_in(
    leased: Store,
) -> None:
    leased.create(State.new("a", {"n": 0}))
    leased.create(State.new("b", {"n": 0}))
    epoch_b = leased.acquire_lease("b", "p1", TTL).epoch
    a1 = leased.read_head("a")
    a2 = next_state(a1, n=1)
    b1 = leased.read_head("b")
    writes = [
        leased.prepare_snapshot(a2, a1.version, lease=5),
        leased.prepare_snapshot(next_state(a2, n=2), a2.version, lease=5),
        leased.prepare_snapshot(next_state(b1, n=1), b1.version, lease=epoch_b),
    ]
    first, second, other = leased.commit(writes)
    assert isinstance(first, LeaseLost)
    assert isinstance(second, LeaseLost | VersionConflict)
    assert other is None
    assert (leased.head_version("a"), leased.head_version("b")) == (0, 1)


def test_unfenced_writes_are_not_checked(leased: Store) -> None:
    leased.create(State.new("a", {"n": 0}))
    leased.acquire_lease("a", "p1", TTL)
    assert _fenced(leased, leased.read_head("a"), None) == [None]


@pytest.mark.parametrize(
    ("owner", "ttl"), [("", TTL), (None, TTL), ("p", 0), ("p", -1), ("p", True), ("p", "5")]
)
def test_bad_owner_or_ttl_is_refused_and_changes_nothing(
    leased: Store, owner: object, ttl: object
) -> None:
    with pytest.raises(InvalidArgumentError, match=repr(owner) if owner != "p" else repr(ttl)):
        leased.acquire_lease("a", owner, ttl)  # type: ignore[arg-type]
    assert leased.read_leases(["a"])["a"].epoch == 0


def test_a_write_fenced_with_epoch_zero_is_always_refused(leased: Store) -> None:
    # The runtime fences a leased context's write with 0 while it holds no lease: it must
    # never go in, whether the lease was never taken, is held by another, or was released.
    for name in ("never", "held", "released"):
        leased.create(State.new(name, {"n": 0}))
    leased.acquire_lease("held", "p1", TTL)
    epoch = leased.acquire_lease("released", "p1", TTL).epoch
    leased.release_lease("released", "p1", epoch)
    for name in ("never", "held", "released"):
        (outcome,) = _fenced(leased, leased.read_head(name), 0)
        assert isinstance(outcome, LeaseLost), name
        assert leased.head_version(name) == 0
