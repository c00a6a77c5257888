"""Delta: the change from one version of a context to the next, as journaled.

A data key that changed is in `Delta.changed` with its whole new value. Where the new value
is the old one with a small change (items appended to a long list, one field changed deep
inside nested dicts), `Delta.edits` also says how, as path operations, and the journal stores
those instead of the whole value: an entry is the size of the change, not of the value.

An edit is a tuple (or, read back from a journal, a list) whose first item is its kind:

    ("s", path, value)    set: the dict key or list item at `path` becomes `value`
    ("d", path)           delete: remove the dict key at `path`
    ("a", path, items)    append: extend the list at `path` with `items`
    ("t", path, length)   truncate: cut the list at `path` to its first `length` items

`path` leads from the key's value down: str segments index dicts, int segments lists; it is
empty only for "a" and "t" on the key's value itself. `diff_value` chooses the edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import is_
from typing import Any

import attrs

from storage._exceptions import CorruptSnapshotError, InvalidValueError, StateError
from storage._state import MAX_DEPTH, State, _check

__all__ = [
    "APPEND",
    "DELETE",
    "SET",
    "TRUNCATE",
    "Delta",
    "apply_changes",
    "apply_edits",
    "diff_value",
    "edits_problem",
]

_MISSING: Any = object()

SET = "s"
DELETE = "d"
APPEND = "a"
TRUNCATE = "t"

Edit = tuple[Any, ...]
"""One path operation: see the module docstring."""


@attrs.frozen
class Delta:
    """What one accepted update changed: the keys set and removed, in data and metadata.

    Applying the deltas of versions `v + 1 .. w` to the State of version `v`, in order, gives
    the State of version `w`. Values are shared with the State they were taken from: copy
    before handing a Delta to code that may mutate it.

    A key in `edits` is changed by applying its edits to its previous value. A Delta made by
    `between` also holds that key's new value in `changed`; one read from a journal does
    not, until `apply` has computed it there (so after `apply`, `changed` holds the new value
    of every key set, as subscribers need).
    """

    context: str
    version: int
    """The version this delta produces."""
    updated_at: datetime
    changed: dict[str, Any] = attrs.field(factory=dict)
    removed: tuple[str, ...] = ()
    metadata_changed: dict[str, str] = attrs.field(factory=dict)
    metadata_removed: tuple[str, ...] = ()
    edits: dict[str, Sequence[Edit]] = attrs.field(factory=dict)
    """For some keys set, the edits that turn the old value into the new one."""
    cause: str | None = None
    """What made this version ("update", "restore", ...: the runtime's `ChangeCause` value),
    as journaled; None if not recorded (entries before journal format 3)."""

    @classmethod
    def between(cls, old: State, new: State, cause: str | None = None) -> Delta:
        """The delta that turns `old` into `new` (`new.version` must follow `old.version`),
        with edits for the changed values `diff_value` finds a small change in."""
        old_data, new_data = old.data, new.data
        # One pass, `is` before the strict comparison (a copied State shares its scalars),
        # and C-level checks for the usual "nothing removed, metadata unchanged": this runs
        # on every modify() and update_state().
        changed = {}
        edits: dict[str, Sequence[Edit]] = {}
        for key, value in new_data.items():
            before = old_data.get(key, _MISSING)
            if before is not value and (before is _MISSING or not _same(before, value)):
                changed[key] = value
                if before is not _MISSING:
                    found = diff_value(before, value)
                    if found is not None:
                        edits[key] = found
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
            edits,
            cause,
        )

    @property
    def keys_set(self) -> tuple[str, ...]:
        """Every data key this delta sets (whole or by edits)."""
        if not self.edits:
            return tuple(self.changed)
        return (*self.changed, *(key for key in self.edits if key not in self.changed))

    def apply(self, state: State) -> None:
        """Advance `state` (of version `self.version - 1`) to this delta's version, in place.

        Raises:
            StateError: `state` is not the version this delta follows, or of another context.
            CorruptSnapshotError: an edit does not fit `state` (nothing was changed).
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
            self.edits,
        )
        changed = self.changed
        for key in self.edits:
            if key not in changed:
                changed[key] = state.data[key]


