"""What each tracker request does to a State, as plain functions: no actor, no store, no
thread, so tests call them directly.

A read returns a private copy. An update returns an `Update`: the `Delta` to the next version,
and (when the request replaces the whole contents, as `update_state`, `modify` and a restore
do) the next State itself. Nothing is changed in place: the tracker applies the update
(`apply_in_place`, or installs `Update.state`) and stores it. A request that cannot apply
raises its typed error and changes nothing.

A new request type gets its function here and one line in the running phase's table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from actors._changes import ChangeCause
from actors._modify import modify_result_error
from storage import InvalidValueError, KeyNotFoundError, State, VersionConflict
from storage._delta import APPEND, DELETE, SET, TRUNCATE, Delta, apply_changes
from storage._state import (
    MAX_DEPTH,
    _check,
    _check_str,
    check_item,
    check_metadata_item,
    copy_json_value,
    utc_now,
    validate_contents,
)

__all__ = [
    "Update",
    "UserFunctionError",
    "apply_in_place",
    "delete_value",
    "get_state",
    "get_value",
    "keys",
    "modify",
    "replace",
    "set_metadata",
    "set_value",
    "update_state",
]

_MISSING: Any = object()


class UserFunctionError(Exception):
    """Wraps an exception raised by a caller's `modify` function: expected, not a fault."""

    def __init__(self, user_error: Exception) -> None:
        super().__init__(user_error)
        self.user_error = user_error


@attrs.frozen(eq=False)
class Update:
    """The next version a request makes of a State."""

    delta: Delta
    """What changes, and the version it makes."""
    state: State | None = None
    """The whole next State when the request replaces the contents; None: apply `delta` to
    the current State in place (one key changed needs no copy of the others)."""
    result: Any = None
    """What the caller gets once the update is stored: the new version, or a copy of the
    new State (taken now, before later updates change it)."""
    cause: ChangeCause = ChangeCause.UPDATE


# -- reads ------------------------------------------------------------------------------------


def get_state(state: State) -> State:
    """A private copy of `state`."""
    return state.snapshot()


def get_value(state: State, key: str, default: Any) -> Any:
    """A copy of the value under `key`, or of `default`."""
    return copy_json_value(state.data.get(key, default))


def keys(state: State) -> list[str]:
    """The keys of `state`'s data, sorted."""
    return sorted(state.data)


# -- updates of one entry -----------------------------------------------------------------------


_UPDATE = ChangeCause.UPDATE.value  # an Enum's `.value` is a property: read once


def _next(state: State, **changes: Any) -> Update:
    version = state.version + 1
    delta = Delta(state.context, version, utc_now(), **changes, cause=_UPDATE)
    return Update(delta, result=version)


def set_value(state: State, key: str, value: Any) -> Update:
    """Store `value` (a private copy, already checked) under `key`."""
    # Written out rather than through `_next`: every `set` runs it.
    version = state.version + 1
    return Update(
        Delta(state.context, version, utc_now(), {key: value}, cause=_UPDATE), result=version
    )


def delete_value(state: State, key: str) -> Update:
    """Remove `key`.

    Raises:
        KeyNotFoundError: `state` has no `key`.
    """
    if key not in state.data:
        raise KeyNotFoundError(state.context, key)
    return _next(state, removed=(key,))


def set_metadata(state: State, key: str, value: str) -> Update:
    """Store the metadata entry `key`."""
    return _next(state, metadata_changed={key: value})


# -- updates of the whole contents --------------------------------------------------------------


def replace(
    state: State, source: State, cause: ChangeCause = ChangeCause.UPDATE, *, check: bool = False
) -> Update:
    """Make `source`'s contents (a private copy, not copied again) the next version.

    With `check`, the values that differ from `state` are validated first: a value strictly
    equal to one already held is valid too, so a 1-key `modify` of a large State checks one
    key, not all of them, and of a key changed in part (`Delta.edits`) only what its edits
    put there: an item appended to a long list checks that item.

    Raises:
        InvalidValueError: with `check`, a changed value is not JSON-compatible.
    """
    candidate = state.successor(source)
    delta = Delta.between(state, candidate, cause.value)
    if check:
        edits = delta.edits
        for key, value in delta.changed.items():
            ops = edits.get(key)
            if ops is None:
                check_item(key, value)
            else:
                _check_edits(key, value, ops)
        for key, value in candidate.metadata.items():  # small, and compared with `!=`
            check_metadata_item(key, value)
    return Update(delta, candidate, candidate.snapshot(), cause)


