"""RedisStore: contexts in a Redis server, shared by every process that reaches it.

Every write that checks one key and changes another is one Lua script (`EVALSHA` through
redis-py's `register_script`), so compare-and-set, retention, create and delete are atomic on
the server. All keys of one context carry the hash tag `{name}`, so each script touches one
cluster slot. The key layout and the scripts' contract are in docs/storage.md ("Redis").

redis-py is an optional dependency (`pip install 'context-runtime[redis]'`); `storage`
imports this module only when a RedisStore is asked for.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

try:
    import redis
    import redis.exceptions
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # redis-py is an optional extra
    msg = "RedisStore needs redis-py: pip install 'context-runtime[redis]'"
    raise ImportError(msg) from exc

import orjson

from storage._codec import SnapshotCodec
from storage._exceptions import (
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    InvalidContextNameError,
    PersistenceError,
    RecoveryPointNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    VersionConflict,
)
from storage._names import validate_context_name
from storage._redis_scripts import (
    COMPARE_AND_SET,
    CREATE,
    CREATE_RECOVERY_POINT,
    DELETE,
    DELETE_RECOVERY_POINT,
    READ_HEAD,
)
from storage._store import DEFAULT_RETAIN_HEADS, RecoveryPoint, Store

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "REDIS_ERRORS", "SCHEMA_VERSION", "RedisStore"]

DEFAULT_PREFIX = "ctx"
"""The key prefix a RedisStore uses unless told otherwise."""

DEFAULT_TIMEOUT = 5.0
"""Seconds a connect, or a wait for one reply, may take before it fails."""

SCHEMA_VERSION = 1
"""The key layout this library writes and reads, stored under `<prefix>:schema`."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.ChildDeadlockedError,
    redis.exceptions.IncorrectPolicyType,
    OSError,  # socket errors, should one ever slip past redis-py's own wrapping
)
"""What `RedisStore` maps to `PersistenceError`: every exception class redis-py defines."""

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}", re.ASCII)


def _decimal(value: int) -> str:
    """A version or id as the canonical decimal the scripts compare (ints only)."""
    return str(operator.index(value))


def _point_field(name: str, point_id: int) -> str:
    try:
        return _decimal(point_id)
    except TypeError:  # callers may be untyped; no point has such an id
        raise RecoveryPointNotFoundError(name, point_id) from None


def _is_context_name(name: str) -> bool:
    try:
        validate_context_name(name)
    except InvalidContextNameError:
        return False
    return True


def _timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"{name} must be a positive number of seconds, not {value!r}"
        raise ValueError(msg)
    if not math.isfinite(value):
        msg = f"{name} must be finite, not {value!r}"
        raise ValueError(msg)
    return float(value)


