"""Fixtures of the reliability tests."""

from __future__ import annotations

from tests.postgres_server import postgres_server  # noqa: F401 - pytest finds fixtures by name
from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
