"""ContextManager: creating, activating, listing, persisting, recovery points and deletion."""

from __future__ import annotations

import pykka
import pytest

from actors import (
    ContextExistsError,
    ContextInactiveError,
    ContextManager,
    ContextNotFoundError,
    ContextStatus,
    ContextTracker,
    InvalidArgumentError,
    InvalidContextNameError,
    InvalidValueError,
    PersistenceError,
    RecoveryPointNotFoundError,
    ShutdownError,
    State,
    create_manager,
)
from actors._tracker import TrackerActor
from storage import MemoryStore, SqliteStore

from .conftest import WAIT, make_manager, make_tracker, wait_until


def manager_sizes(manager: ContextManager) -> dict[str, int]:
    """The manager actor's tables, read once it has handled what was told to it before."""
    manager.active_contexts().get(timeout=WAIT)
    actor = manager._ref._actor_weakref()
    assert actor is not None
    return actor._contexts.sizes()


BAD_NAMES = ["", ".", "..", "a/b", "spa ce", "\u0430dmin", "x" * 201, None, 42]

MANAGER_CALLS = {
    "create_context": lambda m, name: m.create_context(name),
    "get_tracker": lambda m, name: m.get_tracker(name),
    "delete_context": lambda m, name: m.delete_context(name),
    "status": lambda m, name: m.status(name),
    "save": lambda m, name: m.save(name),
    "load": lambda m, name: m.load(name),
    "create_recovery_point": lambda m, name: m.create_recovery_point(name),
    "list_recovery_points": lambda m, name: m.list_recovery_points(name),
    "restore_recovery_point": lambda m, name: m.restore_recovery_point(name, 1),
    "delete_recovery_point": lambda m, name: m.delete_recovery_point(name, 1),
    "deactivate": lambda m, name: m.deactivate(name),
    "recovery_report": lambda m, name: m.recovery_report(name),
    "get_states": lambda m, name: m.get_states(["ok", name]),
}


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("method", sorted(MANAGER_CALLS))
def test_every_manager_method_refuses_an_invalid_name(manager, method, name):
    with pytest.raises(InvalidContextNameError):
        MANAGER_CALLS[method](manager, name).get(timeout=WAIT)
    # The manager is unharmed.
    assert manager.list_contexts().get(timeout=WAIT) == []


def test_create_context_returns_version_zero_and_starts_inactive(manager):
    state = manager.create_context("ctx", {"a": [1]}, {"owner": "me"}).get(timeout=WAIT)
    assert (state.context, state.version, state.data, state.metadata) == (
        "ctx",
        0,
        {"a": [1]},
        {"owner": "me"},
    )
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.active_contexts().get(timeout=WAIT) == []


def test_create_context_copies_its_arguments(manager):
    data = {"a": [1]}
    manager.create_context("ctx", data).get(timeout=WAIT)
    data["a"].append(2)
    assert manager.load("ctx").get(timeout=WAIT).data == {"a": [1]}


def test_create_context_twice_raises_context_exists_error(manager):
    manager.create_context("ctx").get(timeout=WAIT)
    with pytest.raises(ContextExistsError):
        manager.create_context("ctx").get(timeout=WAIT)


def test_create_context_with_invalid_data_raises_invalid_value_error(manager):
    with pytest.raises(InvalidValueError):
        manager.create_context("ctx", {"bad": {1}}).get(timeout=WAIT)
    with pytest.raises(InvalidValueError):
        manager.create_context("ctx", {}, {"m": 1}).get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT


def test_get_tracker_activates_and_returns_the_same_handle(manager):
    manager.create_context("ctx", {"n": 1}).get(timeout=WAIT)
    tracker = manager.get_tracker("ctx").get(timeout=WAIT)
    assert isinstance(tracker, ContextTracker)
    assert tracker.get("n").get(timeout=WAIT) == 1
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE
    assert manager.get_tracker("ctx").get(timeout=WAIT) == tracker


def test_concurrent_get_tracker_calls_start_one_tracker(manager):
    manager.create_context("ctx").get(timeout=WAIT)
    futures = [manager.get_tracker("ctx") for _ in range(10)]
    trackers = [future.get(timeout=WAIT) for future in futures]
    assert all(tracker == trackers[0] for tracker in trackers)
    versions = [tracker.set(f"k{i}", i).get(timeout=WAIT) for i, tracker in enumerate(trackers)]
    assert versions == list(range(1, 11))