class RedisStore(Store):
    """A store in one Redis server, safe to share between threads and processes.

    The key layout would also suit a Redis Cluster (every script touches one slot), but the
    store connects to one server.

    Args:
        host, port, db: the server and the database number.
        prefix: the first part of every key, so several stores can share one database;
            1 to 100 of ASCII letters, digits, `.`, `_`, `-` and `:`.
        username, password: credentials, if the server wants them.
        socket_timeout: seconds to wait for a reply before failing with `PersistenceError`.
        socket_connect_timeout: seconds to wait for a connection before failing.

    A command is never retried: a write whose reply is lost (a timeout, a dropped connection)
    raises `PersistenceError` and may or may not have been applied; read the head to know.

    Raises:
        PersistenceError: the server cannot be reached or refuses the connection.
        UnsupportedFormatError: `<prefix>:schema` holds a newer or foreign layout version.
        ValueError: a bad prefix, database number or timeout.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        *,
        prefix: str = DEFAULT_PREFIX,
        username: str | None = None,
        password: str | None = None,
        socket_timeout: float = DEFAULT_TIMEOUT,
        socket_connect_timeout: float = DEFAULT_TIMEOUT,
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
    ) -> None:
        super().__init__(codec=codec, retain_heads=retain_heads)
        if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
            msg = (
                f"prefix must be 1 to 100 ASCII letters, digits, '.', '_', '-' or ':', "
                f"not {prefix!r}"
            )
            raise ValueError(msg)
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            msg = f"db must be a database number of 0 or more, not {db!r}"
            raise ValueError(msg)
        self.host = host
        self.port = port
        self.db = db
        self.prefix = prefix
        self.socket_timeout = _timeout("socket_timeout", socket_timeout)
        self.socket_connect_timeout = _timeout("socket_connect_timeout", socket_connect_timeout)
        self._closed = False
        self._client = redis.Redis(
            host=host,
            port=port,
            db=db,
            username=username,
            password=password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
            # Never retry: a retried compare-and-set whose first reply was lost would report
            # a conflict with its own write, and retries would stretch the timeout.
            retry=Retry(NoBackoff(), 0),
            # Replies stay bytes (decode_responses=False); the casts below narrow redis-py's
            # bytes-or-str reply types to that.
            decode_responses=False,
        )
        self._create_script = self._client.register_script(CREATE)
        self._read_head_script = self._client.register_script(READ_HEAD)
        self._cas_script = self._client.register_script(COMPARE_AND_SET)
        self._delete_script = self._client.register_script(DELETE)
        self._create_point_script = self._client.register_script(CREATE_RECOVERY_POINT)
        self._delete_point_script = self._client.register_script(DELETE_RECOVERY_POINT)
        try:
            self._check_schema()
        except BaseException:
            self._client.close()
            raise

    def __repr__(self) -> str:
        return f"RedisStore('redis://{self.host}:{self.port}/{self.db}', prefix={self.prefix!r})"

    # -- connection, errors and keys ------------------------------------------------------

    @contextmanager
    def _translate(self, op: str) -> Iterator[redis.Redis]:
        """The client for one operation; every redis-py error becomes `PersistenceError`,
        chained. Ours pass through."""
        if self._closed:
            raise PersistenceError(f"{self!r} is closed")
        try:
            yield self._client
        except ContextError:
            raise
        except REDIS_ERRORS as exc:
            raise PersistenceError(
                f"redis {op} on {self.host}:{self.port}/{self.db} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _key(self, name: str, part: str) -> str:
        return f"{self.prefix}:{{{name}}}:{part}"

    def _context_keys(self, name: str) -> list[str]:
        return [self._key(name, part) for part in ("meta", "heads", "points", "point_blobs")]

    def _check_schema(self) -> None:
        key = f"{self.prefix}:schema"
        with self._translate("open") as client, client.pipeline(transaction=True) as pipe:
            pipe.setnx(key, SCHEMA_VERSION)
            pipe.get(key)
            _, stamp = pipe.execute()
        text = stamp.decode("ascii", "replace") if isinstance(stamp, bytes) else repr(stamp)
        if not text.isdigit():
            raise UnsupportedFormatError(
                f"{key} holds {text!r}: prefix {self.prefix!r} belongs to another application"
            )
        if int(text) > SCHEMA_VERSION:
            raise UnsupportedFormatError(
                f"{key} is layout version {text}; this library reads up to {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connection pool; later calls raise `PersistenceError`."""
        self._closed = True
        self._client.close()

    # -- primitives ------------------------------------------------------------------------

    def _create(self, name: str, version: int, blob: bytes) -> None:
        keys = self._context_keys(name)
        with self._translate("create"):
            created = self._create_script(keys, [_decimal(version), blob], self._client)
        if not created:
            raise ContextExistsError(name)

    def _read_head(self, name: str) -> tuple[int, bytes]:
        keys = self._context_keys(name)[:2]
        with self._translate("read head"):
            reply = self._read_head_script(keys, [], self._client)
        if reply is None:
            raise ContextNotFoundError(name)
        version, blob = cast("list[bytes | None]", reply)
        assert version is not None  # the script returns the version it found
        if blob is None:
            raise CorruptSnapshotError(
                f"context {name!r}: head version {int(version)} has no snapshot"
            )
        return int(version), blob

    def _head_version(self, name: str) -> int:
        with self._translate("read version") as client:
            version = cast("bytes | None", client.hget(self._key(name, "meta"), "version"))
        if version is None:
            raise ContextNotFoundError(name)
        return int(version)

    def _compare_and_set(self, name: str, expected: int, version: int, blob: bytes) -> None:
        keys = self._context_keys(name)[:2]
        args: list[str | bytes | int] = [
            _decimal(expected),
            _decimal(version),
            blob,
            self.retain_heads,
        ]
        with self._translate("compare-and-set"):
            reply = cast("list[bytes]", self._cas_script(keys, args, self._client))
        if reply[0] == b"missing":
            raise ContextNotFoundError(name)
        if reply[0] == b"conflict":
            raise VersionConflict(name, expected, int(reply[1]))

    def _delete(self, name: str) -> None:
        with self._translate("delete"):
            deleted = self._delete_script(self._context_keys(name), [], self._client)
        if not deleted:
            raise ContextNotFoundError(name)

    def _exists(self, name: str) -> bool:
        with self._translate("exists") as client:
            return bool(client.exists(self._key(name, "meta")))

    def _list_contexts(self) -> list[str]:
        # No global list key: see docs/storage.md ("Redis") for why the meta keys are the
        # one source of truth. SCAN may return a key twice, hence the set.
        start = len(self.prefix) + 2  # "<prefix>:{"
        end = -len("}:meta")
        with self._translate("list contexts") as client:
            keys = set(client.scan_iter(match=self._key("*", "meta"), count=1000))
        names = (key[start:end].decode("ascii", "replace") for key in cast("set[bytes]", keys))
        # A key of another program can match the pattern; it never names one of ours.
        return [name for name in names if _is_context_name(name)]

    def _list_versions(self, name: str) -> list[int]:
        with self._translate("list versions") as client, client.pipeline() as pipe:
            pipe.exists(self._key(name, "meta"))
            pipe.hkeys(self._key(name, "heads"))
            exists, versions = pipe.execute()
        if not exists:
            raise ContextNotFoundError(name)
        return [int(version) for version in versions]

    def _read_version(self, name: str, version: int) -> bytes:
        with self._translate("read snapshot") as client, client.pipeline() as pipe:
            pipe.exists(self._key(name, "meta"))
            pipe.hget(self._key(name, "heads"), _decimal(version))
            exists, blob = pipe.execute()
        if not exists:
            raise ContextNotFoundError(name)
        if blob is None:
            raise SnapshotNotFoundError(name, version)
        return cast("bytes", blob)

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        keys = self._context_keys(name)
        info = orjson.dumps(
            {"version": version, "label": label, "created_at": created_at.isoformat()}
        )
        with self._translate("create recovery point") as client:
            # The id comes first, from a counter of its own (a script may not touch keys of
            # two slots), so a point for a missing context leaves a gap in the ids.
            point_id = client.incr(f"{self.prefix}:point_id")
            created = self._create_point_script(
                [keys[0], keys[2], keys[3]], [point_id, info, blob], self._client
            )
        if not created:
            raise ContextNotFoundError(name)
        return point_id

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        with self._translate("list recovery points") as client, client.pipeline() as pipe:
            pipe.exists(self._key(name, "meta"))
            pipe.hgetall(self._key(name, "points"))
            exists, infos = pipe.execute()
        if not exists:
            raise ContextNotFoundError(name)
        return [
            self._point_info(name, int(point_id), info)
            for point_id, info in cast("dict[bytes, bytes]", infos).items()
        ]

    def _point_info(self, name: str, point_id: int, info: bytes) -> RecoveryPoint:
        try:
            fields: dict[str, Any] = orjson.loads(info)
            return RecoveryPoint(
                name,
                point_id,
                int(fields["version"]),
                fields["label"],
                datetime.fromisoformat(fields["created_at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptSnapshotError(
                f"context {name!r}: recovery point {point_id} has a damaged record: {exc}"
            ) from exc

    def _read_recovery_point(self, name: str, point_id: int) -> tuple[int, bytes]:
        field = _point_field(name, point_id)
        with self._translate("read recovery point") as client, client.pipeline() as pipe:
            pipe.hget(self._key(name, "points"), field)
            pipe.hget(self._key(name, "point_blobs"), field)
            info, blob = pipe.execute()
        if info is None:
            raise RecoveryPointNotFoundError(name, point_id)
        if blob is None:
            raise CorruptSnapshotError(
                f"context {name!r}: recovery point {point_id} has no snapshot"
            )
        return self._point_info(name, point_id, info).version, cast("bytes", blob)

    def _delete_recovery_point(self, name: str, point_id: int) -> None:
        field = _point_field(name, point_id)
        keys = self._context_keys(name)[2:]
        with self._translate("delete recovery point"):
            deleted = self._delete_point_script(keys, [field], self._client)
        if not deleted:
            raise RecoveryPointNotFoundError(name, point_id)
