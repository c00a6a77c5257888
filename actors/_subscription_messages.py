"""The messages the subscription hub takes (see actors/_subscription_hub.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from actors._cell import Cell
    from actors._changes import Topic
    from actors._future import Reply
    from actors._subscription import Subscription

__all__ = ["CloseHub", "CloseTopic", "Demand", "Register", "Unsubscribe"]


@attrs.frozen
class Register:
    """To the hub: add `subscription` to `topic`; `reply` resolves to it. With a `cell`,
    refused if that context was deleted or its manager shut down."""

    topic: Topic
    subscription: Subscription[Any]
    reply: Reply[Any]
    cell: Cell | None = None


@attrs.frozen
class Demand:
    """To the hub: the subscriber is done with its last batch and takes the next."""

    subscription: Subscription[Any]


@attrs.frozen
class Unsubscribe:
    """To the hub: end `subscription` at once, dropping what it buffers."""

    subscription: Subscription[Any]


@attrs.frozen
class CloseTopic:
    """To the hub: `topic` is gone (its context was deleted); end its subscriptions."""

    topic: Topic


@attrs.frozen
class CloseHub:
    """To the hub: the manager shuts down; end every subscription, then stop."""

    reply: Reply[None]
