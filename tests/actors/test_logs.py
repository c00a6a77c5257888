"""Log records about a context carry it (and its version) as structured fields."""

from __future__ import annotations

import logging

from actors import create_manager
from actors.testing import FaultyStore, crash
from storage import MemoryStore, PersistenceError

from .conftest import FAST_RESTARTS, WAIT


def test_a_restart_s_records_name_the_context_and_its_version(caplog):
    caplog.set_level(logging.DEBUG, logger="actors")
    store = FaultyStore(MemoryStore())
    with create_manager(store, supervisor=FAST_RESTARTS) as manager:
        manager.create_context("cart-7", {"n": 0}).get(timeout=WAIT)
        tracker = manager.get_tracker("cart-7").get(timeout=WAIT)
        tracker.set("n", 1).get(timeout=WAIT)
        crash(tracker).get(timeout=WAIT)
    store.close()

    about = [r for r in caplog.records if "cart-7" in r.getMessage()]
    kinds = {(r.name, r.levelname) for r in about}
    # The failure (tracker), the restart decision (manager) and the reload (tracker).
    assert {("actors.tracker", "ERROR"), ("actors.manager", "WARNING")} <= kinds
    assert ("actors.tracker", "DEBUG") in kinds
    for record in about:
        assert record.context == "cart-7", record.getMessage()
    failed = next(r for r in about if r.levelname == "ERROR")
    assert failed.context_version == 1  # the version the tracker held when it failed
    reloaded = [r for r in about if "running at version" in r.getMessage()]
    assert reloaded[-1].context_version == 1


def test_a_format_string_sees_the_fields(caplog):
    caplog.set_level(logging.WARNING, logger="actors")
    store = FaultyStore(MemoryStore())
    with create_manager(store, supervisor=FAST_RESTARTS) as manager:
        manager.create_context("c", {"n": 0}).get(timeout=WAIT)
        store.fail("read_latest", PersistenceError("disk gone"), times=1)
        tracker = manager.get_tracker("c").get(timeout=WAIT)  # the reload succeeds
        assert tracker.get("n").get(timeout=WAIT) == 0
    store.close()
    formatted = [
        logging.Formatter("%(context)s@%(context_version)s %(message)s").format(record)
        for record in caplog.records
        if record.name.startswith("actors.") and hasattr(record, "context")
    ]
    assert any(line.startswith("c@None tracker 'c' could not load") for line in formatted)
