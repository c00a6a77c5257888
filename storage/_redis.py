"""RedisStore: contexts in a Redis server, shared by every process that reaches it.

Every write that checks one key and changes another is one Lua script (`EVALSHA` through
redis-py's `register_script`), so compare-and-set, journal appends, retention and compaction,
create and delete are atomic on the server. All keys of one context carry the hash tag
`{name}`, so each script touches one cluster slot. The scripts that move a head also publish
on `<prefix>:changes` (on a Redis Cluster of Redis 7 or later: on the context's shard channel
`<prefix>:{name}:changes`); `change_token()` listens there (storage/_redis_changes.py), so a
watcher learns of other processes' writes without reading every head. The key layout, the
channels and the scripts' contract are in docs/storage.md ("Redis").

redis-py is an optional dependency (`pip install 'context-runtime[redis]'`); `storage`
imports this module only when a RedisStore is asked for.
"""

from __future__ import annotations

import contextlib
import operator
import re
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

try:
    import redis
    import redis.exceptions
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.retry import Retry
except ImportError as exc:  # redis-py is an optional extra
    msg = "RedisStore needs redis-py: pip install 'context-runtime[redis]'"
    raise ImportError(msg) from exc

import orjson

from storage._checks import positive_seconds
from storage._codec import SnapshotCodec
from storage._exceptions import (
    ConfigurationError,
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    InvalidContextNameError,
    LeaseLost,
    NotOwner,
    PersistenceError,
    RecoveryPointNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    VersionConflict,
    WriteOutcomeUnknownError,
)
from storage._names import validate_context_name
from storage._redis_changes import ChannelListener, ShardListener, sharded_pubsub
from storage._redis_scripts import (
    ACQUIRE_LEASE,
    APPEND,
    APPEND_CHAIN,
    COMPARE_AND_SET,
    CREATE,
    CREATE_RECOVERY_POINT,
    DELETE,
    DELETE_RECOVERY_POINT,
    EXPORT_CONTEXT,
    IMPORT_CONTEXT,
    READ_CHANGES,
    READ_HEAD,
    READ_JOURNAL,
    READ_LATEST,
    READ_LEASE,
    RELEASE_LEASE,
    RENEW_LEASE,
    STAMP_SCHEMA,
    UPGRADE_SCHEMA,
)
from storage._store import (
    DEFAULT_RETAIN_HEADS,
    ContextExport,
    Lease,
    RecoveryPoint,
    Store,
    Write,
)

__all__ = [
    "DEFAULT_CHANGE_SILENCE",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "REDIS_ERRORS",
    "SCHEMA_VERSION",
    "RedisClusterStore",
    "RedisStore",
]

DEFAULT_PREFIX = "ctx"
"""The key prefix a RedisStore uses unless told otherwise."""

DEFAULT_TIMEOUT = 5.0
"""Seconds a connect, or a wait for one reply, may take before it fails."""

SCHEMA_VERSION = 2
"""The key layout this library writes and reads, stored under `<prefix>:schema`. Layout 1
had no journal keys; opening a store of layout 1 stamps it 2."""

_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""What redis-py raises when a connection fails or a reply does not come in time."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.ChildDeadlockedError,
    redis.exceptions.IncorrectPolicyType,
    OSError,  # socket errors, should one ever slip past redis-py's own wrapping
)
"""What `RedisStore` maps to `PersistenceError`: every exception class redis-py defines."""

_REDIRECTS = (
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
)
"""Replies of a cluster node that mean the command did not run there (its slot is elsewhere
or being moved): safe to send again, through the cluster client, which follows them."""

DEFAULT_CHANGE_SILENCE = 10.0
"""Seconds the change subscription may stay silent before `change_token()` pings it."""

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}", re.ASCII)


def _decimal(value: int) -> str:
    """A version or id as the canonical decimal the scripts compare (ints only)."""
    return str(operator.index(value))


def _point_field(name: str, point_id: int) -> str:
    try:
        return _decimal(point_id)
    except TypeError:  # callers may be untyped; no point has such an id
        raise RecoveryPointNotFoundError(name, point_id) from None


def _chains(before: Write, write: Write) -> bool:
    """Whether `write` goes in one APPEND_CHAIN with `before`, the write of its context
    before it: both journal entries, under the same lease, `write` expecting `before`."""
    return (
        before.journal
        and write.journal
        and write.lease == before.lease
        and write.expected == before.version
    )


def _outcome(write: Write, reply: Any) -> ContextError | None:
    """What a compare-and-set or append script's reply means for `write`."""
    status = cast("list[bytes]", reply)[0]
    if status == b"missing":
        return ContextNotFoundError(write.context)
    if status == b"conflict":
        return VersionConflict(write.context, write.expected, int(reply[1]))
    if status == b"lease":
        assert write.lease is not None  # only a fenced write is refused so
        return LeaseLost(write.context, write.lease, int(reply[1]))
    return None


