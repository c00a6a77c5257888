"""Store contract: one `commit()` call may carry several consecutive versions of one context
(a tracker's pipelined batch: version v+2 prepared against v+1, which is not stored yet),
and a write after a refused write of its context is refused too. Run on every backend."""

from __future__ import annotations

from typing import Any

from storage import ContextNotFoundError, State, Store, VersionConflict
from storage._delta import Delta
from storage._store import Write

from .test_store_contract import (  # noqa: F401 - the contract's fixtures, found by name
    backend,
    make_store,
    next_state,
)
from .test_store_contract import store as store  # noqa: PLC0414 - a fixture, found by name


def _chain(store: Store, head: State, count: int, **changes: Any) -> tuple[list[Write], State]:
    """`count` writes of `head`'s context after it, each prepared against the one before
    (journal entries where the store keeps a journal, with a snapshot in the middle), and
    the State they end at."""
    writes, state = [], head
    for i in range(count):
        following = next_state(state, **{f"k{i}": i}, **changes)
        if store.supports_journal and i != 1:
            write = store.prepare_delta(Delta.between(state, following), state.version)
        else:
            write = store.prepare_snapshot(following, state.version)
        writes.append(write)
        state = following
    return writes, state


def test_commit_takes_consecutive_versions_of_one_context_in_one_call(store):
    store.create(State.new("a", {"n": 0}))
    store.create(State.new("b", {"n": 0}))
    chain_a, end_a = _chain(store, store.read_head("a"), 4)
    chain_b, end_b = _chain(store, store.read_head("b"), 2)
    # Interleaved, as the writer takes several trackers' batches in one transaction.
    writes = [chain_a[0], chain_b[0], chain_a[1], chain_a[2], chain_b[1], chain_a[3]]
    assert store.commit(writes) == [None] * 6
    for name, end in (("a", end_a), ("b", end_b)):
        head = store.read_head(name)
        assert (head.version, head.data) == (end.version, end.data)
    changes = store.read_changes("a", 0)
    assert changes.head == 4
    assert changes.steps is not None
    assert len(changes.steps) == 4  # every version of the chain is kept, in order


def test_a_write_after_a_refused_one_of_its_context_is_refused_too(store):
    store.create(State.new("a", {"n": 0}))
    store.create(State.new("b", {"n": 0}))
    ours, _ = _chain(store, store.read_head("a"), 3, who="us")
    # Another writer stored version 1 first: our version 2 expects a version 1, and finds
    # one, but it is not ours, so it must not be applied on top of it.
    theirs = next_state(store.read_head("a"), who="them")
    store.compare_and_set(theirs, 0)
    chain_b, _ = _chain(store, store.read_head("b"), 1)
    results = store.commit([*ours, *chain_b])
    assert [type(result) for result in results] == [VersionConflict] * 3 + [type(None)]
    head = store.read_head("a")
    assert (head.version, head.data) == (1, theirs.data)
    assert store.read_head("b").version == 1


def test_a_chain_of_a_missing_context_is_refused_whole(store):
    store.create(State.new("a", {"n": 0}))
    chain, _ = _chain(store, store.read_head("a"), 2)
    store.delete("a")
    results = store.commit(chain)
    assert all(isinstance(result, ContextNotFoundError | VersionConflict) for result in results)
    assert isinstance(results[0], ContextNotFoundError)
