"""The State record: versioned JSON-compatible key-value data with metadata and timestamps."""

from __future__ import annotations

import math
from collections.abc import ItemsView, KeysView, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from storage._exceptions import InvalidValueError, KeyNotFoundError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "State",
    "check_item",
    "check_json_value",
    "check_key",
    "check_metadata_item",
    "copy_json_value",
    "utc_now",
    "validate_contents",
]

INT_MIN = -(2**63)
"""Smallest int a State accepts: JSON peers (and our codec) agree on signed 64-bit."""

INT_MAX = 2**63 - 1
"""Largest int a State accepts."""

MAX_DEPTH = 128
"""Most lists and dicts a value may nest. orjson refuses to write more than 255 levels
and a State's value sits a few levels inside what is written; 128 leaves room for both and
keeps every check and copy far from Python's own recursion limit."""

_MISSING: Any = object()


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def check_json_value(value: Any, path: str) -> None:
    """Raise `InvalidValueError` unless `value` is strictly JSON-compatible.

    Allowed: None, bool, int in signed 64-bit range, finite float, str, list, and dict with
    str keys, nested at most `MAX_DEPTH` lists and dicts deep. Tuples, sets, NaN, strs
    holding a lone surrogate and subclasses of these types are refused because they would
    not come back from storage as the same value.
    """
    _check(value, path, MAX_DEPTH)


def _check_str(text: str, path: str) -> None:
    """Refuse a str with a lone surrogate: it has no UTF-8 form, so orjson cannot store it."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(path, text, "str holds a lone surrogate") from None


def _check(value: Any, path: str, depth: int) -> None:
    """`check_json_value()` of `value`, which may hold `depth` more levels of lists and dicts."""
    kind = type(value)
    if value is None or kind is bool:
        return
    if kind is str:
        _check_str(value, path)
        return
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidValueError(path, value, f"int {value} is outside signed 64-bit range")
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidValueError(path, value, f"float {value} is not finite")
        return
    if kind is list or kind is dict:
        if depth == 0:
            reason = f"lists and dicts nested more than {MAX_DEPTH} deep"
            raise InvalidValueError(path, value, reason)
        if kind is list:
            for index, item in enumerate(value):
                _check(item, f"{path}[{index}]", depth - 1)
            return
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidValueError(f"{path}[{key!r}]", key, f"dict key {key!r} is not a str")
            _check_str(key, f"{path}[{key!r}]")
            _check(item, f"{path}[{key!r}]", depth - 1)
        return
    raise InvalidValueError(path, value, "not a JSON-compatible type")


def copy_json_value(value: Any) -> Any:
    """Deep-copy a JSON-compatible value (far cheaper than `copy.deepcopy`)."""
    kind = type(value)
    if kind is dict:
        return copy_json_dict(value)
    if kind is list:
        if _CONTAINERS.isdisjoint(map(type, value)):
            return value.copy()
        return [copy_json_value(item) for item in value]
    return value


def copy_json_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-copy a dict of JSON-compatible values. Every State copy goes through this: the
    usual dict of scalars is copied in C (about 5x faster than a comprehension calling
    `copy_json_value` per value), and only nested containers are copied one by one."""
    copied = dict(data)
    if not _CONTAINERS.isdisjoint(map(type, data.values())):
        for key, item in copied.items():  # replaces values only: the keys do not change
            if type(item) in _CONTAINERS:
                copied[key] = copy_json_value(item)
    return copied


_CONTAINERS = frozenset({dict, list})
"""The mutable JSON types, which a copy must not share (scalars are immutable)."""


def _check_key(key: Any, where: str) -> None:
    if type(key) is not str:
        raise InvalidValueError(f"{where} key {key!r}", key, "keys must be str")
    _check_str(key, f"{where} key {key!r}")


def check_key(key: Any) -> None:
    """Raise `InvalidValueError` unless `key` may name a value in `State.data`."""
    _check_key(key, "data")


