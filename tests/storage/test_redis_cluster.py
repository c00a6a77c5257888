"""What is particular to a RedisStore on a Redis Cluster: the URL, a ready client, contexts
on every master, batches split per node and redirected, no retries, no pub/sub.

The contract, journal and commit-chain suites run on the cluster too (backend
`redis_cluster` in test_store_contract.py and test_journal.py); these are the rest.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storage import (
    ConfigurationError,
    LeaseLost,
    PersistenceError,
    RedisClusterStore,
    RedisStore,
    State,
    open_store,
)
from tests.redis_cluster import RedisClusterServers, free_cluster_port


def _prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


def _client(cluster: RedisClusterServers, **options: Any) -> redis.RedisCluster:
    options.setdefault("retry", Retry(NoBackoff(), 0))
    return redis.RedisCluster(startup_nodes=cluster.startup_nodes(), **options)


def _names_on_every_master(
    cluster: RedisClusterServers, prefix: str, per_master: int = 3
) -> list[str]:
    """Context names whose keys live on each master, `per_master` of each."""
    with cluster.client() as client:
        by_node: dict[str, list[str]] = {}
        i = 0
        while len(by_node) < len(cluster.masters) or any(
            len(names) < per_master for names in by_node.values()
        ):
            name = f"c{i}"
            i += 1
            node = client.get_node_from_key(f"{prefix}:{{{name}}}:meta")
            names = by_node.setdefault(node.name, [])
            if len(names) < per_master:
                names.append(name)
    return [name for names in by_node.values() for name in names]


def _next(store: RedisStore, name: str, **changes: Any) -> Any:
    head = store.read_head(name)
    state = head.snapshot()
    state.version = head.version + 1
    for key, value in changes.items():
        state.set(key, value)
    return store.prepare_snapshot(state, head.version)


# -- the URL --------------------------------------------------------------------------------


def test_a_redis_cluster_url_opens_a_cluster_store(redis_cluster):
    prefix = _prefix()
    url = f"{redis_cluster.url}?prefix={prefix}&socket_timeout=2&retain_heads=2"
    with open_store(url) as store:
        assert isinstance(store, RedisClusterStore)
        assert store.cluster
        assert (store.prefix, store.socket_timeout) == (prefix, 2.0)
        assert store.retain_heads == 2
        store.create(State.new("ctx", {"a": 1}))
        assert store.read_head("ctx").get("a") == 1
        assert repr(store).startswith("RedisClusterStore('redis+cluster://127.0.0.1:")


def test_one_node_of_the_url_is_enough_and_database_0_may_be_named(redis_cluster):
    port = redis_cluster.masters[1].port
    with open_store(f"redis+cluster://127.0.0.1:{port}/0?prefix={_prefix()}") as store:
        store.create(State.new("ctx", {}))
        assert store.list_contexts() == ["ctx"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "redis+cluster://127.0.0.1:7000/1",
            "database 0 only; redis+cluster URL names database '1'",
        ),
        ("redis+cluster://127.0.0.1:7000/x", "database 0 only"),
        ("redis+cluster://", "must be redis+cluster://host:port"),
        ("redis+cluster://a:1,:2", "bad node ':2'"),
        ("redis+cluster://a:1,b:x", "bad node 'b:x'"),
        ("redis+cluster://a:70000", "bad node 'a:70000'"),
        ("redis+cluster://a:1?change_silence=2", "option 'change_silence' is unknown"),
        ("redis+cluster://a:1?prefix=p&prefix=q", "repeats option 'prefix'"),
        ("redis+cluster://u:secret@a:1/3", "***"),
    ],
)
def test_bad_redis_cluster_urls_are_refused_with_what_is_wrong(url, words):
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    assert words in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_url_carries_credentials_to_the_cluster_client(redis_cluster, monkeypatch):
    seen: dict[str, Any] = {}
    original = RedisClusterStore.__init__

    def spy(self, nodes=(), **options):
        seen.update(options, nodes=list(nodes))
        original(
            self, nodes, **{k: v for k, v in options.items() if k not in ("username", "password")}
        )

    monkeypatch.setattr(RedisClusterStore, "__init__", spy)
    port = redis_cluster.masters[0].port
    with open_store(f"redis+cluster://me:p%40ss@127.0.0.1:{port},[::1]:7001?prefix={_prefix()}"):
        pass
    assert (seen["username"], seen["password"]) == ("me", "p@ss")
    assert seen["nodes"] == [("127.0.0.1", port), ("::1", 7001)]


# -- a ready client -------------------------------------------------------------------------


def test_a_store_takes_a_ready_cluster_client_and_leaves_it_open(redis_cluster):
    client = _client(redis_cluster)
    try:
        for store in (
            RedisStore(client=client, prefix=_prefix()),
            RedisClusterStore(client=client, prefix=_prefix()),
        ):
            assert store.cluster
            store.create(State.new("ctx", {"a": 1}))
            assert store.read_head("ctx").get("a") == 1
            store.close()
        assert client.ping()  # the caller's client is the caller's to close
    finally:
        client.close()


def test_a_ready_client_that_retries_or_decodes_is_refused(redis_cluster):
    retrying = redis.RedisCluster(startup_nodes=redis_cluster.startup_nodes())
    decoding = _client(redis_cluster, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="retries commands"):
            RedisStore(client=retrying)
        with pytest.raises(ConfigurationError, match="decode_responses=False"):
            RedisClusterStore(client=decoding)
        with pytest.raises(ConfigurationError, match="not both"):
            RedisStore("127.0.0.1", client=decoding)
    finally:
        retrying.close()
        decoding.close()


def test_the_cluster_store_retries_no_command(redis_cluster):
    """Only redirects are followed: a compare-and-set whose reply was lost is never sent
    again (it could be applied twice), at the cluster level nor at a node's."""
    with open_store(f"{redis_cluster.url}?prefix={_prefix()}") as store:
        assert store._client.retry.get_retries() == 0
        for node in store._client.get_nodes():
            connection = store._client.get_redis_connection(node)
            assert connection.get_retry().get_retries() == 0