def apply_changes(  # noqa: PLR0917 - the fields of a delta, on its hot replay path
    state: State,
    version: int,
    updated_at: datetime,
    changed: dict[str, Any],
    removed: Iterable[str],
    metadata_changed: dict[str, str],
    metadata_removed: Iterable[str],
    edits: Mapping[str, Sequence[Edit]] | None = None,
) -> None:
    """Apply one delta's changes to `state` in place (see `Delta.apply`).

    The edits of a key also in `changed` are not applied: its new value is there.

    Raises:
        StateError: `state` is not the version before `version`.
        CorruptSnapshotError: an edit does not fit `state`; nothing was changed.
    """
    if state.version != version - 1:
        raise StateError(
            f"delta to version {version} of context {state.context!r} cannot apply to "
            f"version {state.version}"
        )
    data = state.data
    if edits:
        # First, as they are the only part that can fail, and are undone if they do.
        try:
            apply_edits(data, edits, changed)
        except ValueError as exc:
            raise CorruptSnapshotError(
                f"journal entry of context {state.context!r} version {version}: {exc}"
            ) from None
    data.update(changed)
    for key in removed:
        data.pop(key, None)
    state.metadata.update(metadata_changed)
    for key in metadata_removed:
        state.metadata.pop(key, None)
    state.version = version
    state.updated_at = updated_at


# -- edits ------------------------------------------------------------------------------------


def apply_edits(
    data: dict[str, Any],
    edits: Mapping[str, Sequence[Edit]],
    skip: Mapping[str, Any] | None = None,
) -> None:
    """Apply each key's edits to its value in `data`, in place, except the keys in `skip`.

    Raises:
        ValueError: an edit does not fit (a path that leads nowhere, a list too short);
            every edit applied before it is undone, so `data` is as it was.
    """
    undo: list[Callable[[], None]] = []
    try:
        for key, ops in edits.items():
            if skip is not None and key in skip:
                continue
            value = data.get(key, _MISSING)
            if value is _MISSING:
                _absent(key)
            for op in ops:
                try:
                    _apply_edit(value, op, undo, key)
                except (IndexError, KeyError, TypeError, AttributeError) as exc:
                    msg = f"edit {op!r} of key {key!r} does not apply: {exc!r}"
                    raise ValueError(msg) from None
    except BaseException:
        for step in reversed(undo):
            step()
        raise


def _absent(key: str) -> None:
    msg = f"edits of key {key!r}, which is not there"
    raise ValueError(msg)


def _walk(value: Any, path: Sequence[Any], key: str) -> Any:
    """The container at `path` inside `value`, or raise `ValueError`."""
    for segment in path:
        value = value[_index(value, segment, key, path)]
    return value


def _index(container: Any, segment: Any, key: str, path: Sequence[Any]) -> Any:
    """`segment` if it names an existing entry of `container`, or raise `ValueError`."""
    kind = type(container)
    if (kind is dict and type(segment) is str and segment in container) or (
        kind is list and type(segment) is int and 0 <= segment < len(container)
    ):
        return segment
    msg = f"edit path {list(path)!r} of key {key!r} leads nowhere at {segment!r}"
    raise ValueError(msg)


def _apply_edit(value: Any, op: Sequence[Any], undo: list[Callable[[], None]], key: str) -> None:
    kind, path = op[0], op[1]
    if kind in {APPEND, TRUNCATE}:
        target = _walk(value, path, key)
        if type(target) is not list:
            msg = f"edit {kind!r} at {list(path)!r} of key {key!r} needs a list"
            raise ValueError(msg)
        length = len(target)
        if kind == APPEND:
            target.extend(op[2])
            undo.append(lambda: target.__delitem__(slice(length, None)))
            return
        keep = op[2]
        if keep > length:
            msg = f"edit 't' of key {key!r} keeps {keep} items of a list of {length}"
            raise ValueError(msg)
        cut = target[keep:]
        del target[keep:]
        undo.append(lambda: target.extend(cut))
        return
    if not path:
        msg = f"edit {kind!r} of key {key!r} has an empty path"
        raise ValueError(msg)
    parent = _walk(value, path[:-1], key)
    last = path[-1]
    if kind == SET:
        if type(parent) is dict and type(last) is str:
            old = parent.get(last, _MISSING)
        else:
            last = _index(parent, last, key, path)
            old = parent[last]
        parent[last] = op[2]
        if old is _MISSING:
            undo.append(lambda: parent.pop(last))
        else:
            undo.append(lambda: parent.__setitem__(last, old))
        return
    # DELETE: only dict keys are deleted (a list shrinks by truncation)
    if type(parent) is not dict:
        msg = f"edit 'd' at {list(path)!r} of key {key!r} needs a dict"
        raise ValueError(msg)
    last = _index(parent, last, key, path)
    old = parent.pop(last)
    undo.append(lambda: parent.__setitem__(last, old))


# -- the diff ---------------------------------------------------------------------------------


