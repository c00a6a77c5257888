"""Fixtures of the reliability tests."""

from __future__ import annotations

from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
