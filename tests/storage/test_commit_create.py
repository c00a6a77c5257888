"""Store contract: a `commit()` batch may create contexts (`Store.prepare_create()`), each
followed by writes of its chain (what a tracker's first batch carries: a new context and its
first update, in one transaction with other contexts' writes). A create of a context that
exists is refused with `ContextExistsError`, and the rest of its chain with it. Run on every
backend."""

from __future__ import annotations

from storage import ContextExistsError, State, VersionConflict
from storage._delta import Delta

from .test_store_contract import (  # noqa: F401 - the contract's fixtures, found by name
    backend,
    make_store,
    next_state,
)
from .test_store_contract import store as store  # noqa: PLC0414 - a fixture, found by name


def _first_update(store, seed, **changes):
    following = next_state(seed, **changes)
    if store.supports_journal:
        return store.prepare_delta(Delta.between(seed, following), seed.version), following
    return store.prepare_snapshot(following, seed.version), following


def test_a_batch_creates_contexts_with_their_chains_beside_other_writes(store):
    store.create(State.new("old", {"n": 0}))
    seed = State.new("new", {"n": 0}, {"owner": "ada"})
    first, after = _first_update(store, seed, n=1)
    other, other_after = _first_update(store, store.read_head("old"), n=5)
    created = store.prepare_create(seed)
    assert (created.create, created.expected, created.version) == (True, -1, 0)
    assert store.commit([other, created, first]) == [None, None, None]
    head = store.read_head("new")
    assert (head.version, head.data, head.metadata) == (1, after.data, {"owner": "ada"})
    assert store.read_head("old").data == other_after.data
    assert store.list_contexts() == ["new", "old"]
    changes = store.read_changes("new", 0)
    assert (changes.head, changes.steps is not None) == (1, True)


def test_a_create_of_a_stored_context_is_refused_with_its_chain_and_changes_nothing(store):
    store.create(State.new("taken", {"n": 7}))
    seed = State.new("taken", {"n": 0})
    first, _ = _first_update(store, seed, n=1)
    fresh = State.new("fresh", {"n": 0})
    results = store.commit([store.prepare_create(seed), first, store.prepare_create(fresh)])
    assert isinstance(results[0], ContextExistsError)
    assert isinstance(results[1], VersionConflict)  # it expected our version 0, not theirs
    assert results[2] is None
    head = store.read_head("taken")
    assert (head.version, head.data) == (0, {"n": 7})
    assert store.read_head("fresh").data == {"n": 0}


def test_a_second_create_of_one_name_in_a_batch_is_refused(store):
    one, two = State.new("twice", {"who": "one"}), State.new("twice", {"who": "two"})
    results = store.commit([store.prepare_create(one), store.prepare_create(two)])
    assert results[0] is None
    assert isinstance(results[1], ContextExistsError)
    assert store.read_head("twice").data == {"who": "one"}
