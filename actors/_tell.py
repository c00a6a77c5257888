"""Telling an actor that may have stopped."""

from __future__ import annotations

import contextlib
from typing import Any

import pykka

__all__ = ["tell_quietly"]


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell `ref` `message`, unless it has stopped: for news a stopped actor has no use for
    (it answered or handed back everything it held as it stopped)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