def _micros(seconds: float) -> str:
    """A lease's length as the scripts take it: whole microseconds of the server's clock."""
    return str(round(seconds * 1_000_000))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _lease(name: str, reply: Any) -> Lease:
    """The `Lease` a renew or read script's reply `[owner, epoch, us left, wanted_by]` says."""
    owner, epoch, left, wanted = cast("list[bytes | None]", reply)
    assert epoch is not None  # the scripts always return it
    assert left is not None
    if int(epoch) == 0:
        return Lease(name, None, 0, 0.0)  # never taken
    return Lease(name, _text(owner), int(epoch), int(left) / 1_000_000, _text(wanted))


def _is_context_name(name: str) -> bool:
    try:
        validate_context_name(name)
    except InvalidContextNameError:
        return False
    return True


def _client_address(client: object) -> tuple[str, int, int]:
    """The host, port and database a ready client talks to (on a cluster: its first
    startup node, and 0)."""
    if isinstance(client, redis.RedisCluster):
        nodes = client.nodes_manager.startup_nodes
        first = next(iter(nodes.values()), None)
        return (first.host, int(first.port), 0) if first is not None else ("", 0, 0)
    if isinstance(client, redis.Redis):
        kwargs = client.connection_pool.connection_kwargs
        return str(kwargs.get("host", "")), int(kwargs.get("port", 0)), int(kwargs.get("db", 0))
    msg = f"client must be a redis.Redis or a redis.RedisCluster, not {type(client).__name__}"
    raise ConfigurationError(msg)


def _check_client(client: redis.Redis | redis.RedisCluster) -> None:
    """Refuse a ready client that would retry commands or decode replies."""
    retry: Retry | None = (
        client.retry if isinstance(client, redis.RedisCluster) else client.get_retry()
    )
    decodes = cast("Any", client).get_encoder().decode_responses
    if retry is not None and retry.get_retries() > 0:
        msg = (
            f"the client retries commands ({retry.get_retries()} times); a retried "
            "compare-and-set could report a conflict with its own write: build it with "
            "retry=Retry(NoBackoff(), 0)"
        )
        raise ConfigurationError(msg)
    if decodes:
        msg = "the client decodes replies; build it with decode_responses=False"
        raise ConfigurationError(msg)


