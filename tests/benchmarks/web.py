"""The FastAPI cart service over real HTTP: `uv run python -m tests.benchmarks.web`.

Runs examples/web_service.py (`examples.web_service:app`, on this library) and the same
service written by hand on a dict, an `asyncio.Lock` and sqlite3
(`tests.benchmarks.web_baseline:app`), each under a real uvicorn on a free loopback port with
a SQLite file in a temporary directory, both fsyncing every acknowledged add (WAL,
`synchronous=FULL`). The load comes from the loopback: `wrk` if it is on PATH (one thread per
connection, a Lua script for the request bodies and the bookkeeping), else an asyncio httpx
client. Every connection repeats: POST an add (`{"item", "quantity"}`, quantity 1-9) to a
random cart, then GET that cart.

Two workloads: 200 carts (each is used again and again) and 100,000 possible cart ids (nearly
every add creates a cart: many contexts). For each run it reports requests/s, p50 and p99
latency, the server process's CPU time per request (user + system, from /proc/PID/stat), its
threads and RSS when the load stops (from /proc/PID/status), how long it took to exit on
SIGTERM, and the count check: once the server has exited, the SQLite file is read and, per
cart, the quantities stored must equal the acknowledged adds (give or take the adds still in
flight when the load stopped, which may or may not have been applied). A mismatch prints
FAILED and the command exits 1.

Options: `--quick` (3 s per run instead of 15), `--seconds S`, `--connections N` (32),
`--client httpx` (even when wrk is installed). Benchmarks are not tests: nothing here asserts
a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import attrs
import httpx

from storage import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
APPS = {"ours": "examples.web_service:app", "baseline": "tests.benchmarks.web_baseline:app"}
WORKLOADS = {"200 carts": 200, "100,000 cart ids": 100_000}
ITEMS = ("apple", "pear", "fig")

# One wrk thread per connection, so that each thread knows which request a response answers:
# the cart and quantity of the add in flight, kept in globals that done() collects.
WRK_SCRIPT = r"""
local carts, items = 200, {"apple", "pear", "fig"}
local next_is_add = true
local created = 0
local threads = {}
acked, doubt, adds, reads, failed = {}, "", 0, 0, 0
cart, quantity, adding = nil, 0, false

function setup(thread)
  created = created + 1
  thread:set("number", created)
  table.insert(threads, thread)
end

function init(args)
  carts = tonumber(args[1])
  math.randomseed(tonumber(args[2]) * 1000 + number)
end