def check_item(key: Any, value: Any) -> None:
    """Raise `InvalidValueError` unless `key` and `value` may be stored in `State.data`."""
    _check_key(key, "data")
    check_json_value(value, f"data[{key!r}]")


def check_metadata_item(key: Any, value: Any) -> None:
    """Raise `InvalidValueError` unless `key` and `value` may be stored in `State.metadata`."""
    _check_key(key, "metadata")
    _check_metadata_value(key, value)


def _check_metadata_value(key: str, value: Any) -> None:
    if type(value) is not str:
        raise InvalidValueError(f"metadata[{key!r}]", value, "metadata values must be str")
    _check_str(value, f"metadata[{key!r}]")


@attrs.define(eq=True)
class State:
    """A versioned key-value record of one context.

    `version` is 0 for a new context and grows by one for every accepted update; the
    runtime, not the caller, advances it. `data` maps str keys to JSON-compatible values,
    `metadata` maps str to str. Mutating methods validate their input and leave the State
    unchanged when they raise.
    """

    context: str
    version: int = 0
    created_at: datetime = attrs.field(factory=utc_now)
    updated_at: datetime = attrs.field(factory=utc_now)
    data: dict[str, Any] = attrs.field(factory=dict)
    metadata: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def new(
        cls,
        context: str,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> State:
        """A version-0 State for a new context, validating and copying `data` and `metadata`."""
        state = cls(context=context)
        state.replace_contents(data or {}, metadata or {})
        state.updated_at = state.created_at
        return state

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default`."""
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store a deep copy of a JSON-compatible `value` under `key` (so changing `value`
        afterwards cannot slip unchecked data into the State).

        Raises:
            InvalidValueError: `key` is not a str or `value` is not JSON-compatible.
        """
        check_item(key, value)
        self.data[key] = copy_json_value(value)

    def delete(self, key: str) -> None:
        """Remove `key`.

        Raises:
            KeyNotFoundError: `key` is not there (a `KeyError` too).
        """
        if key not in self.data:
            raise KeyNotFoundError(self.context, key)
        del self.data[key]

    def set_metadata(self, key: str, value: str) -> None:
        """Store a str metadata entry.

        Raises:
            InvalidValueError: `key` or `value` is not a str.
        """
        check_metadata_item(key, value)
        self.metadata[key] = value

    def replace_contents(self, data: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
        """Validate `data` and `metadata` as a whole, then install deep copies of them.

        Raises:
            InvalidValueError: anything in either mapping is not allowed; nothing changes.
        """
        validate_contents(data, metadata)
        self.data = copy_json_dict(data)
        self.metadata = dict(metadata)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def keys(self) -> KeysView[str]:
        """A view of the data keys."""
        return self.data.keys()

    def items(self) -> ItemsView[str, Any]:
        """A view of the data items."""
        return self.data.items()

    def successor(self, source: State) -> State:
        """The next version of this State, holding `source`'s data and metadata as they are
        (not copied: pass a private copy) and the current time as `updated_at`."""
        return State(
            context=self.context,
            version=self.version + 1,
            created_at=self.created_at,
            updated_at=utc_now(),
            data=source.data,
            metadata=source.metadata,
        )

    def snapshot(self) -> State:
        """An independent deep copy: mutating either never changes the other."""
        return State(
            context=self.context,
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
            data=copy_json_dict(self.data),
            metadata=dict(self.metadata),
        )


def validate_contents(data: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
    """Raise `InvalidValueError` unless `data` and `metadata` are both acceptable."""
    if not isinstance(data, Mapping):
        raise InvalidValueError("data", data, "data must be a mapping")
    if not isinstance(metadata, Mapping):
        raise InvalidValueError("metadata", metadata, "metadata must be a mapping")
    for key, value in data.items():
        check_item(key, value)
    for key, value in metadata.items():
        check_metadata_item(key, value)
