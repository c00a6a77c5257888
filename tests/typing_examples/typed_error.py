"""A typed-context program with deliberate type errors mypy --strict must report."""

from __future__ import annotations

import attrs

from actors import create_manager


@attrs.frozen
class Cart:
    owner: str


@attrs.frozen
class Order:
    number: int


def main() -> None:
    tracker = create_manager().typed(Cart).get_tracker("cart-1").get()
    number: int = tracker.get_state().get().owner  # error: str is not int
    tracker.update(Order(1), version=0)  # error: an Order is not a Cart
    tracker.modify(lambda cart: cart.number)  # error: a Cart has no number
    print(number)