def test_get_tracker_of_a_missing_context_raises_context_not_found_error(manager):
    with pytest.raises(ContextNotFoundError):
        manager.get_tracker("missing").get(timeout=WAIT)
    assert manager.status("missing").get(timeout=WAIT) is ContextStatus.NONEXISTENT


def test_concurrent_get_tracker_calls_of_a_missing_context_all_fail_and_leave_nothing(manager):
    # Activation asks the tracker's load, not the store first: a second call for the same
    # name while that load runs must wait for it too, not get a handle to nothing.
    futures = [manager.get_tracker("missing") for _ in range(10)]
    for future in futures:
        with pytest.raises(ContextNotFoundError, match="missing"):
            future.get(timeout=WAIT)
    assert manager.active_contexts().get(timeout=WAIT) == []
    assert wait_until(lambda: not pykka.ActorRegistry.get_by_class(TrackerActor))
    assert wait_until(lambda: manager_sizes(manager)["cells"] == 0)
    manager.create_context("missing", {"n": 1}).get(timeout=WAIT)  # and it can come to be
    assert manager.get_tracker("missing").get(timeout=WAIT).get("n").get(timeout=WAIT) == 1


def test_a_context_deleted_by_another_process_while_passive_fails_the_next_call(tmp_path):
    db = tmp_path / "shared.db"
    with create_manager(f"sqlite:///{db}", passivate_after=None) as manager:
        tracker = make_tracker(manager, data={"n": 0})
        manager.deactivate("ctx").get(timeout=WAIT)
        manager.get_tracker("ctx").get(timeout=WAIT)  # known to the manager, then gone:
        manager.deactivate("ctx").get(timeout=WAIT)
        with SqliteStore(db) as other:
            other.delete("ctx")
        with pytest.raises(ContextNotFoundError):
            manager.get_tracker("ctx").get(timeout=WAIT)
        with pytest.raises((ContextNotFoundError, ContextInactiveError)):
            tracker.get("n").get(timeout=WAIT)
        assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT


def test_list_contexts_and_active_contexts_are_sorted(manager):
    for name in ["c", "a", "b"]:
        manager.create_context(name).get(timeout=WAIT)
    manager.get_tracker("c").get(timeout=WAIT)
    manager.get_tracker("a").get(timeout=WAIT)
    assert manager.list_contexts().get(timeout=WAIT) == ["a", "b", "c"]
    assert manager.active_contexts().get(timeout=WAIT) == ["a", "c"]


def test_deactivate_writes_and_stops_the_tracker(manager):
    tracker = make_tracker(manager, data={"n": 0})
    tracker.set("n", 1).get(timeout=WAIT)
    assert manager.deactivate("ctx").get(timeout=WAIT) is None
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.active_contexts().get(timeout=WAIT) == []
    assert manager.load("ctx").get(timeout=WAIT).get("n") == 1


def test_deactivate_of_an_inactive_context_is_a_no_op(manager):
    manager.create_context("ctx").get(timeout=WAIT)
    assert manager.deactivate("ctx").get(timeout=WAIT) is None
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE


def test_deactivate_of_a_missing_context_raises_context_not_found_error(manager):
    with pytest.raises(ContextNotFoundError):
        manager.deactivate("missing").get(timeout=WAIT)


def test_delete_context_of_an_active_context_stops_and_deletes_it(manager):
    tracker = make_tracker(manager)
    manager.create_recovery_point("ctx").get(timeout=WAIT)
    manager.delete_context("ctx").get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT
    assert manager.list_contexts().get(timeout=WAIT) == []
    assert manager.active_contexts().get(timeout=WAIT) == []
    with pytest.raises(ContextNotFoundError):
        tracker.get_state().get(timeout=WAIT)
    with pytest.raises(ContextNotFoundError):
        manager.list_recovery_points("ctx").get(timeout=WAIT)


def test_delete_context_of_an_inactive_context(manager):
    manager.create_context("ctx").get(timeout=WAIT)
    manager.delete_context("ctx").get(timeout=WAIT)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.NONEXISTENT


def test_delete_context_of_a_missing_context_raises_context_not_found_error(manager):
    with pytest.raises(ContextNotFoundError):
        manager.delete_context("missing").get(timeout=WAIT)


