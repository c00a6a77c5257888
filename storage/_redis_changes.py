"""What `RedisStore.change_token()` listens to: the change messages its write scripts publish.

- One server: every script that moves a head PUBLISHes `<name> <version>` on the store's
  channel `<prefix>:changes`, and a `ChannelListener` SUBSCRIBEs there on a connection of
  its own: one channel, every write of every process.
- A Redis Cluster whose masters all have sharded pub/sub (Redis 7 or later, Valkey): the
  scripts SPUBLISH on the context's shard channel `<prefix>:{<name>}:changes`, which hashes
  to the slot of the context's keys, so a message goes to that slot's master and its
  replicas only (a PUBLISH would cross the cluster bus to every node). A `ShardListener`
  SSUBSCRIBEs to the channels of exactly the contexts the store was told to `follow()`, one
  connection per master that serves any of them.
- A cluster without it (Redis 6.2): nothing is published, and the watcher polls head versions.

Any failure (a lost connection, a PING left unanswered, a slot that moved away from the node
a channel was subscribed at) is raised to the store, which throws the failed subscriptions
away (on a cluster, those of the masters that failed; the others stand), returns None (read
the heads) and subscribes again at the next call, with a token unlike any before: pub/sub
keeps nothing for a subscriber that was away, so a gap must be covered by a head read, never
by a silent resubscription. That is why redis-py's own cluster pub/sub, which resubscribes by
itself after a reconnect or a slot move, is not used, and why a cluster subscription's
connection comes from a pool of its own (`_node_pubsub`).
docs/storage.md ("Change channel", "Redis Cluster").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, cast

import redis
import redis.exceptions
from redis.client import PubSub

__all__ = ["DRAIN_LIMIT", "ChannelListener", "ShardListener", "sharded_pubsub"]

# The clients are `Any`, as in RedisStore: a `redis.Redis` for a ChannelListener, a
# `redis.RedisCluster` for the rest, whose methods redis-py leaves untyped.

DRAIN_LIMIT = 10_000
"""The most change messages one `change_token()` call reads from one connection; any more
wait for the next call."""

_ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)
"""What a subscription's commands may raise: redis-py's errors (a cluster's too, such as a
slot no master serves) and socket errors."""


def sharded_pubsub(client: Any) -> bool:
    """Whether every master of the cluster has sharded pub/sub (SPUBLISH, SSUBSCRIBE): Redis
    7 or later, which Valkey also reports as `redis_version`. A user whose ACL denies INFO
    cannot tell: no (the store polls, as on Redis 6.2)."""
    for node in client.get_primaries():
        try:
            info = client.get_redis_connection(node).info("server")
        except redis.exceptions.NoPermissionError:
            return False
        major = str(info.get("redis_version", "0")).split(".", 1)[0]
        if not major.isdigit() or int(major) < 7:
            return False
    return True


def _node_pubsub(client: Any, node: Any) -> PubSub:
    """A pub/sub connection to cluster node `node`, from a pool of its own with the node
    pool's settings (timeouts, credentials, no retries). Not from the node's pool: the
    cluster client marks every connection of a node's pool for reconnection whenever it
    learns the slots again (after any MOVED or failed command), and redis-py's PubSub would
    then reconnect and subscribe again by itself, losing what was published in between
    without a word."""
    pool = client.get_redis_connection(node).connection_pool
    own = redis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=1, **pool.connection_kwargs
    )
    return PubSub(own)


class _Subscription:
    """One pub/sub connection: counts the change messages it reads and knows when it last
    heard from its server."""

    def __init__(
        self,
        pubsub: PubSub,
        socket_timeout: float,
        change_silence: float,
        *,
        owns_pool: bool = False,
    ) -> None:
        self.pubsub = pubsub
        self._owns_pool = owns_pool  # a pool of its own, to close with it (_node_pubsub)
        self.changes = 0  # change messages read
        self.leaving: set[bytes] = set()  # shard channels we asked to leave, not yet confirmed
        self._timeout = socket_timeout
        self._silence = change_silence
        self._heard = time.monotonic()  # when the connection last received anything
        self._pinged: float | None = None  # when its unanswered PING was sent, if one was

    def drain(self) -> None:
        """Read every pending message without waiting (at most `DRAIN_LIMIT`)."""
        for _ in range(DRAIN_LIMIT):
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return
            self._handle(message)

    def wait_for(self, kind: str, count: int, what: str) -> None:
        """Wait for `count` confirmations of type `kind` (`subscribe`, `ssubscribe`) within
        `socket_timeout`: commands are sent without waiting, and a write published before
        the server subscribed us would be missed by a head read made after it."""
        deadline = time.monotonic() + self._timeout
        while count > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"no reply to {what} within {self._timeout} s"
                raise redis.exceptions.TimeoutError(msg)
            message = self.pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == kind:
                count -= 1
            elif message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        self._heard, self._pinged = time.monotonic(), None  # a pong counts too
        kind = message["type"]
        if kind in ("message", "smessage"):
            self.changes += 1
        elif kind == "sunsubscribe":
            channel = message["channel"]
            if channel not in self.leaving:
                # The server dropped us: the channel's slot left this node (a failover, a
                # resharding); what it publishes now goes where we do not listen.
                msg = f"the server ended the subscription to {channel!r}: its slot moved"
                raise redis.exceptions.ConnectionError(msg)
            self.leaving.discard(channel)

    def check_alive(self) -> None:
        """A connection whose peer vanished without closing it (a crashed host, a NAT that
        forgot it) reads as silence forever: after `change_silence` quiet seconds, PING;
        with no answer within `socket_timeout`, fail (the store subscribes again)."""
        now = time.monotonic()
        if self._pinged is None:
            if now - self._heard >= self._silence:
                self.pubsub.ping()
                self._pinged = now
        elif now - self._pinged >= self._timeout:
            msg = (
                f"the change subscription heard nothing for {now - self._heard:.1f} s and "
                f"did not answer a PING within {self._timeout} s"
            )
            raise redis.exceptions.TimeoutError(msg)

    def close(self) -> None:
        with contextlib.suppress(*_ERRORS):  # it is being thrown away
            self.pubsub.close()
            if self._owns_pool:
                self.pubsub.connection_pool.disconnect()


class ChannelListener:
    """The change token of a store on one server: the messages on its one channel."""

    def __init__(
        self, client: Any, channel: str, socket_timeout: float, change_silence: float
    ) -> None:
        self._client = client
        self._channel = channel
        self._timeout = socket_timeout
        self._silence = change_silence
        self._subscription: _Subscription | None = None
        self._count = 0  # messages read, plus one per subscription

    def token(self) -> int:
        """Subscribe if not subscribed (and count one), else read what is pending; the count.

        Raises:
            redis.exceptions.RedisError: the subscription failed; `reset()`, then call again.
        """
        subscription = self._subscription
        if subscription is None:
            # A connection from the store's pool, so with its timeouts and no retries.
            pubsub = self._client.pubsub()
            subscription = self._subscription = _Subscription(pubsub, self._timeout, self._silence)
            pubsub.subscribe(self._channel)
            subscription.wait_for("subscribe", 1, f"SUBSCRIBE {self._channel}")
            self._count += 1  # writes before now were not counted: look at the heads
        before = subscription.changes
        subscription.drain()
        subscription.check_alive()
        self._count += subscription.changes - before
        return self._count

    def reset(self) -> None:
        """Give the subscription up; the next `token()` subscribes again."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    close = reset


