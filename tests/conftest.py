"""Shared test configuration.

Only what every test package needs lives here; backend fixtures live next to the tests that
use them (see tests/storage/test_store_contract.py).
"""

from __future__ import annotations

from hypothesis import settings

# Hypothesis' per-example deadline turns a slow CI machine into a flaky failure; hangs are
# caught by pytest-timeout (60 s default, set in pyproject.toml) instead.
settings.register_profile("context-runtime", deadline=None)
settings.load_profile("context-runtime")