class RedisStore(Store):
    """A store in one Redis server or one Redis Cluster, safe to share between threads and
    processes.

    Every script touches the keys of one context, which share the hash tag `{name}` and so
    one cluster slot; on a cluster (`RedisClusterStore`, or a `redis.RedisCluster` passed as
    `client`) a batch of writes is pipelined per node, and change notification is per
    context on sharded pub/sub (Redis 7 or later; `follow()` names the contexts) or else by
    polling (`change_token()` returns None). docs/storage.md ("Redis Cluster").

    Args:
        host, port, db: the server and the database number.
        client: a ready `redis.Redis` or `redis.RedisCluster` to use instead of building one
            from host, port, db and the credentials (which must then be left unset); the
            caller keeps it and closes it. It must not retry commands (build it with
            `retry=Retry(NoBackoff(), 0)`): a retried compare-and-set whose first reply was
            lost would report a conflict with its own write. It must return bytes
            (`decode_responses=False`). On a cluster only database 0 exists.
        prefix: the first part of every key, so several stores can share one database;
            1 to 100 of ASCII letters, digits, `.`, `_`, `-` and `:`.
        username, password: credentials, if the server wants them.
        socket_timeout: seconds to wait for a reply before failing with `PersistenceError`.
        socket_connect_timeout: seconds to wait for a connection before failing.
        change_silence: seconds the change subscription (`change_token()`) may hear nothing
            before it sends the server a PING; no answer within `socket_timeout` means the
            connection died without a word (a half-open TCP connection), and the
            subscription is made again. The cost: one PING per this many quiet seconds.

    A command is never retried: a write whose reply is lost (a timeout, a dropped connection)
    raises `PersistenceError` and may or may not have been applied; read the head to know.

    Raises:
        PersistenceError: the server cannot be reached or refuses the connection.
        UnsupportedFormatError: `<prefix>:schema` holds a newer or foreign layout version.
        ConfigurationError: a bad prefix, database number, timeout or `retain_heads`.
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
        change_silence: float = DEFAULT_CHANGE_SILENCE,
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
        client: redis.Redis | redis.RedisCluster | None = None,
    ) -> None:
        super().__init__(codec=codec, retain_heads=retain_heads)
        if client is not None:
            given = (host, port, db, username, password) != ("localhost", 6379, 0, None, None)
            if given:
                msg = "RedisStore takes a client or host, port, db and credentials, not both"
                raise ConfigurationError(msg)
            host, port, db = _client_address(client)
        if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
            msg = (
                f"prefix must be 1 to 100 ASCII letters, digits, '.', '_', '-' or ':', "
                f"not {prefix!r}"
            )
            raise ConfigurationError(msg)
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            msg = f"db must be a database number of 0 or more, not {db!r}"
            raise ConfigurationError(msg)
        self.host = host
        self.port = port
        self.db = db
        self.prefix = prefix
        self.socket_timeout = positive_seconds("socket_timeout", socket_timeout)
        self.socket_connect_timeout = positive_seconds(
            "socket_connect_timeout", socket_connect_timeout
        )
        self.change_silence = positive_seconds("change_silence", change_silence)
        self.channel = f"{prefix}:changes"
        """The pub/sub channel every head-moving write publishes on (docs/storage.md); on a
        cluster nothing is published there (a PUBLISH reaches every node)."""
        self._closed = False
        self._watch_lock = threading.Lock()  # serializes change_token() with close()
        self._owns_client = client is None
        self._client: Any = (
            client
            if client is not None
            else redis.Redis(
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
        )
        self.cluster = isinstance(self._client, redis.RedisCluster)
        """Whether the store is on a Redis Cluster (slot-aware batches, no pub/sub)."""
        if self.cluster and db != 0:
            msg = f"a Redis Cluster has database 0 only, not {db!r}"
            raise ConfigurationError(msg)
        if client is not None:
            _check_client(client)
        self._register_scripts()
        try:
            self._check_schema()
            self.sharded = self.cluster and self._has_sharded_pubsub()
            """Whether the store is on a cluster whose masters all have sharded pub/sub
            (Redis 7 or later), found at open: the scripts SPUBLISH on each context's shard
            channel and `change_token()` listens to the followed contexts' channels."""
        except BaseException:
            if self._owns_client:
                self._client.close()
            raise
        self._listener: ChannelListener | ShardListener | None = (
            ShardListener(self._client, self._channel_of, self.socket_timeout, self.change_silence)
            if self.sharded
            else None
            if self.cluster
            else ChannelListener(
                self._client, self.channel, self.socket_timeout, self.change_silence
            )
        )

    def _has_sharded_pubsub(self) -> bool:
        with self._translate("open") as client:
            return sharded_pubsub(client)

    def _channel_of(self, name: str) -> str:
        """The shard channel of context `name`: in the slot of its keys."""
        return self._key(name, "changes")

    def _publish_to(self, name: str) -> str:
        """The channel a script that moves the head of `name` publishes on: the shard
        channel (SPUBLISH, for it holds a hash tag), the store's channel (PUBLISH), or ''
        (nothing: a cluster without sharded pub/sub)."""
        if self.sharded:
            return self._channel_of(name)
        return "" if self.cluster else self.channel

    def _register_scripts(self) -> None:
        self._create_script = self._client.register_script(CREATE)
        self._read_head_script = self._client.register_script(READ_HEAD)
        self._cas_script = self._client.register_script(COMPARE_AND_SET)
        self._append_script = self._client.register_script(APPEND)
        self._append_chain_script = self._client.register_script(APPEND_CHAIN)
        self._read_journal_script = self._client.register_script(READ_JOURNAL)
        self._read_latest_script = self._client.register_script(READ_LATEST)
        self._read_changes_script = self._client.register_script(READ_CHANGES)
        self._upgrade_script = self._client.register_script(UPGRADE_SCHEMA)
        self._delete_script = self._client.register_script(DELETE)
        self._create_point_script = self._client.register_script(CREATE_RECOVERY_POINT)
        self._delete_point_script = self._client.register_script(DELETE_RECOVERY_POINT)
        self._export_script = self._client.register_script(EXPORT_CONTEXT)
        self._import_script = self._client.register_script(IMPORT_CONTEXT)
        self._stamp_script = self._client.register_script(STAMP_SCHEMA)
        self._acquire_lease_script = self._client.register_script(ACQUIRE_LEASE)
        self._renew_lease_script = self._client.register_script(RENEW_LEASE)
        self._read_lease_script = self._client.register_script(READ_LEASE)
        self._release_lease_script = self._client.register_script(RELEASE_LEASE)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url()!r}, prefix={self.prefix!r})"

    def _url(self) -> str:
        if self.cluster:
            nodes = (
                ",".join(f"{node.host}:{node.port}" for node in self._client.get_primaries())
                or f"{self.host}:{self.port}"
            )
            return f"redis+cluster://{nodes}"
        return f"redis://{self.host}:{self.port}/{self.db}"

    # -- connection, errors and keys ------------------------------------------------------

    @contextmanager
    def _translate(self, op: str, *, writes: bool = False) -> Iterator[redis.Redis]:
        """The client for one operation; every redis-py error becomes `PersistenceError`,
        chained. Ours pass through.

        For an operation that `writes`, a lost connection or a timeout is a
        `WriteOutcomeUnknownError`: the command may have reached the server and run, and only
        its reply was lost (redis-py does not say which; nothing is retried).
        """
        if self._closed:
            raise PersistenceError(f"{self!r} is closed")
        try:
            yield self._client
        except ContextError:
            raise
        except REDIS_ERRORS as exc:
            where = f"redis {op} on {self._url()}"
            detail = f"{type(exc).__name__}: {exc}"
            if writes and isinstance(exc, _CONNECTION_ERRORS):
                raise WriteOutcomeUnknownError(
                    f"{where}: the connection failed while the write was under way, so it "
                    f"may or may not have been applied ({detail})"
                ) from exc
            raise PersistenceError(f"{where} failed: {detail}") from exc

    def _key(self, name: str, part: str) -> str:
        return f"{self.prefix}:{{{name}}}:{part}"

    def _keys(self, name: str, *parts: str) -> list[str]:
        return [self._key(name, part) for part in parts]

    def _all_keys(self, name: str) -> list[str]:
        return self._keys(name, "meta", "heads", "points", "point_blobs", "journal")

    def _check_schema(self) -> None:
        key = f"{self.prefix}:schema"
        with self._translate("open") as client:
            stamp = self._stamp_script([key], [SCHEMA_VERSION], client)
        layout = self._layout(key, stamp)
        if layout < SCHEMA_VERSION:
            # Layout 1 is layout 2 without journals. Stamp it 2 so that a process of an older
            # version, which would ignore journal entries, refuses the prefix from now on;
            # only if the stamp is still the one read (never over a newer one).
            with self._translate("open") as client:
                stamp = self._upgrade_script([key], [stamp, SCHEMA_VERSION], client)
            self._layout(key, stamp)

    def _layout(self, key: str, stamp: object) -> int:
        """The layout version `stamp` names, if this library reads it."""
        text = stamp.decode("ascii", "replace") if isinstance(stamp, bytes) else repr(stamp)
        if not text.isdigit():
            raise UnsupportedFormatError(
                f"{key} holds {text!r}: prefix {self.prefix!r} belongs to another application"
            )
        if int(text) > SCHEMA_VERSION:
            raise UnsupportedFormatError(
                f"{key} is layout version {text}; this library reads up to {SCHEMA_VERSION}"
            )
        return int(text)

    def close(self) -> None:
        """Close the change subscription and the connection pool; later calls raise
        `PersistenceError`."""
        self._closed = True
        with self._watch_lock:
            if self._listener is not None:
                self._listener.close()
        if self._owns_client:
            self._client.close()

    # -- change notification ---------------------------------------------------------------

    def change_token(self) -> object | None:
        """A counter of the change messages heard: it changes iff a write that moved a head
        (of this process or another) was published since the last call.

        One server: the messages on `channel`, every context's. The first call subscribes,
        on a connection of its own, and waits for the server to confirm, so no write after
        it goes unnoticed. Later calls read the pending messages without waiting.

        A Redis Cluster with sharded pub/sub (`sharded`): the messages on the shard channels
        of the contexts last named to `follow()`; each call first subscribes to newly
        followed contexts (waiting for the confirmations, and counting one) and leaves the
        others. None until `follow()` is called. A cluster without it: always None (read
        the heads: `head_versions()` is one pipelined round trip per master).

        If a subscription fails (the server restarted, a timeout, a slot moved), the call
        returns None (read the heads) and the next call subscribes again, with a token
        unlike any before.

        Raises:
            PersistenceError: the store is closed.
        """
        listener = self._listener
        if listener is None:
            if self._closed:
                raise PersistenceError(f"{self!r} is closed")
            return None
        with self._watch_lock:
            try:
                with self._translate("watch changes"):
                    return listener.token()
            except PersistenceError:
                if self._closed:
                    raise
                listener.reset()
                return None

    def follow(self, names: Collection[str]) -> None:
        """On a cluster with sharded pub/sub, listen to exactly these contexts' shard
        channels from the next `change_token()` call on; elsewhere nothing (one server's
        channel carries every context). No I/O."""
        if isinstance(self._listener, ShardListener):
            self._listener.follow(names)

    def _head_versions(self, names: list[str]) -> dict[str, int]:
        # One pipeline, one round trip (per node, on a cluster), however many names.
        with self._translate("read versions") as client, client.pipeline(False) as pipe:
            for name in names:
                pipe.hget(self._key(name, "meta"), "version")
            replies = cast("list[bytes | None]", pipe.execute())
        return {
            name: int(version)
            for name, version in zip(names, replies, strict=True)
            if version is not None
        }

    # -- primitives ------------------------------------------------------------------------

    def _create(self, name: str, version: int, blob: bytes) -> None:
        keys = self._all_keys(name)
        with self._translate("create", writes=True):
            args: list[str | bytes] = [_decimal(version), blob, self._publish_to(name), name]
            created = self._create_script(keys, args, self._client)
        if not created:
            raise ContextExistsError(name)

    def _read_head(self, name: str) -> tuple[int, bytes]:
        keys = self._keys(name, "meta", "heads")
        with self._translate("read head"):
            reply = self._read_head_script(keys, [], self._client)
        if reply is None:
            raise ContextNotFoundError(name)
        version, blob = cast("list[bytes | None]", reply)
        assert version is not None  # the script returns a version: the snapshot's or the head
        if blob is None:
            raise CorruptSnapshotError(
                f"context {name!r}: no snapshot at or below head version {int(version)}"
            )
        return int(version), blob

    def _head_version(self, name: str) -> int:
        with self._translate("read version") as client:
            version = cast("bytes | None", client.hget(self._key(name, "meta"), "version"))
        if version is None:
            raise ContextNotFoundError(name)
        return int(version)

    supports_journal = True
    commits_in_batches = True

    def _commit(self, writes: list[Write]) -> list[ContextError | None]:
        # Each script is atomic on its own; the batch is not one transaction, but it is one
        # round trip per server (and with `appendfsync always` about one fsync: the server
        # syncs once for what it ran in one turn of its event loop). Several writes of one
        # context chain (v+1, v+2, ...): its consecutive journal entries go in one script
        # (APPEND_CHAIN), a snapshot alone, and each round trip carries one such unit per
        # context, since scripts in one pipeline cannot see each other's outcome and a write
        # after a refused one of its context must not be applied (see Store.commit). As in
        # one pipeline, a server error fails the batch once all is sent.
        queues: dict[str, list[list[int]]] = {}
        for i, write in enumerate(writes):
            units = queues.setdefault(write.context, [])
            if units and _chains(writes[units[-1][-1]], write):
                units[-1].append(i)
            else:
                units.append([i])
        results: list[ContextError | None] = [None] * len(writes)
        failure: Exception | None = None
        with self._translate("commit", writes=True) as client:
            while queues:
                now = [(name, units.pop(0)) for name, units in queues.items()]
                calls = [self._unit_call([writes[i] for i in unit]) for _, unit in now]
                if len(calls) == 1:  # the script object loads itself if the server lacks it
                    script, keys, args = calls[0]
                    replies = [script(keys, args, client)]
                else:
                    replies = self._run_scripts(client, calls, check=False)
                for (name, unit), reply in zip(now, replies, strict=True):
                    if isinstance(reply, Exception):
                        failure = failure or reply
                        queues[name] = []  # nothing of it after what may not be stored
                    elif (outcome := _outcome(writes[unit[0]], reply)) is not None:
                        for i in (*unit, *(i for later in queues[name] for i in later)):
                            results[i] = outcome
                        queues[name] = []
                queues = {name: units for name, units in queues.items() if units}
            if failure is not None:
                raise failure  # _translate maps it
        return results

    def _unit_call(self, writes: list[Write]) -> tuple[Script, list[str], list[str | bytes | int]]:
        """The script that applies `writes` (one write, or journal entries that chain)."""
        if len(writes) == 1:
            return self._script_call(writes[0])
        first = writes[0]
        keys = self._keys(first.context, "meta", "heads", "journal", "lease")
        fence = "" if first.lease is None else _decimal(first.lease)
        args: list[str | bytes | int] = [
            _decimal(first.expected),
            self._publish_to(first.context),
            first.context,
            fence,
        ]
        for write in writes:
            args += (_decimal(write.version), write.blob)
        return self._append_chain_script, keys, args

    def _script_call(self, write: Write) -> tuple[Script, list[str], list[str | bytes | int]]:
        """The script that applies `write`, its keys and its arguments."""
        expected, version = _decimal(write.expected), _decimal(write.version)
        keys = self._keys(write.context, "meta", "heads", "journal", "lease")
        publish = [self._publish_to(write.context), write.context]
        fence = "" if write.lease is None else _decimal(write.lease)  # '': not checked
        if write.journal:
            return self._append_script, keys, [expected, version, write.blob, *publish, fence]
        args: list[str | bytes | int] = [expected, version, write.blob, self.retain_heads]
        return self._cas_script, keys, [*args, *publish, fence]

    # -- leases: the hash `<prefix>:{name}:lease`, in the context's slot ----------------------

    supports_leases = True

    def _acquire_lease(self, name: str, owner: str, ttl: float) -> Lease:
        keys = [self._key(name, "lease")]
        with self._translate("acquire lease", writes=True):
            reply = self._acquire_lease_script(keys, [owner, _micros(ttl)], self._client)
        status, *rest = cast("list[bytes | None]", reply)
        if status == b"taken":
            holder, left = rest
            assert holder is not None
            assert left is not None
            raise NotOwner(name, holder.decode("utf-8", "replace"), int(left) / 1_000_000)
        epoch, wanted = rest
        assert epoch is not None
        return Lease(name, owner, int(epoch), ttl, _text(wanted))

    def _renew_leases(self, owner: str, epochs: dict[str, int], ttl: float) -> dict[str, Lease]:
        micros = _micros(ttl)
        calls: list[tuple[Script, list[str], list[str | bytes | int]]] = [
            (self._renew_lease_script, [self._key(name, "lease")], [owner, _decimal(epoch), micros])
            for name, epoch in epochs.items()
        ]
        # One round trip for them all (per node, on a cluster): each renew is atomic alone.
        with self._translate("renew leases", writes=True) as client:
            replies = self._run_lease_scripts(client, calls)
        return {name: _lease(name, reply) for name, reply in zip(epochs, replies, strict=True)}

    def _read_leases(self, names: list[str]) -> dict[str, Lease]:
        calls: list[tuple[Script, list[str], list[str | bytes | int]]] = [
            (self._read_lease_script, [self._key(name, "lease")], []) for name in names
        ]
        with self._translate("read leases") as client:
            replies = self._run_lease_scripts(client, calls)
        return {name: _lease(name, reply) for name, reply in zip(names, replies, strict=True)}

    def _release_lease(self, name: str, owner: str, epoch: int) -> None:
        keys = [self._key(name, "lease")]
        with self._translate("release lease", writes=True):
            self._release_lease_script(keys, [owner, _decimal(epoch)], self._client)

    def _run_lease_scripts(
        self, client: Any, calls: list[tuple[Script, list[str], list[str | bytes | int]]]
    ) -> list[Any]:
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [script(keys, args, client)]
        return self._run_scripts(client, calls)

    def _run_scripts(
        self,
        client: Any,
        calls: list[tuple[Script, list[str], list[str | bytes | int]]],
        *,
        check: bool = True,
    ) -> list[Any]:
        """Run the scripts, one round trip per server, and return their replies in order.

        On a cluster the calls are grouped by the node that serves their keys' slot and
        each group is one pipeline to that node (the cluster pipeline refuses scripts). A
        reply that says the slot is elsewhere (MOVED, ASK, TRYAGAIN: the script did not run)
        is sent again alone through the cluster client, which follows the redirect.
        """
        if not self.cluster:
            return self._pipeline(client, calls, check=check)
        groups: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i, (_, keys, _) in enumerate(calls):
            node = client.get_node_from_key(keys[0])
            groups.setdefault(node.name, []).append(i)
            nodes[node.name] = node
        replies: list[Any] = [None] * len(calls)
        for name, indexes in groups.items():
            server = client.get_redis_connection(nodes[name])
            try:
                group = self._pipeline(server, [calls[i] for i in indexes], check=False)
            except _CONNECTION_ERRORS:
                # As the cluster client does for a single command: learn the slots again
                # (a failover may have moved them), so the next batch goes to the new master.
                with contextlib.suppress(*REDIS_ERRORS):
                    client.nodes_manager.initialize()
                raise
            for i, reply in zip(indexes, group, strict=True):
                replies[i] = (
                    self._redirected(client, calls[i]) if isinstance(reply, _REDIRECTS) else reply
                )
        if check:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply  # the first error of the batch; _translate maps it
        return replies

    @staticmethod
    def _redirected(client: Any, call: tuple[Script, list[str], list[str | bytes | int]]) -> Any:
        """One script call sent again through the cluster client; an error as its reply."""
        script, keys, args = call
        try:
            return script(keys, args, client)
        except redis.exceptions.ResponseError as exc:
            return exc  # as a pipeline reports it

    def _pipeline(
        self,
        client: redis.Redis,
        calls: list[tuple[Script, list[str], list[str | bytes | int]]],
        *,
        check: bool = True,
    ) -> list[Any]:
        """Run the scripts in one round trip and return their replies in order.

        The pipeline first loads each script it uses (a no-op for a script the server has
        cached), so no `EVALSHA` in it can fail with NOSCRIPT after a restart emptied the
        cache. redis-py's own pipelined scripts would check the cache in a round trip first.
        Unless `check` is False, the first error among the replies is raised.
        """
        scripts = list(dict.fromkeys(script for script, _, _ in calls))
        with client.pipeline(transaction=False) as pipe:
            for script in scripts:
                pipe.script_load(script.script)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
        for reply in replies[: len(scripts)] if not check else replies:
            if isinstance(reply, Exception):
                raise reply  # the first error of the batch; _translate maps it
        return replies[len(scripts) :]  # unchecked: a script's error is its reply

    def _read_journal(self, name: str, after: int) -> list[tuple[int, bytes]]:
        keys = self._keys(name, "meta", "journal")
        with self._translate("read journal"):
            reply = self._read_journal_script(keys, [_decimal(after)], self._client)
        return _entries(cast("list[bytes]", reply))

    def _read_changes_parts(
        self, name: str, after: int
    ) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        # One script: the reads are one atomic step, whatever other clients write.
        keys = self._keys(name, "meta", "heads", "journal")
        with self._translate("read changes"):
            reply = self._read_changes_script(keys, [_decimal(after)], self._client)
        if reply is None:
            raise ContextNotFoundError(name)
        head, count, *flat = cast("list[bytes]", reply)
        split = 2 * int(count)  # the journal's pairs first, then the snapshots'
        return int(head), _entries(flat[:split]), _entries(flat[split:])

    def _read_latest_parts(self, name: str) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
        # One script: the three reads are one atomic step, whatever other clients write.
        keys = self._keys(name, "meta", "heads", "journal")
        with self._translate("read latest"):
            reply = self._read_latest_script(keys, [], self._client)
        if reply is None:
            raise ContextNotFoundError(name)
        return _latest_parts(name, reply)

    def _read_latest_parts_many(
        self, names: list[str]
    ) -> dict[str, tuple[int, int, bytes, list[tuple[int, bytes]]]]:
        # The script above once per context, all in one round trip per server (each context
        # as of one moment): one pipeline, or on a cluster one per master.
        calls: list[tuple[Script, list[str], list[str | bytes | int]]] = [
            (self._read_latest_script, self._keys(name, "meta", "heads", "journal"), [])
            for name in names
        ]
        with self._translate("read latest") as client:
            replies = self._run_scripts(client, calls)
        return {
            name: _latest_parts(name, reply)
            for name, reply in zip(names, replies, strict=True)
            if reply is not None
        }

    def _export_context(self, name: str) -> ContextExport:
        # One script: every key of the context as of one moment, whatever other clients write.
        keys = self._keys(name, "meta", "heads", "journal", "points", "point_blobs")
        with self._translate("export"):
            reply = self._export_script(keys, [], self._client)
        if reply is None:
            raise ContextNotFoundError(name)
        head, snapshots, entries, _, *flat = cast("list[Any]", reply)
        split = 2 * (snapshots + entries)
        triples = zip(flat[split::3], flat[split + 1 :: 3], flat[split + 2 :: 3], strict=True)
        recovery_points = []
        for point_id, info, blob in triples:
            if blob is None:
                raise CorruptSnapshotError(
                    f"context {name!r}: recovery point {int(point_id)} has no snapshot"
                )
            recovery_points.append((self._point_info(name, int(point_id), info), blob))
        return ContextExport(
            name,
            int(head),
            tuple(_entries(flat[: 2 * snapshots])),
            tuple(_entries(flat[2 * snapshots : split])),
            tuple(recovery_points),
        )

    def _import_context(self, export: ContextExport, *, replace: bool) -> list[int]:
        name = export.name
        count = len(export.recovery_points)
        args: list[str | bytes | int] = [
            int(replace),
            _decimal(export.head),
            self._publish_to(name),
            name,
            len(export.snapshots),
            len(export.journal),
            count,
        ]
        for version, blob in (*export.snapshots, *export.journal):
            args += [_decimal(version), blob]
        with self._translate("import", writes=True) as client:
            # The ids come first, from the store's counter (a script may not touch keys of
            # two slots): a refused import leaves a gap in the ids, as create does.
            last = int(client.incrby(f"{self.prefix}:point_id", count)) if count else 0
            point_ids = list(range(last - count + 1, last + 1))
            for point_id, (point, blob) in zip(point_ids, export.recovery_points, strict=True):
                args += [
                    point_id,
                    _point_record(point.version, point.label, point.created_at),
                    blob,
                ]
            imported = self._import_script(self._all_keys(name), args, client)
        if not imported:
            raise ContextExistsError(name)
        return point_ids

    def _delete(self, name: str) -> None:
        with self._translate("delete", writes=True):
            args = [self._publish_to(name), name]
            deleted = self._delete_script(self._all_keys(name), args, self._client)
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

    def _read_existing(self, name: str, op: str, read: Callable[[Any], object]) -> Any:
        """One read of context `name` by `read(pipeline)`, checked in the same round trip
        that the context exists (its meta key is the record of that)."""
        with self._translate(op) as client, client.pipeline(transaction=True) as pipe:
            pipe.exists(self._key(name, "meta"))
            read(pipe)
            exists, value = pipe.execute()
        if not exists:
            raise ContextNotFoundError(name)
        return value

    def _list_versions(self, name: str) -> list[int]:
        versions = self._read_existing(
            name, "list versions", lambda pipe: pipe.hkeys(self._key(name, "heads"))
        )
        return [int(version) for version in versions]

    def _read_version(self, name: str, version: int) -> bytes:
        blob = self._read_existing(
            name,
            "read snapshot",
            lambda pipe: pipe.hget(self._key(name, "heads"), _decimal(version)),
        )
        if blob is None:
            raise SnapshotNotFoundError(name, version)
        return cast("bytes", blob)

    def _create_recovery_point(
        self, name: str, version: int, label: str | None, created_at: datetime, blob: bytes
    ) -> int:
        keys = self._keys(name, "meta", "points", "point_blobs")
        info = _point_record(version, label, created_at)
        with self._translate("create recovery point", writes=True) as client:
            # The id comes first, from a counter of its own (a script may not touch keys of
            # two slots), so a point for a missing context leaves a gap in the ids.
            point_id = client.incr(f"{self.prefix}:point_id")
            created = self._create_point_script(keys, [point_id, info, blob], self._client)
        if not created:
            raise ContextNotFoundError(name)
        return point_id

    def _list_recovery_points(self, name: str) -> list[RecoveryPoint]:
        infos = self._read_existing(
            name, "list recovery points", lambda pipe: pipe.hgetall(self._key(name, "points"))
        )
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
        with (
            self._translate("read recovery point") as client,
            client.pipeline(transaction=True) as pipe,
        ):
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
        keys = self._keys(name, "points", "point_blobs")
        with self._translate("delete recovery point", writes=True):
            deleted = self._delete_point_script(keys, [field], self._client)
        if not deleted:
            raise RecoveryPointNotFoundError(name, point_id)


