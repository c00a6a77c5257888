"""Fixtures of the storage tests: real Redis, Redis Cluster and PostgreSQL servers for their
stores."""

from __future__ import annotations

from tests.postgres_server import postgres_server  # noqa: F401 - pytest finds fixtures by name
from tests.redis_cluster import (  # noqa: F401 - pytest finds fixtures by name
    redis_cluster,
    valkey_cluster,
)
from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