def _check_edits(key: str, value: Any, ops: Any) -> None:
    """Check what `ops` put into `value` (the new value of `key`, which was valid before
    them): the values set and appended, and the dict keys they add. `diff_value` only
    descends through dicts and lists the old value shares, so nothing else is new.

    Raises:
        InvalidValueError: as `check_item` would for the whole value.
    """
    for op in ops:
        kind, path = op[0], op[1]
        if kind in {DELETE, TRUNCATE}:  # they add nothing
            continue
        where = f"data[{key!r}]"
        node = value
        for segment in path[:-1] if kind == SET else path:
            where += f"[{segment!r}]"
            node = node[segment]
        depth = MAX_DEPTH - len(path)
        if kind == APPEND:
            start = len(node) - len(op[2])  # `node` is the list with the items appended
            for offset, item in enumerate(op[2]):
                _check(item, f"{where}[{start + offset}]", depth - 1)
            continue
        last = path[-1]
        where += f"[{last!r}]"
        if type(node) is dict:
            if type(last) is not str:
                raise InvalidValueError(where, last, f"dict key {last!r} is not a str")
            _check_str(last, where)
        _check(op[2], where, depth)


def update_state(state: State, source: State) -> Update:
    """Install `source`'s contents if it was read at the current version.

    Raises:
        VersionConflict: `source.version` is not `state.version`.
    """
    if source.version != state.version:
        raise VersionConflict(state.context, source.version, state.version)
    return replace(state, source)


def modify(state: State, fn: Callable[[State], object]) -> Update:
    """Run `fn` on a private copy of `state` and make the result the next version.

    Raises:
        UserFunctionError: `fn` raised (its exception is `user_error`).
        InvalidArgumentError: `fn` returned something else than None or its State.
        InvalidValueError: `fn` left a value that is not JSON-compatible.
    """
    draft = state.snapshot()
    try:
        result = fn(draft)
    except Exception as exc:
        raise UserFunctionError(exc) from exc
    if result is not None and result is not draft:
        raise modify_result_error(result)
    try:
        if type(draft.data) is not dict or type(draft.metadata) is not dict:
            # `fn` replaced a mapping: check it whole, then keep a plain dict of it.
            validate_contents(draft.data, draft.metadata)
            draft.data, draft.metadata = dict(draft.data), dict(draft.metadata)
        return replace(state, draft, check=True)
    except InvalidValueError as exc:
        raise InvalidValueError(f"modify() result {exc.path}", exc.value, exc.reason) from None


# -- applying -----------------------------------------------------------------------------------


def apply_in_place(state: State, delta: Delta) -> Callable[[], None]:
    """Advance `state` by `delta` in place; return what takes it back, exactly."""
    data, metadata = state.data, state.metadata
    changed, removed = delta.changed, delta.removed
    # Most updates set keys and touch no metadata: no tuple or comprehension for the rest.
    keys = (*changed, *removed) if removed else changed
    old_data = {key: data.get(key, _MISSING) for key in keys}
    old_meta = (
        {
            key: metadata.get(key, _MISSING)
            for key in (*delta.metadata_changed, *delta.metadata_removed)
        }
        if delta.metadata_changed or delta.metadata_removed
        else {}
    )
    previous = state.version, state.updated_at
    apply_changes(
        state,
        delta.version,
        delta.updated_at,
        delta.changed,
        delta.removed,
        delta.metadata_changed,
        delta.metadata_removed,
    )

    def undo() -> None:
        for mapping, old in ((data, old_data), (metadata, old_meta)):
            for key, value in old.items():
                if value is _MISSING:
                    mapping.pop(key, None)
                else:
                    mapping[key] = value
        state.version, state.updated_at = previous

    return undo