function request()
  if adding then  -- the last add got no answer (a broken connection): it may have been applied
    doubt = doubt .. "DOUBT " .. cart .. " " .. quantity .. "\n"  -- no nested tables: wrk
    adding = false
  end
  if next_is_add then
    cart = "cart-" .. math.random(0, carts - 1)
    quantity = math.random(1, 9)
    adding = true
    local body = string.format('{"item":"%s","quantity":%d}', items[math.random(#items)], quantity)
    return wrk.format("POST", "/carts/" .. cart .. "/items",
                      {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", "/carts/" .. cart)
end

function response(status, headers, body)
  if adding then
    adding = false
    if status == 200 then
      acked[cart] = (acked[cart] or 0) + quantity
      adds = adds + 1
      next_is_add = false
    else
      failed = failed + 1
    end
  else
    if status == 200 then reads = reads + 1 else failed = failed + 1 end
    next_is_add = true
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for name, sum in pairs(thread:get("acked")) do io.write("ACKED ", name, " ", sum, "\n") end
    io.write(thread:get("doubt"))
    if thread:get("adding") then
      io.write("DOUBT ", thread:get("cart"), " ", thread:get("quantity"), "\n")
    end
    io.write("COUNTS ", thread:get("adds"), " ", thread:get("reads"), " ",
             thread:get("failed"), "\n")
  end
  io.write("ERRORS ", summary.errors.connect + summary.errors.read + summary.errors.write
           + summary.errors.timeout, "\n")
end
"""


@attrs.define
class Load:
    """What a load generator saw."""

    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    acked: Counter[str]  # cart -> sum of acknowledged quantities
    doubt: list[tuple[str, int]]  # adds sent but never answered: applied or not
    failed: int  # answered with a status other than 200
    errors: int  # connection errors and timeouts


@attrs.define
class Run:
    workload: str
    server: str
    load: Load
    threads: int
    rss_mib: float
    cpu_seconds: float  # the server's CPU time (user + system) during the load
    exit_seconds: float
    check: str

    @property
    def ok(self) -> bool:
        return self.check.startswith("ok")


# -- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(app: str, db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving `app` on `db`, once it answers; a port taken meanwhile: another."""
    env = {**os.environ, "CARTS_STORE_URL": f"sqlite:///{db}"}
    for _ in range(3):
        port = _free_port()
        command = [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ]
        with log.open("ab") as out:
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/carts/no-such-cart", timeout=2).status_code == 404:
                    return server, base
            time.sleep(0.05)
        if server.poll() is None:
            server.kill()
            server.wait()
    raise RuntimeError(f"{app} did not start:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system, all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> tuple[int, float]:
    """The process's thread count and resident memory (MiB), from /proc/PID/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def stop_server(server: subprocess.Popen[bytes]) -> float:
    """SIGTERM (uvicorn finishes the requests in flight, then the lifespan's shutdown runs);
    the seconds until it exited."""
    start = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(120)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise
    return time.monotonic() - start


# -- the load -----------------------------------------------------------------------------------


def _percentile(latencies: list[float], fraction: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def _httpx_load(base: str, carts: int, connections: int, seconds: float, seed: int) -> Load:
    latencies: list[float] = []
    acked: Counter[str] = Counter()
    doubt: list[tuple[str, int]] = []
    failed = errors = 0

    async def connection(client: httpx.AsyncClient, number: int) -> None:
        nonlocal failed, errors
        rng = random.Random(seed * 1000 + number)
        while time.perf_counter() < deadline:
            cart, quantity = f"cart-{rng.randrange(carts)}", rng.randint(1, 9)
            body = {"item": rng.choice(ITEMS), "quantity": quantity}
            sent = time.perf_counter()
            try:
                response = await client.post(f"/carts/{cart}/items", json=body)
            except httpx.TransportError:
                doubt.append((cart, quantity))
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                failed += 1
                continue
            acked[cart] += quantity
            sent = time.perf_counter()
            try:
                response = await client.get(f"/carts/{cart}")
            except httpx.TransportError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
            failed += response.status_code != 200

    # A client of its own per connection: one client's pool shared by 32 tasks costs the
    # client so much CPU that it, not the server, sets the rate (measured: 4x fewer requests/s).
    async with contextlib.AsyncExitStack() as clients:
        pool = [
            await clients.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=1), timeout=60)
            )
            for _ in range(connections)
        ]
        start = time.perf_counter()
        deadline = start + seconds
        # Requests in flight at the deadline are waited for (and counted): none is in doubt.
        await asyncio.gather(*(connection(client, n) for n, client in enumerate(pool)))
        elapsed = time.perf_counter() - start
    return Load(
        requests=len(latencies),
        seconds=elapsed,
        p50=_percentile(latencies, 0.50),
        p99=_percentile(latencies, 0.99),
        acked=acked,
        doubt=doubt,
        failed=failed,
        errors=errors,
    )


def httpx_load(base: str, carts: int, connections: int, seconds: float, seed: int) -> Load:
    return asyncio.run(_httpx_load(base, carts, connections, seconds, seed))


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_load(
    base: str, carts: int, connections: int, seconds: float, seed: int, workdir: Path
) -> Load:
    script = workdir / "carts.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        *("wrk", "--threads", str(connections), "--connections", str(connections)),
        *("--duration", f"{max(1, round(seconds))}s", "--timeout", "60s", "--latency"),
        *("--script", str(script), base, "--", str(carts), str(seed)),
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 120
    ).stdout
    acked: Counter[str] = Counter()
    doubt: list[tuple[str, int]] = []
    failed = errors = 0
    latency: dict[str, float] = {}
    requests, elapsed = 0, seconds
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["ACKED"]:
            acked[words[1]] += int(words[2])
        elif words[:1] == ["DOUBT"]:
            doubt.append((words[1], int(words[2])))
        elif words[:1] == ["COUNTS"]:
            failed += int(words[3])
        elif words[:1] == ["ERRORS"]:
            errors = int(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            latency[words[0]] = _wrk_seconds(words[1])
        elif match := re.match(r"\s*(\d+) requests in ([\d.]+[a-z]+)", line):
            requests, elapsed = int(match[1]), _wrk_seconds(match[2])
    if not requests or len(latency) != 2:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return Load(requests, elapsed, latency["50%"], latency["99%"], acked, doubt, failed, errors)


# -- the count check ------------------------------------------------------------------------------


def stored_quantities(server: str, db: Path) -> Counter[str]:
    """Per cart, the sum of the quantities in the SQLite file of a stopped server."""
    stored: Counter[str] = Counter()
    if server == "ours":
        store = SqliteStore(db)
        try:
            for name in store.list_contexts():
                state = store.read_head(name)
                stored[name] = sum(value for _, value in state.items())
        finally:
            store.close()
    else:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            for cart_id, items in conn.execute("SELECT id, items FROM carts"):
                stored[cart_id] = sum(json.loads(items).values())
    return stored


def count_check(stored: Counter[str], load: Load) -> str:
    """Whether every cart holds exactly its acknowledged adds (plus any of its adds in doubt):
    "ok: ..." if so, "FAILED: ..." if not."""
    doubt: dict[str, list[int]] = {}
    for cart, quantity in load.doubt:
        doubt.setdefault(cart, []).append(quantity)
    wrong = 0
    for cart in stored.keys() | load.acked.keys():
        extra = stored[cart] - load.acked[cart]
        maybe = doubt.get(cart, [])
        possible = {
            sum(subset)
            for size in range(len(maybe) + 1)
            for subset in itertools.combinations(maybe, size)
        }
        wrong += extra not in possible
    adds = sum(load.acked.values())
    if wrong:
        return f"FAILED: {wrong} of {len(stored)} carts differ"
    in_doubt = f" (+ {len(load.doubt)} adds in flight at the stop)" if load.doubt else ""
    return f"ok: {adds:,} acknowledged units in {len(stored):,} carts, all stored{in_doubt}"


# -- one run, the table --------------------------------------------------------------------------


def run(
    workload: str, server: str, connections: int, seconds: float, client: str, workdir: Path
) -> Run:
    carts = WORKLOADS[workload]
    rundir = workdir / f"{server}-{carts}"
    rundir.mkdir()
    db, log = rundir / "carts.db", rundir / "server.log"
    process, base = start_server(APPS[server], db, log)
    try:
        cpu_before = cpu_seconds(process.pid)
        if client == "wrk":
            load = wrk_load(base, carts, connections, seconds, seed=carts, workdir=rundir)
        else:
            load = httpx_load(base, carts, connections, seconds, seed=carts)
        cpu = cpu_seconds(process.pid) - cpu_before
        threads, rss = proc_status(process.pid)
        exit_seconds = stop_server(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    check = count_check(stored_quantities(server, db), load)
    if load.failed or load.errors:
        check += f"; {load.failed} non-200, {load.errors} connection errors"
    if "Traceback" in log.read_text():
        print(f"{server} server, {workload}:\n{log.read_text()}", file=sys.stderr)
        check = f"FAILED: the server logged a traceback; {check}"
    return Run(workload, server, load, threads, rss, cpu, exit_seconds, check)


def print_table(runs: list[Run]) -> None:
    print(
        f"{'workload':<17} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10} {'threads':>8} {'RSS MiB':>8} {'exit s':>7}  count check"
    )
    by_workload: dict[str, dict[str, Run]] = {}
    for one in runs:
        by_workload.setdefault(one.workload, {})[one.server] = one
    for workload, servers in by_workload.items():
        for one in servers.values():
            load = one.load
            print(
                f"{workload:<17} {one.server:<9} {load.requests / load.seconds:>8,.0f} "
                f"{load.p50 * 1e3:>8.1f} {load.p99 * 1e3:>8.1f} "
                f"{one.cpu_seconds / load.requests * 1e6:>10,.0f} {one.threads:>8,} "
                f"{one.rss_mib:>8.0f} {one.exit_seconds:>7.1f}  {one.check}"
            )
        if {"ours", "baseline"} <= servers.keys():
            ours, base = servers["ours"].load, servers["baseline"].load
            speed = (ours.requests / ours.seconds) / (base.requests / base.seconds)
            print(
                f"{workload:<17} {'ratio':<9} {speed:>8.2f} {base.p50 / ours.p50:>8.2f} "
                f"{base.p99 / ours.p99:>8.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.web", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    parser.add_argument("--seconds", type=float, help="seconds of load per run (default 15)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--client", choices=["wrk", "httpx"], help="load generator (default: wrk if on PATH)"
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    client = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in WORKLOADS:
            for server in APPS:
                runs.append(run(workload, server, args.connections, seconds, client, Path(tmp)))
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; load: {client}, "
        f"{args.connections} connections, {seconds:g} s per run, each an add then a read"
    )
    print("ratio: req/s ours/baseline, latency baseline/ours: > 1 means ours is faster")
    print_table(runs)
    return 0 if all(one.ok for one in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