def _point_record(version: int, label: str | None, created_at: datetime) -> bytes:
    """A recovery point's record in `<prefix>:{name}:points`, as `_point_info` reads it."""
    return orjson.dumps({"version": version, "label": label, "created_at": created_at.isoformat()})


def _entries(flat: list[bytes]) -> list[tuple[int, bytes]]:
    """Journal entries from a script's flat `[version, blob, version, blob, ...]` reply (in
    no order: hash fields), sorted by version."""
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return sorted((int(version), blob) for version, blob in pairs)


class RedisClusterStore(RedisStore):
    """A `RedisStore` on a Redis Cluster: the same keys, scripts and contract.

    Args:
        nodes: `(host, port)` of one or more nodes to learn the cluster from (any node will
            do; several in case one is down).
        client: a ready `redis.RedisCluster` instead of `nodes` and the credentials (the
            caller keeps it and closes it); it must not retry (`retry=Retry(NoBackoff(), 0)`).
        The other arguments are `RedisStore`'s; a cluster has database 0 only.

    The cluster client follows MOVED and ASK redirects (the command did not run where it was
    refused, so following them cannot apply a write twice) and is built without any other
    retry: a write whose connection fails raises `WriteOutcomeUnknownError`, as on one
    server. Writes are acknowledged by the master alone (Redis replicates asynchronously), so
    a failover can lose the last acknowledged writes of the failed master: see
    docs/storage.md ("Redis Cluster").
    """

    def __init__(
        self,
        nodes: list[tuple[str, int]] | tuple[tuple[str, int], ...] = (("localhost", 6379),),
        *,
        prefix: str = DEFAULT_PREFIX,
        username: str | None = None,
        password: str | None = None,
        socket_timeout: float = DEFAULT_TIMEOUT,
        socket_connect_timeout: float = DEFAULT_TIMEOUT,
        codec: SnapshotCodec | None = None,
        retain_heads: int = DEFAULT_RETAIN_HEADS,
        client: redis.RedisCluster | None = None,
    ) -> None:
        if client is None:
            if not nodes:
                msg = "RedisClusterStore needs at least one node"
                raise ConfigurationError(msg)
            socket_timeout = positive_seconds("socket_timeout", socket_timeout)
            socket_connect_timeout = positive_seconds(
                "socket_connect_timeout", socket_connect_timeout
            )
            try:
                client = redis.RedisCluster(
                    startup_nodes=[
                        redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
                        for host, port in nodes
                    ],
                    username=username,
                    password=password,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_connect_timeout,
                    # Redirects are followed inside the client; no other retry (see above).
                    retry=Retry(NoBackoff(), 0),
                    decode_responses=False,
                )
            except REDIS_ERRORS as exc:
                where = ",".join(f"{host}:{port}" for host, port in nodes)
                msg = f"redis cluster at {where} cannot be reached: {type(exc).__name__}: {exc}"
                raise PersistenceError(msg) from exc
            owns = True
        elif not isinstance(cast("object", client), redis.RedisCluster):
            msg = f"client must be a redis.RedisCluster, not {type(client).__name__}"
            raise ConfigurationError(msg)
        else:
            owns = False
        try:
            super().__init__(
                prefix=prefix,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                codec=codec,
                retain_heads=retain_heads,
                client=client,
            )
        except BaseException:
            if owns:
                client.close()
            raise
        self._owns_client = owns


def _latest_parts(name: str, reply: Any) -> tuple[int, int, bytes, list[tuple[int, bytes]]]:
    """What the read-latest script answered for a stored context, as `_read_latest_parts`."""
    head, newest, blob, *flat = cast("list[bytes | None]", reply)
    assert head is not None  # the script returns the head version first
    if newest is None or blob is None:
        raise CorruptSnapshotError(
            f"context {name!r}: no snapshot at or below head version {int(head)}"
        )
    return int(head), int(newest), blob, _entries(cast("list[bytes]", flat))
