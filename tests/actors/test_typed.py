"""Typed contexts: models in and out, refusals at the call, stored data that does not fit,
typed and untyped handles on one context, threads and asyncio (docs/typed-contexts.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import (
    ConfigurationError,
    ContextError,
    ContextNotFoundError,
    ContextSchema,
    InvalidArgumentError,
    InvalidValueError,
    ModelMismatchError,
    ModelValueError,
    State,
    StateError,
    TypedTracker,
    VersionConflict,
    Versioned,
    make_model_converter,
)

from .conftest import WAIT, make_manager, run_threads


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Address:
    street: str
    city: str


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1
    price: float = 0.0


@attrs.define
class Every:
    """One field of every kind the issue lists."""

    name: str
    count: int
    ratio: float
    flag: bool
    color: Color
    level: Level
    when: datetime
    day: date
    address: Address
    lines: list[Line]
    by_name: dict[str, Line]
    tags: frozenset[str]
    pair: tuple[int, ...]
    nickname: str | None = None
    maybe_address: Address | None = None
    extra: dict[str, Any] = attrs.Factory(dict)
    blob: bytes = b""


def every() -> Every:
    return Every(
        name="ann",
        count=-(2**63),
        ratio=0.1,
        flag=True,
        color=Color.GREEN,
        level=Level.HIGH,
        when=datetime(2026, 11, 28, 12, 30, 1, 123456, tzinfo=UTC),
        day=date(2026, 2, 28),
        address=Address("Main St 1", "Oslo"),
        lines=[Line("a", 2, 1.5), Line("b")],
        by_name={"x": Line("x", 3)},
        tags=frozenset({"p", "q"}),
        pair=(1, 2, 3),
        nickname="é\u263a",
        maybe_address=None,
        extra={"nested": [1, {"k": None}]},
        blob=b"\x00\xff",
    )


@dataclasses.dataclass
class Counter:
    n: int = 0


@attrs.define
class Cart:
    owner: str
    items: list[Line] = attrs.Factory(list)


@attrs.frozen
class FrozenCart:
    owner: str
    total: int = 0


def typed_cart(manager, name="cart", model=Cart, initial=None):
    initial = Cart("ann") if initial is None else initial
    return manager.typed(model).get_tracker(name, create=True, initial=initial).get(WAIT)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [every(), dataclasses.replace(Line("z"), price=2.0)], ids=["attrs", "dataclass"]
)
def test_every_field_kind_round_trips_through_the_store(manager, wait, model):
    kind = type(model)
    tracker = manager.typed(kind).get_tracker("m", create=True, initial=model).get(WAIT)
    assert wait(tracker.get_state()) == model
    back = wait(manager.typed(kind).load("m"))  # as stored, not as held
    assert back == model
    # == is not enough: an IntEnum member equals its int, a tuple is not its list.
    assert [type(value) for value in vars_of(back)] == [type(value) for value in vars_of(model)]


def vars_of(model: Any) -> list[Any]:
    return (
        [getattr(model, field.name) for field in dataclasses.fields(model)]
        if (dataclasses.is_dataclass(model))
        else [getattr(model, field.name) for field in attrs.fields(type(model))]
    )


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
_INT = st.integers(-(2**63), 2**63 - 1)
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_LINE = st.builds(Line, _TEXT, _INT, _FLOAT)
_ADDRESS = st.builds(Address, _TEXT, _TEXT)
_JSON = st.recursive(
    st.none() | st.booleans() | _INT | _FLOAT | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_EVERY = st.builds(
    Every,
    name=_TEXT,
    count=_INT,
    ratio=_FLOAT,
    flag=st.booleans(),
    color=st.sampled_from(Color),
    level=st.sampled_from(Level),
    when=st.datetimes(timezones=st.sampled_from([UTC, None])),
    day=st.dates(),
    address=_ADDRESS,
    lines=st.lists(_LINE, max_size=3),
    by_name=st.dictionaries(_TEXT, _LINE, max_size=3),
    tags=st.frozensets(_TEXT, max_size=3),
    pair=st.lists(_INT, max_size=3).map(tuple),
    nickname=st.none() | _TEXT,
    maybe_address=st.none() | _ADDRESS,
    extra=st.dictionaries(_TEXT, _JSON, max_size=3),
    blob=st.binary(max_size=8),
)


@given(_EVERY)
def test_any_model_round_trips_through_json(model):
    schema = ContextSchema(Every)
    data, fresh = schema.dump(model)
    assert fresh == model
    stored = orjson.loads(orjson.dumps(data))  # what a store gives back
    back = schema.load(State("c", 7, data=stored))
    assert back == model
    assert [type(value) for value in vars_of(back)] == [type(value) for value in vars_of(model)]


def test_every_field_kind_round_trips_through_sqlite(db_path):
    with make_manager(f"sqlite:///{db_path}") as first:
        typed = first.typed(Every).get_tracker("m", create=True, initial=every()).get(WAIT)
        typed.modify(lambda m: attrs.evolve(m, nickname=None, maybe_address=m.address)).get()
    with make_manager(f"sqlite:///{db_path}") as second:
        back = second.typed(Every).get_tracker("m").get(WAIT).get_state().get(WAIT)
    assert back == attrs.evolve(every(), nickname=None, maybe_address=every().address)


def test_the_model_is_stored_one_field_a_key_and_the_untyped_api_reads_it(manager, wait):
    typed = typed_cart(manager, initial=Cart("ann", [Line("a", 2)]))
    state = wait(typed.tracker.get_state())
    assert state.data == {"owner": "ann", "items": [{"sku": "a", "qty": 2, "price": 0.0}]}
    assert state.metadata == {"schema_version": "1"}
    assert wait(typed.tracker.get("owner")) == "ann"


def test_reads_are_private_copies(manager, wait):
    typed = typed_cart(manager)
    cart = wait(typed.get_state())
    cart.items.append(Line("x"))
    assert wait(typed.get_state()) == Cart("ann")


# -- modify and update ------------------------------------------------------------------------


def test_modify_installs_what_a_mutating_function_changed(manager, wait):
    typed = typed_cart(manager)

    def add(cart: Cart) -> None:
        cart.items.append(Line("a", 2))

    result = wait(typed.modify(add))
    assert result == Versioned(Cart("ann", [Line("a", 2)]), 1)
    assert wait(typed.get_state()) == Cart("ann", [Line("a", 2)])


def test_modify_installs_what_the_function_returns(manager, wait):
    typed = typed_cart(manager, model=FrozenCart, initial=FrozenCart("ann"))
    result = wait(typed.modify(lambda cart: attrs.evolve(cart, total=cart.total + 5)))
    assert result == Versioned(FrozenCart("ann", 5), 1)
    assert wait(typed.get_versioned()) == Versioned(FrozenCart("ann", 5), 1)


def test_the_model_a_write_resolves_to_shares_nothing_with_the_state(manager, wait):
    @attrs.define
    class Loose:
        extra: dict[str, Any] = attrs.Factory(dict)

    typed = manager.typed(Loose).get_tracker("l", create=True, initial=Loose()).get(WAIT)
    result = wait(typed.modify(lambda m: Loose({"a": [1]})))
    result.model.extra["a"].append(2)
    mine = Loose({"b": [1]})
    wait(typed.update(mine, version=1))
    mine.extra["b"].append(2)
    assert wait(typed.get_state()) == Loose({"b": [1]})


def test_a_modify_function_that_raises_changes_nothing(manager, wait):
    typed = typed_cart(manager)

    def boom(cart: Cart) -> None:
        cart.owner = "changed"
        raise LookupError("mine")

    with pytest.raises(LookupError, match="mine"):
        wait(typed.modify(boom))
    assert wait(typed.get_versioned()) == Versioned(Cart("ann"), 0)


@pytest.mark.parametrize("returned", [{"owner": "x"}, FrozenCart("x"), 0])
def test_a_modify_function_returning_something_else_is_refused(manager, wait, returned):
    typed = typed_cart(manager)
    with pytest.raises(InvalidArgumentError, match="must return a Cart or None"):
        wait(typed.modify(lambda _: returned))
    assert wait(typed.get_versioned()) == Versioned(Cart("ann"), 0)


def test_a_coroutine_modify_function_is_refused_at_the_call(manager, wait):
    typed = typed_cart(manager)

    async def later(cart: Cart) -> None:
        cart.owner = "x"

    with pytest.raises(InvalidArgumentError, match="coroutine function"):
        wait(typed.modify(later))
    assert wait(typed.tracker.get_state()).version == 0


def test_update_is_version_checked(manager, wait):
    typed = typed_cart(manager)
    read = wait(typed.get_versioned())
    new = wait(typed.update(attrs.evolve(read.model, owner="bob"), version=read.version))
    assert new == Versioned(Cart("bob"), 1)
    with pytest.raises(VersionConflict, match="expected version 0, found 1"):
        wait(typed.update(Cart("eve"), version=read.version))
    assert wait(typed.get_versioned()) == Versioned(Cart("bob"), 1)


@pytest.mark.parametrize("version", ["0", None, 0.0])
def test_update_without_an_int_version_is_refused(manager, wait, version):
    typed = typed_cart(manager)
    with pytest.raises(InvalidArgumentError, match="version="):
        wait(typed.update(Cart("x"), version=version))


def test_update_with_another_model_is_refused(manager, wait):
    typed = typed_cart(manager)
    with pytest.raises(ModelValueError, match="expected a Cart instance"):
        wait(typed.update(FrozenCart("x"), version=0))  # type: ignore[arg-type]
    assert wait(typed.tracker.get_state()).version == 0


# -- what cannot be stored is refused at the call ------------------------------------------


@dataclasses.dataclass
class Priced:
    amount: Any
    lines: list[Line] = dataclasses.field(default_factory=list)
    by_key: dict[Any, int] = dataclasses.field(default_factory=dict)


@pytest.mark.parametrize(
    ("bad", "path", "reason"),
    [
        (Priced(Decimal("1.5")), "Priced.amount", "not a JSON-compatible type (got Decimal)"),
        (Priced(2**64), "Priced.amount", "outside signed 64-bit range"),
        (Priced(1, [Line("a", 1, math.nan)]), "Priced.lines[0]['price']", "not finite"),
        (Priced(1, by_key={1: 2}), "Priced.by_key[1]", "dict key 1 is not a str"),
        (Priced(1, [Line("a", "3")]), "Priced.lines[0].qty", "expected int"),  # type: ignore[arg-type]
        (Priced(1, [Line(5)]), "Priced.lines[0].sku", "expected str"),  # type: ignore[arg-type]
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_naming_its_field(
    manager, wait, bad, path, reason
):
    typed = manager.typed(Priced).get_tracker("p", create=True, initial=Priced(0)).get(WAIT)
    for future in (
        typed.update(bad, version=0),
        typed.modify(lambda _: bad),
        manager.typed(Priced).create_context("other", bad),
        manager.typed(Priced).get_tracker("other", create=True, initial=bad),
    ):
        with pytest.raises(ModelValueError) as caught:
            wait(future)
        assert caught.value.path == path
        assert reason in str(caught.value)
        assert path in str(caught.value)
        assert isinstance(caught.value, InvalidValueError)
        assert caught.value.model is Priced
    assert wait(typed.get_versioned()) == Versioned(Priced(0), 0)
    assert wait(manager.list_contexts()) == ["p"]


# -- stored data that does not fit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"items": []}, "required field missing @ $.owner"),
        ({"owner": 5, "items": []}, "expected str @ $.owner"),
        ({"owner": "a", "items": [{"sku": "a", "qty": 1.5}]}, "expected int @ $.items[0].qty"),
        ({"owner": "a", "items": [{"sku": "a", "qty": True}]}, "expected int @ $.items[0].qty"),
        ({"owner": "a", "items": {"sku": "a"}}, "expected list @ $.items"),
        ({"owner": "a", "items": "ab"}, "expected list @ $.items"),
        ({"owner": "a", "items": [], "note": "x"}, "extra fields found (note) @ $"),
    ],
)
def test_stored_data_that_does_not_fit_is_a_typed_error(manager, wait, data, fragment):
    manager.create_context("cart", data).get(WAIT)
    manager.get_tracker("cart").get(WAIT).set_metadata("other", "kept").get(WAIT)
    typed = manager.typed(Cart).get_tracker("cart").get(WAIT)
    for future in (typed.get_state(), typed.get_versioned(), typed.modify(lambda c: None)):
        with pytest.raises(ModelMismatchError) as caught:
            wait(future)
        error = caught.value
        assert (error.context, error.version, error.model) == ("cart", 1, Cart)
        assert any(fragment in line for line in error.errors), error.errors
        assert "context 'cart' version 1 does not fit the model Cart" in str(error)
        assert isinstance(error, StateError)
    assert wait(typed.tracker.get_state()).version == 1  # nothing written


def test_float_fields_read_ints_written_untyped(manager, wait):
    manager.create_context("l", {"sku": "a", "qty": 1, "price": 2}).get(WAIT)
    typed = manager.get_tracker("l").get(WAIT).typed(Line)
    line = wait(typed.get_state())
    assert line == Line("a", 1, 2.0)
    assert type(line.price) is float


# -- the converter the user extends -------------------------------------------------------


@attrs.frozen
class Money:
    cents: int
    currency: str


@attrs.define
class Invoice:
    total: Money
    due: timedelta


def test_a_converter_with_the_users_hooks(manager, wait):
    converter = make_model_converter()
    converter.register_unstructure_hook(Money, lambda m: f"{m.cents} {m.currency}")
    converter.register_structure_hook(
        Money, lambda text, _: Money(int(text.split()[0]), text.split()[1])
    )
    converter.register_unstructure_hook(timedelta, lambda d: d.total_seconds())
    converter.register_structure_hook(timedelta, lambda s, _: timedelta(seconds=s))
    schema = ContextSchema(Invoice, converter=converter)
    invoice = Invoice(Money(1250, "EUR"), timedelta(days=30))

    typed = manager.typed(schema).get_tracker("inv", create=True, initial=invoice).get(WAIT)
    assert wait(typed.tracker.get_state()).data == {"total": "1250 EUR", "due": 2592000.0}
    assert wait(typed.get_state()) == invoice

    typed.tracker.set("total", "lots").get(WAIT)  # the user's hook fails: still a typed error
    with pytest.raises(ModelMismatchError, match=r"\$\.total"):
        wait(typed.get_state())


def test_a_type_no_hook_knows_is_refused_at_the_call(manager, wait):
    typed = manager.typed(Invoice).get_tracker
    with pytest.raises(ModelValueError, match=r"Invoice\.due: not a JSON-compatible type"):
        wait(typed("inv", create=True, initial=Invoice(Money(1, "EUR"), timedelta(1))))


# -- handles and configuration ----------------------------------------------------------------


def test_typed_and_untyped_handles_share_one_context(manager, wait):
    typed = typed_cart(manager)
    untyped = manager.get_tracker("cart").get(WAIT)
    assert typed.tracker == untyped
    untyped.set("owner", "bob").get(WAIT)
    untyped.set_metadata("team", "blue").get(WAIT)
    assert wait(typed.modify(lambda c: c.items.append(Line("a")))).version == 3
    assert wait(untyped.get("owner")) == "bob"
    assert wait(untyped.get_state()).metadata == {"schema_version": "1", "team": "blue"}
    assert repr(typed) == "<TypedTracker[Cart] 'cart'>"
    assert typed.name == "cart"


def test_get_tracker_create_needs_initial_and_initial_needs_create(manager, wait):
    carts = manager.typed(Cart)
    with pytest.raises(InvalidArgumentError, match="needs initial="):
        wait(carts.get_tracker("a", create=True))
    with pytest.raises(InvalidArgumentError, match="without create=True"):
        wait(carts.get_tracker("a", initial=Cart("x")))
    with pytest.raises(ContextNotFoundError):
        wait(carts.get_tracker("a"))
    assert wait(manager.list_contexts()) == []


def test_get_tracker_create_loads_a_context_that_exists(manager, wait):
    typed_cart(manager, initial=Cart("first"))
    again = wait(manager.typed(Cart).get_tracker("cart", create=True, initial=Cart("second")))
    assert isinstance(again, TypedTracker)
    assert wait(again.get_state()) == Cart("first")


def test_get_states_reads_models_without_activating(manager, wait):
    carts = manager.typed(Cart)
    wait(carts.create_context("a", Cart("ann", [Line("x", 2)])))
    wait(carts.create_context("b", Cart("bob")))
    assert wait(carts.get_states(["b", "missing", "a"])) == {
        "b": Cart("bob"),
        "a": Cart("ann", [Line("x", 2)]),
    }
    assert wait(manager.active_contexts()) == []
    manager.create_context("odd", {"owner": 5, "items": []}).get(WAIT)
    with pytest.raises(ModelMismatchError, match="context 'odd' version 0 does not fit"):
        wait(carts.get_states(["a", "odd"]))


def test_create_context_and_load_a_past_version(manager, wait):
    carts = manager.typed(Cart)
    assert wait(carts.create_context("c", Cart("ann"))) == Versioned(Cart("ann"), 0)
    typed = wait(carts.get_tracker("c"))
    wait(typed.modify(lambda c: attrs.evolve(c, owner="bob")))
    typed.tracker.save().get(WAIT)
    assert wait(carts.load("c")) == Cart("bob")
    assert wait(carts.load("c", version=0)) == Cart("ann")


class NotAModel:
    pass


@pytest.mark.parametrize("model", [NotAModel, int, dict, "Cart"])
def test_only_attrs_classes_and_dataclasses_are_models(manager, model):
    with pytest.raises(ConfigurationError, match="attrs class or a dataclass"):
        manager.typed(model)


def test_errors_are_context_errors():
    for error in (ModelValueError, ModelMismatchError):
        assert issubclass(error, ContextError)


# -- threads and asyncio ----------------------------------------------------------------------


def test_typed_modifies_from_many_threads_lose_nothing(manager):
    typed = manager.typed(Counter).get_tracker("n", create=True, initial=Counter()).get(WAIT)

    def work(_: int) -> None:
        for _ in range(25):
            typed.modify(lambda c: Counter(c.n + 1)).get(WAIT)

    run_threads(8, work)
    assert typed.get_versioned().get(WAIT) == Versioned(Counter(200), 200)


def test_typed_calls_from_asyncio_lose_nothing(manager):
    async def main() -> Versioned[Counter]:
        typed = await manager.typed(Counter).get_tracker("n", create=True, initial=Counter())

        def bump(counter: Counter) -> None:
            counter.n += 1

        await asyncio.gather(*(typed.modify(bump) for _ in range(100)))
        return await typed.get_versioned()

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == Versioned(Counter(100), 100)