# -- contexts on every master ---------------------------------------------------------------


def test_list_contexts_sees_the_contexts_of_every_master(redis_cluster):
    prefix = _prefix()
    names = _names_on_every_master(redis_cluster, prefix)
    with RedisClusterStore([("127.0.0.1", redis_cluster.masters[0].port)], prefix=prefix) as store:
        for name in names:
            store.create(State.new(name, {"n": 0}))
        assert sorted(store.list_contexts()) == sorted(names)
        assert store.head_versions([*names, "missing"]) == dict.fromkeys(names, 0)


def test_a_batch_across_every_master_is_applied_with_its_chains_and_refusals(redis_cluster):
    prefix = _prefix()
    names = _names_on_every_master(redis_cluster, prefix, per_master=2)
    with open_store(f"{redis_cluster.url}?prefix={prefix}") as store:
        for name in names:
            store.create(State.new(name, {"n": 0}))
        first = [_next(store, name, n=1) for name in names]
        # A stale write of the first context: refused, and so is the one chained after it.
        assert store.commit(first) == [None] * len(names)
        old = store.read_head(names[0])
        old.version = 6
        stale = store.prepare_snapshot(old, 5)
        results = store.commit([stale, _next(store, names[0], n=2), _next(store, names[1], n=2)])
        assert [type(result).__name__ for result in results] == [
            "VersionConflict",
            "VersionConflict",
            "NoneType",
        ]
        assert store.head_versions(names) == {name: 2 if name == names[1] else 1 for name in names}


def test_leases_on_every_master_are_renewed_together_and_fence_a_batch(redis_cluster):
    """Leases of contexts in slots of every master: one renew reaches them all (a pipeline
    per master), and a batch across masters is fenced per context, each on its own master."""
    prefix = _prefix()
    names = _names_on_every_master(redis_cluster, prefix, per_master=2)
    with open_store(f"{redis_cluster.url}?prefix={prefix}") as store:
        for name in names:
            store.create(State.new(name, {"n": 0}))
        epochs = {name: store.acquire_lease(name, "p1", 30).epoch for name in names}
        lost = names[0]
        store.release_lease(lost, "p1", epochs[lost])
        renewed = store.renew_leases("p1", epochs, 60)
        assert not renewed[lost].held
        assert renewed[lost].epoch == 1
        assert all(renewed[name].held_by("p1", 1) for name in names[1:])
        assert all(renewed[name].expires_in > 30 for name in names[1:])
        read = store.read_leases(names)
        assert [read[name].held for name in names] == [False] + [True] * (len(names) - 1)
        writes = [
            store.prepare_snapshot(_state_after(store, name), 0, lease=epochs[name])
            for name in names
        ]
        results = store.commit(writes)
        assert isinstance(results[0], LeaseLost)
        assert results[1:] == [None] * (len(names) - 1)
        assert store.head_versions(names) == {name: 0 if name == lost else 1 for name in names}


def _state_after(store: RedisStore, name: str) -> Any:
    state = store.read_head(name).snapshot()
    state.version += 1
    state.set("n", state.version)
    return state


def test_a_batch_whose_slot_moved_is_redirected(redis_cluster, monkeypatch):
    """The store's map of slots is stale (a slot moved to another master since it was
    read): the node refuses the scripts with MOVED, and the store sends them again where the
    cluster says, once each."""
    prefix = _prefix()
    with open_store(f"{redis_cluster.url}?prefix={prefix}") as store:
        store.create(State.new("moving", {"n": 0}))
        store.create(State.new("staying", {"n": 0}))
        key = f"{prefix}:{{moving}}:meta"
        slot = store._client.keyslot(key)
        source = store._client.get_node_from_key(key)
        writes = [_next(store, "moving", n=1), _next(store, "staying", n=1)]
        writes.append(_next_after(store, writes[0], n=2))
        redis_cluster.move_slot(slot, source.port)  # behind the store's back
        redirected = []
        resend = RedisStore._redirected

        def spy(client: Any, call: Any) -> Any:
            redirected.append(call[1][0])
            return resend(client, call)

        monkeypatch.setattr(RedisStore, "_redirected", staticmethod(spy))
        assert store.commit(writes) == [None, None, None]
        assert redirected == [key]  # then the client knew where the slot is
        assert store.head_versions(["moving", "staying"]) == {"moving": 2, "staying": 1}
        assert store.read_head("moving").get("n") == 2
        assert store._client.get_node_from_key(key).port != source.port


