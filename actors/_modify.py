"""What `modify(fn)` accepts: a plain function that changes its State in place.

A coroutine function passed to `modify` would only build a coroutine and change nothing,
and a function that returns a new mapping would have it ignored; both would still move the
version. Both are refused instead: the function up front in the caller's thread, its
result in the tracker before anything is installed.
"""

from __future__ import annotations

import inspect
from types import FunctionType

from storage import InvalidArgumentError

__all__ = ["check_modify_function", "modify_result_error"]


def check_modify_function(fn: object) -> None:
    """Refuse what cannot be a `modify()` function, before it is sent to the tracker.

    Raises:
        InvalidArgumentError: `fn` is not callable, or is a coroutine function.
    """
    if (
        type(fn) is FunctionType
        and not fn.__code__.co_flags & inspect.CO_COROUTINE
        and getattr(fn, "_is_coroutine_marker", None) is None  # inspect.markcoroutinefunction
    ):
        return  # a plain def or lambda, the usual case: what inspect would say, in 1/5 the time
    if not callable(fn):
        msg = f"modify() takes a function of the State, got {type(fn).__name__} {fn!r}"
        raise InvalidArgumentError(msg)
    # iscoroutinefunction() sees through functools.partial; an object's async __call__ too.
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - the method itself, not callable()
    ):
        msg = (
            f"modify() takes a plain function, got the coroutine function {fn!r}: it runs "
            "inside the tracker, which cannot await; read, compute outside, then modify()"
        )
        raise InvalidArgumentError(msg)


def modify_result_error(result: object) -> InvalidArgumentError:
    """The error for a `modify()` function that returned `result` instead of None (the
    State it was given is accepted too). An awaitable `result` is closed, so that Python
    does not also warn that it was never awaited."""
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return InvalidArgumentError(
            f"the modify() function returned an awaitable ({type(result).__name__}): it "
            "must be a plain function that changes the State in place; nothing was changed"
        )
    shown = repr(result)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return InvalidArgumentError(
        f"the modify() function returned {type(result).__name__} {shown}: it must change "
        "the State it is given in place and return None; nothing was changed"
    )
