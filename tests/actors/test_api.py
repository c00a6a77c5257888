"""The public surface of `actors`: the names the issue promises, one error hierarchy."""

from __future__ import annotations

import asyncio
import logging

import actors
import actors.testing
from actors import ContextError, ContextStatus, create_adapter

from .conftest import WAIT

PROMISED = {
    "create_manager",
    "create_adapter",
    "ContextManager",
    "ContextAdapter",
    "ContextTracker",
    "ContextFuture",
    "ContextStatus",
    "ContextTrackerFactory",
    "TrackerConfig",
    "SupervisorConfig",
    "SyncPolicy",
    "State",
    "ContextError",
    "ContextNotFoundError",
    "ContextTimeoutError",
    "ForeignStateError",
    "InvalidContextNameError",
    "InvalidValueError",
    "KeyNotFoundError",
    "NoCurrentContextError",
    "RecoveryError",
    "ShutdownError",
    "VersionConflict",
    # typed contexts (docs/typed-contexts.md)
    "ContextSchema",
    "MigrationError",
    "ModelMismatchError",
    "ModelValueError",
    "SchemaVersionError",
    "TypedContexts",
    "TypedTracker",
    "Versioned",
    "context_schema",
    "make_model_converter",
    "model_converter",
}


def test_all_lists_every_promised_name():
    assert set(actors.__all__) >= PROMISED


def test_all_is_sorted_unique_and_resolvable():
    assert actors.__all__ == sorted(set(actors.__all__))
    for name in actors.__all__:
        assert hasattr(actors, name), name
    assert set(actors.testing.__all__) == {"FaultyStore", "InjectedCrash", "ManualClock", "crash"}


def test_every_exported_error_is_a_context_error():
    errors = [
        getattr(actors, name)
        for name in actors.__all__
        if name.endswith("Error") or name == "VersionConflict"
    ]
    assert len(errors) > 10
    for error in errors:
        assert issubclass(error, ContextError), error


def test_context_status_has_the_four_states():
    assert {status.name for status in ContextStatus} == {
        "ACTIVE",
        "INACTIVE",
        "NONEXISTENT",
        "FAILED",
    }


def test_library_logger_has_a_null_handler():
    handlers = logging.getLogger("actors").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_the_whole_api_can_be_awaited(manager):
    adapter = create_adapter(manager)

    async def main():
        tracker = await adapter.initialize()
        await tracker.set("n", 1)
        await manager.create_context("other", {"x": 1})
        other = await adapter.switch_context("other")
        assert await adapter.current_context() == "other"
        assert await other.get("x") == 1
        assert await manager.status("default") is ContextStatus.ACTIVE
        await adapter.deactivate_context("default")
        return await manager.list_contexts(), await manager.active_contexts()

    contexts, active = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert (contexts, active) == (["default", "other"], ["other"])
