"""Model <-> State data through cattrs: the shared converter, and both directions checked.

A model unstructures to a dict whose top-level keys are the State's keys (one key a field,
so the journal stays per field and the untyped API still reads them). Both directions are
strict: a value a State cannot hold as JSON is refused with its field path before anything
is sent, and stored data is structured with cattrs' detailed validation, so a wrong type
is an error naming the field instead of a coerced value (cattrs' own hooks would turn the
int 5 into the str "5" and 5.7 into the int 5).
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence, MutableSet, Sequence, Set
from enum import Enum, IntEnum, StrEnum
from typing import Any, TypeVar, get_args, get_origin

import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.preconf.json import make_converter

from actors._typed_errors import ModelMismatchError, ModelValueError
from storage import InvalidValueError
from storage._state import check_json_value, copy_json_dict

__all__ = ["from_data", "make_model_converter", "model_converter", "to_data"]

M = TypeVar("M")


def _strict_int(value: Any, _: type) -> int:
    if type(value) is int:  # not bool, not a float that happens to be whole
        return value
    raise ValueError(value)


def _strict_float(value: Any, _: type) -> float:
    if type(value) is float:
        return value
    if type(value) is int:  # JSON has one number type: 1.0 written untyped may read as 1
        return float(value)
    raise ValueError(value)


def _strict_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise ValueError(value)


def _strict_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    raise ValueError(value)


def _enum_value(member: Enum) -> Any:
    # The plain value: an IntEnum or StrEnum member is an int or str subclass, which a State
    # refuses (it would not come back from storage as the same type).
    return member.value


def _structure_enum(value: Any, kind: type[Enum]) -> Enum:
    # Strict as the primitives: True is not the member whose value is 1.
    if type(value) is bool and not any(type(m.value) is bool for m in kind):
        raise ValueError(value)
    return kind(value)


_COLLECTIONS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    Sequence: list,
    MutableSequence: list,
    tuple: tuple,
    set: set,
    MutableSet: set,
    frozenset: frozenset,
    Set: frozenset,
}


def _is_collection(kind: Any) -> bool:
    """A list, set or homogeneous tuple type (`tuple[int, str]` is left to cattrs)."""
    origin = get_origin(kind) or kind
    if origin is tuple:
        args = get_args(kind)
        return not args or (len(args) == 2 and args[1] is Ellipsis)
    return origin in _COLLECTIONS


def _collection_hook(kind: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Structure a collection only from a list: cattrs' own takes any iterable, so a str
    stored where a list belongs would come back as a list of its characters."""
    build = _COLLECTIONS[get_origin(kind) or kind]
    args = get_args(kind)
    item_type = args[0] if args else Any
    item_hook = converter.get_structure_hook(item_type)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not list:
            raise ValueError(value)
        items, errors = [], []
        for index, item in enumerate(value):
            try:
                items.append(item_hook(item, item_type))
            except Exception as exc:  # noqa: BLE001 - each is reported with its index, as cattrs does
                note = IterableValidationNote(
                    f"Structuring {kind} @ index {index}", index, item_type
                )
                exc.add_note(note)
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
        return build(items)

    return structure


def make_model_converter() -> cattrs.Converter:
    """A new converter configured the way typed contexts need: cattrs' JSON preset
    (datetimes and dates as ISO 8601 strings, enums by value, sets and tuples as lists,
    bytes as base85), detailed validation for field paths, extra keys refused, and strict
    int, float, str and bool. Register hooks for your own types on it, then pass it as
    `ContextSchema(..., converter=...)`; or extend the shared `model_converter`."""
    converter = make_converter(
        detailed_validation=True,
        forbid_extra_keys=True,
        unstruct_collection_overrides={Set: list, Sequence: list},
    )
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    # cattrs dispatches a class hook to subclasses: an IntEnum would be taken for the int it
    # subclasses. IntEnum and StrEnum come before int and str in their members' MROs.
    for kind in (Enum, IntEnum, StrEnum):
        converter.register_structure_hook(kind, _structure_enum)
        converter.register_unstructure_hook(kind, _enum_value)
    converter.register_structure_hook_factory(
        _is_collection, lambda kind: _collection_hook(kind, converter)
    )
    return converter


model_converter: cattrs.Converter = make_model_converter()
"""The converter every typed context uses unless its schema names another. Register hooks
for your own types on it (`model_converter.register_structure_hook(Money, ...)` and the
unstructure one) before the first typed call: cattrs builds a model's functions once."""


def from_data(
    converter: cattrs.Converter, model: type[M], data: dict[str, Any], context: str, version: int
) -> M:
    """Structure the data of `context` at `version` into a `model`, or raise.

    Raises:
        ModelMismatchError: the data does not fit; every problem is listed with its path.
    """
    try:
        return converter.structure(data, model)
    except Exception as exc:  # a user hook may raise anything; all mean "no fit"
        raise ModelMismatchError(context, version, model, cattrs.transform_error(exc)) from exc


def to_data(
    converter: cattrs.Converter, model: type[M], instance: object
) -> tuple[dict[str, Any], M]:
    """The State data of `instance`, unstructured, checked and copied so that it shares
    nothing with `instance` (a later change to either cannot reach the other); and the
    model that data reads back as.

    Raises:
        ModelValueError: `instance` is not a `model`, a value cannot be stored as JSON, or
            the data would not structure back into a `model` (a str in an int field, say).
    """
    name = model.__qualname__
    if not isinstance(instance, model):
        raise ModelValueError(model, name, instance, f"expected a {name} instance")
    try:
        data = converter.unstructure(instance, unstructure_as=model)
    except Exception as exc:  # a user hook may raise anything
        raise ModelValueError(model, name, instance, f"cannot be unstructured: {exc!r}") from exc
    if type(data) is not dict:
        raise ModelValueError(model, name, data, "does not unstructure to a dict")
    try:
        for key, value in data.items():
            check_json_value(value, f"{name}.{key}")
    except InvalidValueError as exc:
        raise ModelValueError(model, exc.path, exc.value, exc.reason) from None
    # What is written must read back: refuse it now rather than brick every later read.
    try:
        fresh = converter.structure(data, model)
    except Exception as exc:  # as in from_data()
        path, reason = _first_error(name, cattrs.transform_error(exc))
        raise ModelValueError(model, path, ModelValueError.UNKNOWN, reason) from exc
    return copy_json_dict(data), fresh


def _first_error(name: str, errors: list[str]) -> tuple[str, str]:
    """`("Cart.items[0].qty", "... (would not read back)")` of cattrs' first message."""
    message = errors[0] if errors else "unknown error @ $"
    reason, _, path = message.rpartition(" @ ")
    return name + path.removeprefix("$"), f"{reason or message} (it would not read back)"