def test_deleted_context_can_be_created_again(manager):
    make_tracker(manager, data={"n": 1})
    manager.delete_context("ctx").get(timeout=WAIT)
    tracker = make_tracker(manager, data={"n": 2})
    assert tracker.get_state().get(timeout=WAIT).version == 0
    assert tracker.get("n").get(timeout=WAIT) == 2


def test_save_of_an_active_context_returns_the_stored_version(manager):
    tracker = make_tracker(manager)
    tracker.set("n", 1).get(timeout=WAIT)
    assert manager.save("ctx").get(timeout=WAIT) == 1


def test_save_of_an_inactive_context_returns_the_stored_version(manager):
    manager.create_context("ctx").get(timeout=WAIT)
    assert manager.save("ctx").get(timeout=WAIT) == 0


def test_save_of_a_missing_context_raises_context_not_found_error(manager):
    with pytest.raises(ContextNotFoundError):
        manager.save("missing").get(timeout=WAIT)


def test_load_reads_the_stored_state(manager):
    tracker = make_tracker(manager)
    tracker.set("n", 7).get(timeout=WAIT)
    loaded = manager.load("ctx").get(timeout=WAIT)
    assert loaded == tracker.get_state().get(timeout=WAIT)
    with pytest.raises(ContextNotFoundError):
        manager.load("missing").get(timeout=WAIT)


def test_with_block_shuts_the_manager_down():
    with make_manager() as manager:
        tracker = make_tracker(manager)
    assert isinstance(manager, ContextManager)
    with pytest.raises(ShutdownError):
        manager.active_contexts().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        tracker.get_state().get(timeout=WAIT)


# -- stores -------------------------------------------------------------------------------------


def test_create_manager_without_a_store_uses_memory():
    manager = create_manager()
    assert isinstance(manager.store, MemoryStore)
    manager.shutdown().get(timeout=WAIT)


def test_create_manager_from_a_url_opens_and_closes_the_store(db_path):
    manager = create_manager(f"sqlite:///{db_path}")
    assert isinstance(manager.store, SqliteStore)
    manager.create_context("ctx").get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)
    with pytest.raises(PersistenceError, match="closed"):
        manager.store.list_contexts()


def test_create_manager_leaves_a_store_passed_in_open(sqlite_store):
    manager = create_manager(sqlite_store)
    manager.create_context("ctx").get(timeout=WAIT)
    manager.shutdown().get(timeout=WAIT)
    assert sqlite_store.list_contexts() == ["ctx"]


def test_create_manager_refuses_an_unknown_url():
    with pytest.raises(ValueError, match="scheme"):
        create_manager("nosuch://x")


# -- recovery points ------------------------------------------------------------------------------


def test_recovery_points_are_listed_oldest_first_and_deleted(manager):
    tracker = make_tracker(manager, data={"n": 0})
    first = manager.create_recovery_point("ctx", "first").get(timeout=WAIT)
    tracker.set("n", 1).get(timeout=WAIT)
    second = manager.create_recovery_point("ctx").get(timeout=WAIT)
    assert (first.version, first.label, second.version, second.label) == (0, "first", 1, None)
    assert manager.list_recovery_points("ctx").get(timeout=WAIT) == [first, second]
    manager.delete_recovery_point("ctx", first.point_id).get(timeout=WAIT)
    assert manager.list_recovery_points("ctx").get(timeout=WAIT) == [second]
    with pytest.raises(RecoveryPointNotFoundError):
        manager.delete_recovery_point("ctx", first.point_id).get(timeout=WAIT)


def test_recovery_point_of_an_inactive_context_snapshots_the_stored_state(manager):
    manager.create_context("ctx", {"n": 5}).get(timeout=WAIT)
    point = manager.create_recovery_point("ctx", "cold").get(timeout=WAIT)
    assert (point.version, point.label) == (0, "cold")
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE


def _prepare_restore(manager):
    tracker = make_tracker(manager, data={"n": 1})
    tracker.set_metadata("phase", "one").get(timeout=WAIT)
    point = manager.create_recovery_point("ctx", "one").get(timeout=WAIT)
    tracker.set("n", 2).get(timeout=WAIT)
    tracker.set("extra", True).get(timeout=WAIT)
    tracker.set_metadata("phase", "two").get(timeout=WAIT)
    return tracker, point


