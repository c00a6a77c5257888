"""ContextSchema: a model class, its schema version, its migrations and its converter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs
import cattrs

from actors._migrations import Migration, check_migrations, migrate
from actors._typed_convert import from_data, model_converter, to_data
from storage import ConfigurationError, State

__all__ = ["ContextSchema", "context_schema", "schema_of"]

M = TypeVar("M")

_ATTRIBUTE = "__context_schema__"


def _frozen_steps(steps: Mapping[int, Migration]) -> Mapping[int, Migration]:
    return MappingProxyType(dict(steps))


@attrs.frozen
class ContextSchema(Generic[M]):
    """How a model class is stored: what a typed handle needs besides the model.

    `version` is the schema version the model is at (1 for a first model); `migrations`
    maps each older version n to the function that turns the raw data dict of version n
    into that of n + 1 (so a model at version 3 has steps 1 and 2). `converter` is the
    cattrs converter to use: by default the shared `model_converter`.

    Raises (on construction): `ConfigurationError` if `model` is neither an attrs class nor
    a dataclass, or the steps do not lead from 1 to `version` one by one.
    """

    model: type[M]
    version: int = 1
    migrations: Mapping[int, Migration] = attrs.field(factory=dict, converter=_frozen_steps)
    converter: cattrs.Converter = attrs.field(default=model_converter, repr=False)

    def __attrs_post_init__(self) -> None:
        model = self.model
        if not isinstance(model, type) or not (attrs.has(model) or dataclasses.is_dataclass(model)):
            msg = f"a typed context's model must be an attrs class or a dataclass, got {model!r}"
            raise ConfigurationError(msg)
        check_migrations(model, self.version, self.migrations)

    def load(self, state: State) -> M:
        """`state` (a private copy: migrations change its data) as a model.

        Raises: `SchemaVersionError`, `MigrationError`, `ModelMismatchError`.
        """
        data = migrate(state, state.data, self.model, self.version, self.migrations)
        return from_data(self.converter, self.model, data, state.context, state.version)

    def dump(self, instance: object) -> tuple[dict[str, Any], M]:
        """The State data of `instance` (checked and private), and the model it reads back as.

        Raises: `ModelValueError`.
        """
        return to_data(self.converter, self.model, instance)


def context_schema(
    version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    converter: cattrs.Converter | None = None,
) -> Callable[[type[M]], type[M]]:
    """Class decorator: the model carries its schema, so every typed handle on it agrees.
    Put it above `@attrs.define` / `@dataclass` (it records the finished class).

    ```python
    @context_schema(version=2, migrations={1: rename_items})
    @attrs.define
    class Cart: ...
    ```
    """

    def decorate(model: type[M]) -> type[M]:
        schema = ContextSchema(
            model, version, migrations or {}, model_converter if converter is None else converter
        )
        setattr(model, _ATTRIBUTE, schema)
        return model

    return decorate


def schema_of(model: type[M] | ContextSchema[M]) -> ContextSchema[M]:
    """The schema of `model`: itself if it is one, the one `@context_schema` recorded, or
    version 1 with no migrations.

    Raises: `ConfigurationError` (not a model; or decorated below `@attrs.define`, or a
    subclass of a decorated model, whose recorded schema is of another class).
    """
    if isinstance(model, ContextSchema):
        return model
    recorded = getattr(model, _ATTRIBUTE, None)
    if isinstance(recorded, ContextSchema):
        if recorded.model is not model:
            msg = (
                f"{model!r} carries the schema of {recorded.model!r}: put @context_schema "
                "above @attrs.define / @dataclass, and decorate a subclass on its own"
            )
            raise ConfigurationError(msg)
        return recorded
    return ContextSchema(model)
