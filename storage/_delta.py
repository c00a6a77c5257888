"""Delta: the key-level change from one version of a context to the next, as journaled."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from storage._exceptions import StateError
from storage._state import State

__all__ = ["Delta", "apply_changes"]

_MISSING: Any = object()


@attrs.frozen
class Delta:
    """What one accepted update changed: the keys set and removed, in data and metadata.

    Applying the deltas of versions `v + 1 .. w` to the State of version `v`, in order, gives
    the State of version `w`. Values are shared with the State they were taken from: copy
    before handing a Delta to code that may mutate it.
    """

    context: str
    version: int
    """The version this delta produces."""
    updated_at: datetime
    changed: dict[str, Any] = attrs.field(factory=dict)
    removed: tuple[str, ...] = ()
    metadata_changed: dict[str, str] = attrs.field(factory=dict)
    metadata_removed: tuple[str, ...] = ()

    @classmethod
    def between(cls, old: State, new: State) -> Delta:
        """The delta that turns `old` into `new` (`new.version` must follow `old.version`)."""
        old_data, new_data = old.data, new.data
        # One pass, `is` before the strict comparison (a copied State shares its scalars),
        # and C-level checks for the usual "nothing removed, metadata unchanged": this runs
        # on every modify() and update_state().
        changed = {}
        for key, value in new_data.items():
            before = old_data.get(key, _MISSING)
            if before is not value and (before is _MISSING or not _same(before, value)):
                changed[key] = value
        removed: tuple[str, ...] = ()
        if not old_data.keys() <= new_data.keys():
            removed = tuple(key for key in old_data if key not in new_data)
        old_meta, new_meta = old.metadata, new.metadata
        metadata_changed: dict[str, str] = {}
        metadata_removed: tuple[str, ...] = ()
        if old_meta != new_meta:
            metadata_changed = {
                key: value for key, value in new_meta.items() if old_meta.get(key) != value
            }
            metadata_removed = tuple(key for key in old_meta if key not in new_meta)
        return cls(
            new.context,
            new.version,
            new.updated_at,
            changed,
            removed,
            metadata_changed,
            metadata_removed,
        )

    def apply(self, state: State) -> None:
        """Advance `state` (of version `self.version - 1`) to this delta's version, in place.

        Raises:
            StateError: `state` is not the version this delta follows, or of another context.
        """
        if state.context != self.context:
            raise StateError(
                f"delta of context {self.context!r} cannot apply to context {state.context!r}"
            )
        apply_changes(
            state,
            self.version,
            self.updated_at,
            self.changed,
            self.removed,
            self.metadata_changed,
            self.metadata_removed,
        )


def apply_changes(  # noqa: PLR0917 - the fields of a delta, on its hot replay path
    state: State,
    version: int,
    updated_at: datetime,
    changed: dict[str, Any],
    removed: Iterable[str],
    metadata_changed: dict[str, str],
    metadata_removed: Iterable[str],
) -> None:
    """Apply one delta's changes to `state` in place (see `Delta.apply`)."""
    if state.version != version - 1:
        raise StateError(
            f"delta to version {version} of context {state.context!r} cannot apply to "
            f"version {state.version}"
        )
    data = state.data
    data.update(changed)
    for key in removed:
        data.pop(key, None)
    state.metadata.update(metadata_changed)
    for key in metadata_removed:
        state.metadata.pop(key, None)
    state.version = version
    state.updated_at = updated_at


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON values, strict about types: `1 == 1.0 == True` in Python, but they
    are different JSON values and a delta must not lose the change between them."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return a.keys() == b.keys() and all(_same(value, b[key]) for key, value in a.items())
    if kind is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
