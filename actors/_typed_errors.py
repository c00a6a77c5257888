"""The typed errors of typed contexts (docs/typed-contexts.md), in the one hierarchy.

```
StateError
├── InvalidValueError
│   └── ModelValueError        a model holds what a State cannot store, or would not read back
└── ModelMismatchError         stored data does not fit the model
    ├── SchemaVersionError     stored by a newer schema than the code knows (or unreadable)
    └── MigrationError         a migration step raised or returned something else than a dict
```
"""

from __future__ import annotations

from collections.abc import Sequence

from storage import InvalidValueError, StateError

__all__ = ["MigrationError", "ModelMismatchError", "ModelValueError", "SchemaVersionError"]

_UNKNOWN: object = object()


class ModelValueError(InvalidValueError):
    """A model given to (or returned into) a typed write holds a value a State cannot store
    as JSON, or one that would not structure back into the model; nothing was changed.

    `path` names the field (`Cart.items[0]['price']`), `reason` what is wrong with it and,
    when known, the message names the value's type.
    """

    def __init__(self, model: type, path: str, value: object, reason: str) -> None:
        if value is _UNKNOWN:
            # InvalidValueError's message names the value's type; here it is not known.
            StateError.__init__(self, f"invalid value at {path}: {reason}")
            self.path, self.value, self.reason = path, None, reason
        else:
            super().__init__(path, value, reason)
        self.model = model

    UNKNOWN = _UNKNOWN
    """Pass as `value` when the offending value is not at hand."""


class ModelMismatchError(StateError):
    """The stored State of a context does not fit the model: a field missing, of the wrong
    type, or a key the model does not have. Nothing half-built is returned, and reads never
    write: fix the data (untyped API) or the model, or add a migration.

    `errors` lists cattrs' messages, each ending with the field path (`... @ $.items[0].qty`).
    """

    def __init__(
        self,
        context: str,
        version: int,
        model: type,
        errors: Sequence[str],
        *,
        message: str | None = None,
    ) -> None:
        listed = "; ".join(errors)
        super().__init__(
            message
            or f"context {context!r} version {version} does not fit the model "
            f"{model.__qualname__}: {listed}"
        )
        self.context = context
        self.version = version
        self.model = model
        self.errors = tuple(errors)


class SchemaVersionError(ModelMismatchError):
    """The context was stored under a schema version the code does not know (newer than the
    model's, or not a version at all). It is left as it is: deploy the newer code."""

    def __init__(self, context: str, version: int, model: type, stored: str, known: int) -> None:
        super().__init__(
            context,
            version,
            model,
            [],
            message=f"context {context!r} version {version} has schema version {stored!r}, "
            f"which {model.__qualname__} (at schema version {known}) does not know: "
            "newer code wrote it, or it is not a version",
        )
        self.stored = stored
        self.known = known


class MigrationError(ModelMismatchError):
    """A migration step raised (chained as `__cause__`) or did not return a dict; the context
    is left as it is."""

    def __init__(self, context: str, version: int, model: type, step: int, reason: str) -> None:
        super().__init__(
            context,
            version,
            model,
            [reason],
            message=f"context {context!r} version {version} could not be migrated from "
            f"schema version {step} to {step + 1} of {model.__qualname__}: {reason}",
        )
        self.step = step