def diff_value(old: Any, new: Any) -> list[Edit] | None:
    """The edits that turn `old` into `new`, or None where setting `new` whole is simpler.

    Only dicts and lists are diffed, each against one of its own type. A list is compared
    item by item at the same index: items appended or cut at the end are one edit, as are a
    few items changed in place; an insertion or removal before the end shifts every later
    item, so the list is set whole. A container is set whole once more than half of its
    entries changed. Linear in the sizes, `is` before `==`: no quadratic work on long lists.
    """
    kind = type(old)
    if kind is not type(new) or (kind is not dict and kind is not list):
        return None
    ops: list[Edit] = []
    if not _diff(old, new, (), ops) or not ops:
        return None
    return ops


def _diff(old: Any, new: Any, path: tuple[Any, ...], ops: list[Edit]) -> bool:
    """Add to `ops` the edits that turn `old` into `new` (both dicts, or both lists);
    False (and `ops` unchanged) if `new` should rather be set whole."""
    local = _diff_dict(old, new, path) if type(new) is dict else _diff_list(old, new, path)
    if local is None:
        return False
    ops.extend(local)
    return True


def _diff_dict(
    old: dict[str, Any], new: dict[str, Any], path: tuple[Any, ...]
) -> list[Edit] | None:
    """The edits of `_diff` for two dicts, or None."""
    local: list[Edit] = []
    limit = max(len(old), len(new))
    changes = 0
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is value:
            continue
        if before is _MISSING:
            local.append((SET, (*path, key), value))
        elif not _diff_item(before, value, (*path, key), local):
            continue
        changes += 1
        if changes > 1 and 2 * changes > limit:
            return None
    if not old.keys() <= new.keys():
        for key in old:
            if key not in new:
                local.append((DELETE, (*path, key)))
                changes += 1
        if changes > 1 and 2 * changes > limit:
            return None
    return local


def _diff_list(old: list[Any], new: list[Any], path: tuple[Any, ...]) -> list[Edit] | None:
    """The edits of `_diff` for two lists, or None."""
    local: list[Edit] = []
    old_length, new_length = len(old), len(new)
    limit = max(old_length, new_length)
    changes = 0
    # The usual case first, at C speed: every item in common is the very same object (a
    # copied list shares its scalars), as when items were only appended or cut.
    common = 0 if all(map(is_, old, new)) else min(old_length, new_length)
    for index in range(common):
        before, value = old[index], new[index]
        if before is value or not _diff_item(before, value, (*path, index), local):
            continue
        changes += 1
        if changes > 1 and 2 * changes > limit:
            return None
    if new_length > old_length:
        local.append((APPEND, path, new[old_length:]))
    elif new_length < old_length:
        local.append((TRUNCATE, path, new_length))
    return local


def _diff_item(before: Any, value: Any, path: tuple[Any, ...], ops: list[Edit]) -> bool:
    """Add the edits of one entry that may have changed; False if it had not."""
    if _same(before, value):
        return False
    kind = type(value)
    if kind is type(before) and (kind is dict or kind is list):
        mark = len(ops)
        if _diff(before, value, path, ops):
            return len(ops) > mark
    ops.append((SET, path, value))
    return True


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


# -- checking edits read back -----------------------------------------------------------------

_ARITY = {SET: 3, DELETE: 2, APPEND: 3, TRUNCATE: 3}


def edits_problem(edits: Any) -> str | None:
    """What is wrong with the shape of a journal entry's edits (as parsed from JSON), if
    anything: the kinds, paths and arguments, and `MAX_DEPTH` for the values they put where
    their paths lead. Whether they fit the State they apply to is `apply_edits`' part."""
    if type(edits) is not dict:
        return "edits are not an object"
    for key, ops in edits.items():
        if type(ops) is not list or not ops:
            return f"edits of key {key!r} are not a non-empty list"
        for op in ops:
            problem = _edit_problem(op)
            if problem is not None:
                return f"edit {op!r} of key {key!r}: {problem}"
    return None


def _edit_problem(op: Any) -> str | None:  # noqa: PLR0911 - one reason per check
    if type(op) is not list or not op or _ARITY.get(op[0]) != len(op):
        return "not an edit"
    kind, path = op[0], op[1]
    if type(path) is not list or len(path) > MAX_DEPTH:
        return "its path is not a list of at most MAX_DEPTH segments"
    for segment in path:
        if type(segment) is not str and not (type(segment) is int and segment >= 0):
            return "a path segment is neither a str nor an int >= 0"
    if kind in {SET, DELETE} and not path:
        return "its path is empty"
    if kind == TRUNCATE:
        if type(op[2]) is not int or op[2] < 0:
            return "its length is not an int >= 0"
        return None
    if kind == APPEND and type(op[2]) is not list:
        return "its items are not a list"
    if kind != DELETE:
        # What it puts at `path` may nest MAX_DEPTH less the containers above it.
        try:
            _check(op[2], "edit", MAX_DEPTH - len(path))
        except InvalidValueError as exc:
            return exc.reason
    return None