def _next_after(store: RedisStore, write: Any, **changes: Any) -> Any:
    state = store.codec.decode(write.blob)
    following = state.snapshot()
    following.version = state.version + 1
    for key, value in changes.items():
        following.set(key, value)
    return store.prepare_snapshot(following, state.version)


# -- change notification --------------------------------------------------------------------


def test_a_cluster_store_publishes_nothing_and_has_no_change_token(redis_cluster):
    """PUBLISH on a cluster reaches every node: the scripts publish nothing there, and
    change_token() is None, so a watcher reads head versions instead."""
    prefix = _prefix()
    with open_store(f"{redis_cluster.url}?prefix={prefix}") as store:
        node = redis_cluster.masters[0].client()
        pubsub = node.pubsub()
        try:
            pubsub.psubscribe(f"{prefix}:*")
            assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
            store.create(State.new("ctx", {"n": 0}))
            store.commit([_next(store, "ctx", n=1)])
            store.delete("ctx")
            assert pubsub.get_message(timeout=0.5) is None
        finally:
            pubsub.close()
            node.close()
        assert store.change_token() is None
        store.close()
        with pytest.raises(Exception, match="closed"):
            store.change_token()


# -- failover -------------------------------------------------------------------------------


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of this test's own, since the test kills one of its masters."""
    cluster = RedisClusterServers(tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
def test_a_master_killed_under_load_fails_its_contexts_typed_then_writes_resume(own_cluster):
    """SIGKILL of one master while every master takes writes: its contexts fail with
    `PersistenceError` (nothing else) until its replica is promoted, then take writes again;
    the other masters' contexts are not interrupted."""
    prefix = _prefix()
    names = _names_on_every_master(own_cluster, prefix, per_master=1)
    store = RedisClusterStore(
        [("127.0.0.1", node.port) for node in own_cluster.masters],
        prefix=prefix,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )
    victim_port = store._client.get_node_from_key(f"{prefix}:{{{names[0]}}}:meta").port
    victim = next(node for node in own_cluster.masters if node.port == victim_port)
    for name in names:
        store.create(State.new(name, {"n": 0}))
    stop = threading.Event()
    acknowledged = dict.fromkeys(names, 0)
    errors: dict[str, list[BaseException]] = {name: [] for name in names}
    resumed = threading.Event()
    killed = threading.Event()

    def load(name: str) -> None:
        while not stop.is_set():
            try:
                head = store.read_head(name)
                state = head.snapshot()
                state.version = head.version + 1
                state.set("n", head.get("n") + 1)
                store.compare_and_set(state, head.version)
                acknowledged[name] += 1
                if killed.is_set() and name == names[0] and errors[name] and not resumed.is_set():
                    window.append(time.monotonic() - window[0])
                    resumed.set()
            except BaseException as exc:  # every kind is recorded, then checked
                errors[name].append(exc)
                time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        before = dict(acknowledged)
        window = [time.monotonic()]
        victim.kill()
        killed.set()
        assert resumed.wait(60), f"no write after the failover: {errors[names[0]][-3:]}"
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert all(acknowledged[name] > before[name] for name in names)
    assert errors[names[0]], "the killed master's context never failed"
    print(f"writes resumed {window[1]:.1f} s after the kill; {len(errors[names[0]])} errors")
    assert all(isinstance(exc, PersistenceError) for exc in errors[names[0]]), {
        type(exc).__name__ for exc in errors[names[0]]
    }
    # The other masters kept serving: their contexts failed at most while the client
    # re-read the slots, and only with PersistenceError.
    for name in names[1:]:
        assert all(isinstance(exc, PersistenceError) for exc in errors[name])
    # The promoted replica serves the context from where replication had brought it.
    assert store.head_version(names[0]) >= 1
    store.close()


def test_a_store_takes_a_ready_plain_client_too(redis_server):
    client = redis.Redis(port=redis_server.port, retry=Retry(NoBackoff(), 0))
    try:
        store = RedisStore(client=client, prefix=_prefix())
        assert not store.cluster
        assert (store.host, store.port, store.db) == ("localhost", redis_server.port, 0)
        store.create(State.new("ctx", {"a": 1}))
        assert store.change_token() is not None  # one server: the change channel
        store.close()
        assert client.ping()
        with pytest.raises(ConfigurationError, match="retries commands"):
            RedisStore(client=redis.Redis(port=redis_server.port))
        with pytest.raises(ConfigurationError, match=r"redis\.RedisCluster"):
            RedisClusterStore(client=client)  # type: ignore[arg-type]
    finally:
        client.close()


def test_an_unreachable_cluster_is_a_persistence_error():
    port = free_cluster_port()
    with pytest.raises(PersistenceError, match=f"127.0.0.1:{port} cannot be reached"):
        RedisClusterStore([("127.0.0.1", port)], socket_connect_timeout=1.0)
