"""End to end: examples/web_service.py under a real uvicorn server, driven over HTTP.

One run per worker count. Each run starts the app as a child process on a SQLite file, sends
concurrent adds to 20 carts and checks the counts are exact, checks that bad input gets a
4xx with the library's message, then sends SIGTERM while a second wave of adds is in flight
and checks the server exits within 5 s (see `_exit_limit` for several workers) and the file
holds every add it acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest

from actors import create_manager

ROOT = Path(__file__).resolve().parent.parent
CARTS = [f"cart-{i}" for i in range(20)]
ITEMS = ("apple", "pear", "fig")
ADDS = 200
CONCURRENCY = 40
INT_MAX = 2**63 - 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(db: Path, log: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn on the example app; return the process and its base URL once it answers.

    The port is free when chosen but could be taken before uvicorn binds it: then uvicorn
    exits at once and another port is tried.
    """
    env = {**os.environ, "CARTS_STORE_URL": f"sqlite:///{db}"}
    for _ in range(3):
        port = _free_port()
        command = [
            *(sys.executable, "-m", "uvicorn", "examples.web_service:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            *("--log-level", "info", "--no-access-log"),
        ]
        with log.open("ab") as out:
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        base = f"http://127.0.0.1:{port}"
        if _wait_until_answering(server, base):
            return server, base
    pytest.fail(f"the server did not start:\n{log.read_text()}")


def _wait_until_answering(server: subprocess.Popen[bytes], base: str) -> bool:
    # uvicorn offers nothing to wait on, so poll: a 404 for an unknown cart means the app
    # is up and its manager answers.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            if httpx.get(f"{base}/carts/no-such-cart", timeout=1).status_code == 404:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.kill()
    server.wait()
    return False


def _plan(count: int, seed: int) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    return [(rng.choice(CARTS), rng.choice(ITEMS), rng.randint(1, 9)) for _ in range(count)]


async def _add(client: httpx.AsyncClient, cart: str, item: str, quantity: int) -> httpx.Response:
    return await client.post(f"/carts/{cart}/items", json={"item": item, "quantity": quantity})


def _client(base: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=30)


async def _concurrent_adds(base: str, plan: list[tuple[str, str, int]]) -> float:
    """Send every add of `plan` at once from its own task; check each answer; return the
    requests per second."""
    async with _client(base) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(*(_add(client, *add) for add in plan))
        elapsed = time.perf_counter() - start
    versions = defaultdict(list)
    for (cart, item, quantity), response in zip(plan, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["cart_id"] == cart
        assert body["items"][item] >= quantity
        versions[cart].append(body["version"])
    # Every add got a version of its own: no two requests read-modify-wrote the same State.
    adds = Counter(cart for cart, _, _ in plan)
    for cart, seen in versions.items():
        assert sorted(seen) == list(range(1, adds[cart] + 1)), cart
    return len(plan) / elapsed


def _expected(plan: list[tuple[str, str, int]]) -> dict[str, tuple[int, dict[str, int]]]:
    """(version, items) each cart of `plan` ends with."""
    items: dict[str, Counter[str]] = defaultdict(Counter)
    for cart, item, quantity in plan:
        items[cart][item] += quantity
    adds = Counter(cart for cart, _, _ in plan)
    return {cart: (adds[cart], dict(items[cart])) for cart in adds}


async def _read_carts(
    base: str, expected: dict[str, tuple[int, dict[str, int]]], workers: int
) -> None:
    """GET every cart and compare. One worker answers from the trackers that acknowledged
    the adds, so at once. With several, a worker's tracker learns other workers' writes from
    its watcher (every `watch_interval`), so wait a while for the version to arrive."""
    deadline = time.monotonic() + (10 if workers > 1 else 0)
    async with _client(base) as client:
        for cart, (version, items) in expected.items():
            while True:
                response = await client.get(f"/carts/{cart}")
                assert response.status_code == 200, response.text
                body = response.json()
                if body["version"] >= version or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert body == {"cart_id": cart, "version": version, "items": items}


async def _bad_input(base: str) -> None:
    async with _client(base) as client:

        async def post(cart: str, body: object) -> httpx.Response:
            return await client.post(f"/carts/{cart}/items", json=body)

        def refused(response: httpx.Response, status: int, message: str) -> None:
            assert response.status_code == status, response.text
            assert message in response.text, response.text

        name_rule = "may hold only ASCII letters, digits, '.', '_' and '-'"
        long_id = "x" * 201
        apple = {"item": "apple", "quantity": 1}
        refused(await client.get("/carts/..%2Fx"), 422, f"'../x': {name_rule}")
        refused(await post("..%2Fx", apple), 422, f"'../x': {name_rule}")
        refused(await post("a%20b", apple), 422, f"'a b': {name_rule}")
        refused(await client.get(f"/carts/{long_id}"), 422, "201 characters long, over 200")
        refused(await post(long_id, apple), 422, "201 characters long, over 200")
        refused(await client.get("/carts/nobody"), 404, "context 'nobody' does not exist")

        # FastAPI's own validation of the body (not the library's): its message names the field.
        refused(await post("limits", {"item": "apple", "quantity": "three"}), 422, "int")
        refused(await post("limits", {"item": "apple", "quantity": 1.5}), 422, "quantity")
        refused(await post("limits", {"item": "apple"}), 422, "quantity")

        # Values a State cannot hold: refused by the library, with its message.
        too_big = {"item": "apple", "quantity": 2**64}
        refused(await post("limits", too_big), 422, "outside signed 64-bit range")
        surrogate = b'{"item": "\\ud800", "quantity": 1}'
        response = await client.post(
            "/carts/limits/items", content=surrogate, headers={"content-type": "application/json"}
        )
        refused(response, 422, "lone surrogate")
        assert (await post("limits", {"item": "apple", "quantity": INT_MAX})).status_code == 200
        refused(await post("limits", apple), 422, "outside signed 64-bit range")
        # ...and a refused add changed nothing.
        cart = (await client.get("/carts/limits")).json()
        assert cart == {"cart_id": "limits", "version": 1, "items": {"apple": INT_MAX}}


async def _adds_across_sigterm(
    base: str, server: subprocess.Popen[bytes], plan: list[tuple[str, str, int]], limit: float
) -> tuple[list[bool], float]:
    """Send `plan`'s adds concurrently, SIGTERM the server once a few are acknowledged, and
    return which adds were acknowledged and how long the server took to exit."""
    acknowledged = asyncio.Event()
    answered = 0
    async with _client(base) as client:

        async def add(cart: str, item: str, quantity: int) -> bool:
            nonlocal answered
            try:
                response = await _add(client, cart, item, quantity)
            except httpx.TransportError:
                return False  # refused or cut off by the shutdown: not acknowledged
            # Acknowledged (200), or refused by the stopping server (503): nothing else.
            assert response.status_code in (200, 503), response.text
            answered += response.status_code == 200
            if answered >= 20:
                acknowledged.set()
            return response.status_code == 200

        adds = asyncio.gather(*(add(*item) for item in plan))
        await asyncio.wait_for(acknowledged.wait(), 30)
        server.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            await asyncio.to_thread(server.wait, limit)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            pytest.fail(f"the server did not exit within {limit} s of SIGTERM")
        exit_seconds = time.monotonic() - start
        return await adds, exit_seconds


def _exit_limit(workers: int) -> float:
    """Seconds the server may take to exit after SIGTERM: 5, and with several workers on one
    SQLite file also the store's busy_timeout (10 s). Their last in-flight writes contend for
    the file's write lock, and SQLite's busy handler is not fair: a writer can wait out a
    whole busy_timeout behind another process's back-to-back commits (seen about once in 20
    runs on a loaded 2-core machine; issue 14's one owner per context is the real cure)."""
    return 5.0 if workers == 1 else 5.0 + 10.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_web_service_end_to_end(tmp_path, workers):
    db, log = tmp_path / "carts.db", tmp_path / "server.log"
    first = _plan(ADDS, seed=workers)
    # The second wave adds items of their own (one per add), so that the first wave's sums
    # stay exact and each acknowledged add of the second can be found afterwards.
    second = [(cart, f"late-{n}", quantity) for n, (cart, _, quantity) in enumerate(_plan(ADDS, 7))]
    server, base = _start_server(db, log, workers)
    try:
        rate = asyncio.run(_concurrent_adds(base, first))
        print(f"{workers} worker(s): {rate:.0f} adds/s with {CONCURRENCY} connections")
        asyncio.run(_read_carts(base, _expected(first), workers))
        asyncio.run(_bad_input(base))
        acked, exit_seconds = asyncio.run(
            _adds_across_sigterm(base, server, second, _exit_limit(workers))
        )
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # uvicorn re-raises the SIGTERM once shut down (one worker) or exits 0 (a supervisor).
    output = log.read_text()
    assert server.returncode in (0, -signal.SIGTERM), output
    assert exit_seconds < _exit_limit(workers)
    assert output.count("Application shutdown complete.") == workers, output
    assert "Traceback" not in output, output
    print(f"SIGTERM: {sum(acked)} of {len(acked)} adds acknowledged, exit in {exit_seconds:.2f} s")
    assert any(acked)

    # A fresh manager on the file: every acknowledged add is there, and nothing else is.
    with create_manager(f"sqlite:///{db}") as manager:
        names = manager.list_contexts().get()
        states = {cart: manager.load(cart).get() for cart in CARTS}
    assert set(CARTS) | {"limits"} == set(names)
    expected = _expected(first)
    late_applied: Counter[str] = Counter()
    for (cart, item, quantity), ok in zip(second, acked, strict=True):
        stored = states[cart].get(item)
        if ok:
            assert stored == quantity, (cart, item)
        else:  # the shutdown may have stopped it before or after it was stored
            assert stored in (None, quantity), (cart, item)
        late_applied[cart] += stored is not None
    for cart, state in states.items():
        version, items = expected[cart]
        assert {k: v for k, v in state.items() if k in ITEMS} == items, cart
        assert state.version == version + late_applied[cart], cart