def test_restore_of_an_active_context_writes_a_new_version(manager):
    tracker, point = _prepare_restore(manager)
    before = tracker.get_state().get(timeout=WAIT)
    restored = manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)

    assert isinstance(restored, State)
    assert restored.version == before.version + 1
    assert (restored.data, restored.metadata) == ({"n": 1}, {"phase": "one"})
    assert tracker.get_state().get(timeout=WAIT) == restored
    assert manager.load("ctx").get(timeout=WAIT) == restored
    assert tracker.set("n", 3).get(timeout=WAIT) == restored.version + 1


def test_restore_of_an_inactive_context_writes_a_new_version(manager):
    _, point = _prepare_restore(manager)
    manager.deactivate("ctx").get(timeout=WAIT)
    stored = manager.load("ctx").get(timeout=WAIT)
    restored = manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)

    assert restored.version == stored.version + 1
    assert (restored.data, restored.metadata) == ({"n": 1}, {"phase": "one"})
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.load("ctx").get(timeout=WAIT) == restored
    tracker = manager.get_tracker("ctx").get(timeout=WAIT)
    assert tracker.get_state().get(timeout=WAIT) == restored


def test_restoring_twice_keeps_moving_versions_forward(manager):
    _, point = _prepare_restore(manager)
    first = manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)
    second = manager.restore_recovery_point("ctx", point.point_id).get(timeout=WAIT)
    assert second.version == first.version + 1
    assert second.data == first.data


@pytest.mark.parametrize("active", [True, False], ids=["active", "inactive"])
def test_restore_of_a_missing_point_raises_and_changes_nothing(manager, active):
    make_tracker(manager, data={"n": 1})
    if not active:
        manager.deactivate("ctx").get(timeout=WAIT)
    with pytest.raises(RecoveryPointNotFoundError):
        manager.restore_recovery_point("ctx", 12345).get(timeout=WAIT)
    assert manager.load("ctx").get(timeout=WAIT).version == 0


def test_restore_of_a_missing_context_raises_context_not_found_error(manager):
    with pytest.raises((ContextNotFoundError, RecoveryPointNotFoundError)):
        manager.restore_recovery_point("missing", 1).get(timeout=WAIT)


def test_recovery_report_is_none_after_a_clean_load(manager):
    make_tracker(manager)
    assert manager.recovery_report("ctx").get(timeout=WAIT) is None


def test_inactive_context_error_names_the_context(manager):
    tracker = make_tracker(manager)
    manager.deactivate("ctx").get(timeout=WAIT)
    with pytest.raises(ContextInactiveError, match="'ctx'"):
        tracker.get("n").get(timeout=WAIT)


def test_get_tracker_with_create_makes_a_missing_context_once(wait, manager):
    futures = [manager.get_tracker("new", create=True, data={"n": 1}) for _ in range(10)]
    trackers = [future.get(timeout=WAIT) for future in futures]
    assert all(tracker == trackers[0] for tracker in trackers)
    state = wait(trackers[0].get_state())
    assert (state.version, dict(state.items())) == (0, {"n": 1})
    assert manager.list_contexts().get(timeout=WAIT) == ["new"]
    assert trackers[0].set("n", 2).get(timeout=WAIT) == 1


def test_get_tracker_with_create_loads_a_stored_context_unchanged(wait, manager):
    manager.create_context("old", {"n": 5}, {"owner": "ada"}).get(timeout=WAIT)
    tracker = wait(manager.get_tracker("old", create=True, data={"n": 0}))
    state = tracker.get_state().get(timeout=WAIT)
    assert (state.version, state.get("n"), state.metadata) == (0, 5, {"owner": "ada"})


def test_get_tracker_refuses_data_without_create_and_bad_seeds(wait, manager):
    with pytest.raises(InvalidArgumentError, match="without create=True for context 'x'"):
        wait(manager.get_tracker("x", data={"n": 1}))
    with pytest.raises(InvalidValueError):
        wait(manager.get_tracker("x", create=True, data={"n": object()}))
    with pytest.raises(InvalidContextNameError):
        wait(manager.get_tracker("a/b", create=True))
    assert manager.list_contexts().get(timeout=WAIT) == []