class ShardListener:
    """The change token of a store on a Redis Cluster with sharded pub/sub: the messages on
    the shard channels of the contexts last named to `follow()`, one connection per master
    serving any of them."""

    def __init__(
        self,
        client: Any,
        channel_of: Callable[[str], str],
        socket_timeout: float,
        change_silence: float,
    ) -> None:
        self._client = client
        self._channel_of = channel_of
        self._timeout = socket_timeout
        self._silence = change_silence
        self._wanted: frozenset[str] | None = None  # None: follow() never called
        self._nodes: dict[str, _Subscription] = {}  # by node name
        self._where: dict[str, str] = {}  # subscribed context -> its node's name
        self._count = 0  # messages read, plus one per change of subscriptions
        self._errors: list[BaseException] = []  # of the last token() call
        self._failed: set[str] = set()  # the masters whose work failed in it

    def follow(self, names: Collection[str]) -> None:
        """Listen to exactly these contexts from the next `token()` call on (no I/O here)."""
        self._wanted = frozenset(names)  # one assignment: safe beside a token() under way

    @property
    def followed(self) -> frozenset[str]:
        """The contexts subscribed to right now."""
        return frozenset(self._where)

    def token(self) -> int | None:
        """Bring the subscriptions in line with `follow()` (and count one if any was added),
        read what is pending; the count, or None if `follow()` was never called.

        A master that fails does not stop the others: its error is raised once every
        master has been served, and `reset()` then gives up its subscriptions only.

        Raises:
            redis.exceptions.RedisError: a subscription failed; `reset()`, then call again.
        """
        wanted = self._wanted
        if wanted is None:
            return None
        self._errors, self._failed = [], set()
        self._leave([name for name in self._where if name not in wanted])
        joining = [name for name in wanted if name not in self._where]
        if joining:
            self._join(joining)
            self._count += 1  # writes before now were not heard: look at the heads
        for node_name, subscription in self._nodes.items():
            if node_name in self._failed:
                continue
            with self._guard(node_name):
                before = subscription.changes
                try:
                    subscription.drain()
                    subscription.check_alive()
                finally:
                    self._count += subscription.changes - before
        if self._errors:
            raise self._errors[0]
        return self._count

    @contextlib.contextmanager
    def _guard(self, node_name: str | None) -> Iterator[None]:
        """Note an error of the work on `node_name` (None: no master yet) and go on."""
        try:
            yield
        except _ERRORS as exc:
            self._errors.append(exc)
            if node_name is not None:
                self._failed.add(node_name)

    def _join(self, names: list[str]) -> None:
        by_node: dict[str, dict[int, list[str]]] = {}
        for name in names:
            channel = self._channel_of(name)
            node = None
            with self._guard(None):  # a slot no master serves now: not joined, try later
                node = self._client.get_node_from_key(channel)
            if node is None:
                continue
            if node.name not in self._nodes:
                pubsub = _node_pubsub(self._client, node)
                self._nodes[node.name] = _Subscription(
                    pubsub, self._timeout, self._silence, owns_pool=True
                )
            slots = by_node.setdefault(node.name, {})
            slots.setdefault(self._client.keyslot(channel), []).append(channel)
            self._where[name] = node.name
        # SSUBSCRIBE takes channels of one slot only: one command per slot, all of a master's
        # sent before its confirmations are awaited (one round trip per master).
        for node_name, slots in by_node.items():
            with self._guard(node_name):
                subscription = self._nodes[node_name]
                for channels in slots.values():
                    subscription.pubsub.ssubscribe(*channels)
                count = sum(len(channels) for channels in slots.values())
                subscription.wait_for("ssubscribe", count, f"SSUBSCRIBE on {node_name}")

    def _leave(self, names: list[str]) -> None:
        by_node: dict[str, list[str]] = {}
        for name in names:
            by_node.setdefault(self._where.pop(name), []).append(name)
        remaining = set(self._where.values())
        for node_name, leaving in by_node.items():
            subscription = self._nodes[node_name]
            if node_name not in remaining:
                del self._nodes[node_name]  # nothing left there: close the connection
                subscription.close()
                continue
            with self._guard(node_name):
                for name in leaving:  # one channel a command: SUNSUBSCRIBE is per slot too
                    channel = self._channel_of(name)
                    subscription.leaving.add(channel.encode())
                    cast("Any", subscription.pubsub).sunsubscribe(channel)

    def reset(self) -> None:
        """After `token()` failed: give up the subscriptions of the masters that failed
        (every subscription if the failure is not known; the followed names stay). The next
        `token()` subscribes again to those contexts at the masters that serve them then."""
        failed, errors = self._failed, self._errors
        self._failed, self._errors = set(), []
        if failed:
            for node_name in failed:
                if node_name in self._nodes:
                    self._nodes.pop(node_name).close()
            self._where = {name: node for name, node in self._where.items() if node not in failed}
        elif not errors:
            self.close()  # not raised by a master's work: start again everywhere
        # A failover or a resharding may be why: learn the slots again, so the next
        # subscriptions go to the masters that serve them now.
        with contextlib.suppress(*_ERRORS):
            self._client.nodes_manager.initialize()

    def close(self) -> None:
        """Give every subscription up."""
        nodes, self._nodes, self._where = self._nodes, {}, {}
        for subscription in nodes.values():
            subscription.close()
