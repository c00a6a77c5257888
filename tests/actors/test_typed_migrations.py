"""Schema evolution of typed contexts: migration chains run on load in order, reads never
write, the next typed write stores the migrated data, a newer stored schema is refused."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from actors import (
    ConfigurationError,
    ContextSchema,
    MigrationError,
    ModelMismatchError,
    SchemaVersionError,
    Versioned,
    context_schema,
)
from actors._migrations import SCHEMA_KEY

from .conftest import WAIT

# -- three chains: rename a field, add a field with a default, split one field in two ----------


def rename_items(data: dict[str, Any]) -> None:
    data["lines"] = data.pop("items")


@attrs.define
class RenamedV2:
    owner: str
    lines: list[str]


RENAMED = ContextSchema(RenamedV2, version=2, migrations={1: rename_items})


def add_currency(data: dict[str, Any]) -> dict[str, Any]:
    # A field with a default needs no step to read (cattrs fills the default in); this one
    # derives it from the data instead, and returns a new dict rather than changing it.
    return {**data, "currency": "NOK" if data["owner"].endswith(".no") else "EUR"}


@attrs.define
class CurrencyV2:
    owner: str
    currency: str = "EUR"


ADDED = ContextSchema(CurrencyV2, version=2, migrations={1: add_currency})


@attrs.define
class DefaultedV2:
    owner: str
    note: str = ""


DEFAULTED = ContextSchema(DefaultedV2, version=2, migrations={1: lambda data: None})


def split_name(data: dict[str, Any]) -> None:
    first, _, last = data.pop("name").partition(" ")
    data["first"], data["last"] = first, last


@attrs.define
class SplitV2:
    first: str
    last: str


SPLIT = ContextSchema(SplitV2, version=2, migrations={1: split_name})


@pytest.mark.parametrize(
    ("schema", "v1", "expected"),
    [
        (RENAMED, {"owner": "ann", "items": ["a"]}, RenamedV2("ann", ["a"])),
        (ADDED, {"owner": "ann@x.no"}, CurrencyV2("ann@x.no", "NOK")),
        (ADDED, {"owner": "bob"}, CurrencyV2("bob", "EUR")),
        (DEFAULTED, {"owner": "ann"}, DefaultedV2("ann", "")),
        (SPLIT, {"name": "Ada Lovelace"}, SplitV2("Ada", "Lovelace")),
    ],
    ids=["rename", "add-derived", "add-other", "add-default", "split"],
)
def test_a_step_migrates_version_1_data_on_read(manager, wait, schema, v1, expected):
    manager.create_context("c", v1, {"team": "blue"}).get(WAIT)  # untyped: schema 1
    typed = manager.typed(schema).get_tracker("c").get(WAIT)
    assert wait(typed.get_state()) == expected
    assert wait(manager.typed(schema).load("c")) == expected


@pytest.mark.parametrize("schema", [RENAMED, ADDED, SPLIT], ids=["rename", "add", "split"])
def test_reads_never_write_and_the_next_typed_write_stores_the_migration(manager, wait, schema):
    v1 = {"owner": "ann", "items": ["a"]} if schema is RENAMED else {"owner": "ann"}
    if schema is SPLIT:
        v1 = {"name": "Ada Lovelace"}
    manager.create_context("c", v1, {"team": "blue"}).get(WAIT)
    typed = manager.typed(schema).get_tracker("c").get(WAIT)
    model = wait(typed.get_state())
    wait(typed.get_versioned())
    stored = wait(typed.tracker.get_state())
    assert (stored.version, stored.data, stored.metadata) == (0, v1, {"team": "blue"})

    assert wait(typed.modify(lambda m: None)) == Versioned(model, 1)
    stored = wait(typed.tracker.get_state())
    assert stored.data == schema.converter.unstructure(model)
    assert stored.metadata == {"team": "blue", SCHEMA_KEY: "2"}
    assert wait(typed.get_state()) == model  # now read without a step


# -- a chain of steps, in order ---------------------------------------------------------------


def v1_to_v2(data: dict[str, Any]) -> None:  # rename
    data["customer"] = data.pop("owner")
    data.setdefault("trail", []).append(2)


def v2_to_v3(data: dict[str, Any]) -> None:  # split
    first, _, last = data.pop("customer").partition(" ")
    data["customer"] = {"first": first, "last": last}
    data["trail"].append(3)


def v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:  # add a field, derived
    data["trail"].append(4)
    return {**data, "vip": data["customer"]["last"] == "Lovelace"}


@attrs.frozen
class Name:
    first: str
    last: str


@context_schema(version=4, migrations={1: v1_to_v2, 2: v2_to_v3, 3: v3_to_v4})
@attrs.define
class Customer:
    customer: Name
    trail: list[int] = attrs.Factory(list)
    vip: bool = False


@pytest.mark.parametrize(
    ("stored_schema", "data", "trail"),
    [
        (None, {"owner": "Ada Lovelace"}, [2, 3, 4]),
        ("1", {"owner": "Ada Lovelace"}, [2, 3, 4]),
        ("2", {"customer": "Ada Lovelace", "trail": [2]}, [2, 3, 4]),
        ("3", {"customer": {"first": "Ada", "last": "Lovelace"}, "trail": []}, [4]),
        ("4", {"customer": {"first": "Ada", "last": "Lovelace"}, "vip": True}, []),
    ],
)
def test_a_chain_runs_the_steps_from_the_stored_version_in_order(
    manager, wait, stored_schema, data, trail
):
    metadata = {} if stored_schema is None else {SCHEMA_KEY: stored_schema}
    manager.create_context("c", data, metadata).get(WAIT)
    typed = manager.get_tracker("c").get(WAIT).typed(Customer)  # the decorated schema
    assert wait(typed.get_state()) == Customer(Name("Ada", "Lovelace"), trail, vip=True)


def test_an_old_version_loaded_by_version_is_migrated(manager, wait):
    manager.create_context("c", {"owner": "Ada Lovelace"}).get(WAIT)
    typed = manager.typed(Customer).get_tracker("c").get(WAIT)
    wait(typed.modify(lambda c: attrs.evolve(c, vip=False)))
    typed.tracker.save().get(WAIT)
    old = wait(manager.typed(Customer).load("c", version=0))
    assert old == Customer(Name("Ada", "Lovelace"), [2, 3, 4], vip=True)
    assert wait(manager.typed(Customer).load("c", version=1)).vip is False


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", ["5", "0", "two", "", "٣"])
def test_a_newer_or_unknown_stored_schema_is_refused_and_nothing_changes(manager, wait, stored):
    data = {"customer": {"first": "A", "last": "B"}, "shiny": 1}
    manager.create_context("c", data, {SCHEMA_KEY: stored}).get(WAIT)
    typed = manager.typed(Customer).get_tracker("c").get(WAIT)
    current = Customer(Name("A", "B"))
    for future in (
        typed.get_state(),
        typed.get_versioned(),
        typed.modify(lambda c: None),
        typed.update(current, version=0),
        manager.typed(Customer).load("c"),
    ):
        with pytest.raises(SchemaVersionError) as caught:
            wait(future)
        error = caught.value
        assert (error.context, error.version, error.stored, error.known) == ("c", 0, stored, 4)
        assert f"has schema version {stored!r}" in str(error)
        assert isinstance(error, ModelMismatchError)
    state = wait(typed.tracker.get_state())
    assert (state.version, state.data) == (0, data)


def test_a_step_that_raises_is_a_migration_error_and_nothing_changes(manager, wait):
    manager.create_context("c", {"name": "nobody"}).get(WAIT)  # no "owner": v1_to_v2 fails
    typed = manager.typed(Customer).get_tracker("c").get(WAIT)
    for future in (typed.get_state(), typed.modify(lambda c: None)):
        with pytest.raises(MigrationError, match="from schema version 1 to 2") as caught:
            wait(future)
        assert caught.value.step == 1
        assert isinstance(caught.value.__cause__, KeyError)
    assert wait(typed.tracker.get_state()).version == 0


def test_a_step_that_returns_something_else_is_a_migration_error(manager, wait):
    schema = ContextSchema(SplitV2, version=2, migrations={1: lambda data: [data]})
    manager.create_context("c", {"first": "a", "last": "b"}).get(WAIT)
    typed = manager.typed(schema).get_tracker("c").get(WAIT)
    with pytest.raises(MigrationError, match="returned list, not a dict"):
        wait(typed.get_state())


def test_migrated_data_that_does_not_fit_names_the_field(manager, wait):
    manager.create_context("c", {"owner": "ann", "items": "ab"}).get(WAIT)
    typed = manager.typed(RENAMED).get_tracker("c").get(WAIT)
    with pytest.raises(ModelMismatchError, match=r"context 'c' version 0 does not fit") as caught:
        wait(typed.get_state())
    assert caught.value.errors == ("invalid value for type, expected list @ $.lines",)


@pytest.mark.parametrize(
    ("version", "migrations", "match"),
    [
        (0, {}, "must be an int >= 1"),
        ("2", {}, "must be an int >= 1"),
        (3, {1: rename_items}, r"missing \[2\]"),
        (2, {1: rename_items, 2: rename_items}, r"unexpected \[2\]"),
        (2, {0: rename_items}, r"missing \[1\], unexpected \[0\]"),
        (2, {1: "rename"}, "is not callable"),
    ],
)
def test_a_schema_whose_steps_do_not_lead_to_its_version_is_refused(version, migrations, match):
    with pytest.raises(ConfigurationError, match=match):
        ContextSchema(RenamedV2, version=version, migrations=migrations)


def test_a_schema_recorded_for_another_class_is_refused(manager):
    @context_schema(version=1)
    @attrs.define
    class Base:
        x: int

    @attrs.define
    class Derived(Base):
        y: int = 0

    with pytest.raises(ConfigurationError, match="decorate a subclass on its own"):
        manager.typed(Derived)
    assert manager.typed(Base).schema.model is Base
