"""Small typed programs that tests/actors/test_typed_typing.py type-checks with mypy --strict."""
