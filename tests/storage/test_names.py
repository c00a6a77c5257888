"""Context names: a small ASCII alphabet, 1..200 characters, never starting with a dot."""

from __future__ import annotations

import pytest

from storage import MAX_NAME_LENGTH, ContextError, InvalidContextNameError, validate_context_name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "Z",
        "0",
        "_",
        "-",
        "ctx",
        "user-42",
        "user_42",
        "orders.v2",
        "a..b",
        "trailing.",
        "-leading-dash",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_accepts_good_names(name: str) -> None:
    assert validate_context_name(name) is name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        ".hidden",
        "a/b",
        "../escape",
        "a\\b",
        "\x00",
        "a\x00b",
        "a b",
        " a",
        "a\tb",
        "abc\n",
        "\nabc",
        "a:b",
        "a*b",
        "ctx\u0430",  # Cyrillic small a, looks like "ctxa"
        "\u0441tx",  # Cyrillic small es, looks like "ctx"
        "\uff43tx",  # fullwidth c
        "ctx\uff11",  # fullwidth digit one
        "caf\u00e9",
        "a\u200bb",  # zero-width space
    ],
)
def test_rejects_bad_names_naming_the_value(name: str) -> None:
    with pytest.raises(InvalidContextNameError) as caught:
        validate_context_name(name)

    assert repr(name) in str(caught.value)
    assert caught.value.name == name


@pytest.mark.parametrize("name", [None, 5, b"x", ["a"], 1.5])
def test_rejects_non_str_naming_the_value_and_type(name: object) -> None:
    with pytest.raises(InvalidContextNameError) as caught:
        validate_context_name(name)

    assert repr(name) in str(caught.value)
    assert type(name).__name__ in str(caught.value)


@pytest.mark.parametrize("length", [MAX_NAME_LENGTH + 1, 10_000])
def test_rejects_long_names_with_a_truncated_repr(length: int) -> None:
    name = "x" * length

    with pytest.raises(InvalidContextNameError) as caught:
        validate_context_name(name)

    message = str(caught.value)
    # The message names the value by its first 40 characters, so a 10 kB name does not
    # become a 10 kB log line, and says how long it was.
    assert repr("x" * 40 + "...") in message
    assert f"{length} characters" in message
    assert len(message) < 200


def test_error_is_a_context_error_and_a_value_error() -> None:
    with pytest.raises(InvalidContextNameError) as caught:
        validate_context_name("a b")

    assert isinstance(caught.value, ContextError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason
