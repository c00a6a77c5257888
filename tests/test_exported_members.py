"""Every package exports exactly its public names, in `__all__`, sorted the way ruff sorts it."""

from __future__ import annotations
import __future__

import importlib
import re
import types

import pytest

from storage import ContextError

PACKAGES = ["actors", "storage"]


def isort_key(name: str) -> tuple[int, list[int | str]]:
    """The order of ruff's RUF022: CONSTANTS, then Classes, then functions; naturally sorted."""
    if len(name) > 1 and name.isupper():
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return kind, natural


def public_names(module: types.ModuleType) -> set[str]:
    """Names the package defines or re-exports, less imported modules and __future__ flags."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_lists_every_public_name(package: str) -> None:
    module = importlib.import_module(package)
    # Every name resolves, including those a module __getattr__ loads on first use (storage's
    # RedisStore, which needs the optional redis-py); loading makes them module attributes.
    for name in module.__all__:
        getattr(module, name)

    assert module.__all__ == sorted(module.__all__, key=isort_key)
    assert len(set(module.__all__)) == len(module.__all__)
    assert set(module.__all__) == public_names(module)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_exception_is_a_context_error(package: str) -> None:
    module = importlib.import_module(package)
    exceptions = [
        getattr(module, name)
        for name in module.__all__
        if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), Exception)
    ]

    assert exceptions
    for exception in exceptions:
        assert issubclass(exception, ContextError), exception
