"""A typed-context program mypy --strict must accept, revealing the model types."""

from __future__ import annotations

from typing import assert_type, reveal_type

import attrs

from actors import (
    ContextFuture,
    ContextSchema,
    TypedContexts,
    TypedTracker,
    Versioned,
    create_manager,
)


@attrs.frozen
class Cart:
    owner: str
    items: tuple[str, ...] = ()


def add(cart: Cart) -> Cart:
    return attrs.evolve(cart, items=(*cart.items, "apple"))


def main() -> None:
    manager = create_manager()
    carts = manager.typed(Cart)
    tracker = carts.get_tracker("cart-1", create=True, initial=Cart("ann")).get()
    assert_type(tracker, TypedTracker[Cart])
    reveal_type(tracker.get_state().get())
    assert_type(tracker.get_state(), ContextFuture[Cart])
    written = tracker.modify(add).get()
    assert_type(written, Versioned[Cart])
    assert_type(written.model, Cart)
    update = tracker.update(attrs.evolve(written.model, owner="bob"), version=written.version)
    assert_type(update, ContextFuture[Versioned[Cart]])
    untyped = manager.get_tracker("cart-1").get()
    assert_type(untyped.typed(Cart), TypedTracker[Cart])
    assert_type(manager.typed(ContextSchema(Cart, version=1)), TypedContexts[Cart])
    manager.shutdown().get()


async def in_a_coroutine(tracker: TypedTracker[Cart]) -> str:
    cart = await tracker.get_state()
    assert_type(cart, Cart)
    return cart.owner
