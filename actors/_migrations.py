"""Schema versions and migrations of typed contexts.

A typed write stores its model's schema version in the State's metadata under
`SCHEMA_KEY` (a str, as all metadata). A read finds the stored version (none: 1, the first
schema, as a context written untyped or before it had a model), refuses a newer one, and
runs the registered steps `n -> n + 1` in order on the raw data dict before structuring.
Reads never write: the migrated data is stored only by the next typed write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from actors._typed_errors import MigrationError, SchemaVersionError
from storage import ConfigurationError, State

__all__ = ["SCHEMA_KEY", "Migration", "check_migrations", "migrate", "stored_schema_version"]

SCHEMA_KEY = "schema_version"
"""The metadata key that holds the schema version a typed write stored (reserved)."""

Migration: TypeAlias = Callable[[dict[str, Any]], "dict[str, Any] | None"]
"""One step: takes the data of version n (a private dict), returns that of n + 1 (or None
when it changed the dict in place)."""


def check_migrations(model: type, version: object, migrations: Mapping[int, Migration]) -> None:
    """Refuse a schema whose steps do not lead from 1 to `version`, one by one.

    Raises:
        ConfigurationError: `version` is not an int >= 1, a step is missing, extra or not
            callable.
    """
    name = model.__qualname__
    if type(version) is not int or version < 1:
        raise ConfigurationError(f"schema version of {name} must be an int >= 1, got {version!r}")
    wanted = set(range(1, version))
    if set(migrations) != wanted:
        missing = sorted(wanted - set(migrations))
        extra = sorted(set(migrations) - wanted, key=repr)
        raise ConfigurationError(
            f"{name} is at schema version {version}: it needs one migration per step "
            f"n -> n + 1 keyed by n, {sorted(wanted)}; missing {missing}, unexpected {extra}"
        )
    for step, fn in migrations.items():
        if not callable(fn):  # callers may be untyped
            msg = f"migration {step} -> {step + 1} of {name} is not callable: {fn!r}"  # type: ignore[unreachable]
            raise ConfigurationError(msg)


def stored_schema_version(state: State, model: type, known: int) -> int:
    """The schema version `state` was written with, if the code knows it.

    Raises:
        SchemaVersionError: it is newer than `known`, or not a version at all.
    """
    stored = state.metadata.get(SCHEMA_KEY)
    if stored is None:
        return 1
    if stored.isascii() and stored.isdigit() and 1 <= int(stored) <= known:
        return int(stored)
    raise SchemaVersionError(state.context, state.version, model, stored, known)


def migrate(
    state: State,
    data: dict[str, Any],
    model: type,
    known: int,
    migrations: Mapping[int, Migration],
) -> dict[str, Any]:
    """`data` (a private copy of `state.data`) migrated to schema version `known`.

    Raises:
        SchemaVersionError: as `stored_schema_version()`.
        MigrationError: a step raised or did not return a dict (or None).
    """
    for step in range(stored_schema_version(state, model, known), known):
        try:
            result = migrations[step](data)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise MigrationError(state.context, state.version, model, step, reason) from exc
        if result is not None:
            if type(result) is not dict:
                reason = f"the step returned {type(result).__name__}, not a dict"
                raise MigrationError(state.context, state.version, model, step, reason)
            data = result
    return data
