"""The baseline of `python -m tests.benchmarks.web`: examples/web_service.py's cart service
written by hand, without this library.

Same routes, same bodies, same statuses for what the benchmark sends (`GET /carts/{id}`,
`POST /carts/{id}/items` with `{"item", "quantity"}`, 404 for an unknown cart). The carts
live in a dict; one `asyncio.Lock` serialises the adds; every add is one sqlite3 transaction
(WAL, `synchronous=FULL`: fsynced) writing the cart as one JSON row, run in a worker thread so
that the event loop keeps serving while the disk syncs, and answered only once committed. So,
as in ours, an acknowledged add is on disk. The file is `CARTS_STORE_URL`'s path
(`sqlite:///PATH`), table `carts(id, version, items)`.

    CARTS_STORE_URL=sqlite:////tmp/b.db uv run uvicorn tests.benchmarks.web_baseline:app
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

SCHEMA = "CREATE TABLE IF NOT EXISTS carts (id TEXT PRIMARY KEY, version INTEGER, items TEXT)"


def sqlite_path(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"CARTS_STORE_URL must be sqlite:///PATH, not {url!r}")
    return url[len(prefix) :].split("?", 1)[0]


class Carts:
    """Every cart in memory, each stored as one JSON row on every add."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(SCHEMA)
        self.carts: dict[str, tuple[int, dict[str, int]]] = {
            cart_id: (version, json.loads(items))
            for cart_id, version, items in self.conn.execute("SELECT * FROM carts")
        }
        self.lock = asyncio.Lock()  # one add at a time: the connection and read-modify-write

    def _store(self, cart_id: str, version: int, items: dict[str, int]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                "INSERT OR REPLACE INTO carts VALUES (?, ?, ?)",
                (cart_id, version, json.dumps(items)),
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    async def add(self, cart_id: str, item: str, quantity: int) -> tuple[int, dict[str, int]]:
        async with self.lock:
            version, items = self.carts.get(cart_id, (0, {}))
            items = {**items, item: items.get(item, 0) + quantity}
            await asyncio.to_thread(self._store, cart_id, version + 1, items)
            self.carts[cart_id] = (version + 1, items)  # only once it is stored
            return version + 1, items

    def close(self) -> None:
        self.conn.close()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    carts = Carts(sqlite_path(os.environ.get("CARTS_STORE_URL", "sqlite:///carts.db")))
    try:
        yield {"carts": carts}
    finally:
        async with carts.lock:  # an add still storing finishes first
            carts.close()


app = FastAPI(title="carts-baseline", lifespan=lifespan)


class Addition(BaseModel):
    item: str
    quantity: int = Field(gt=0)


def cart(cart_id: str, version: int, items: dict[str, int]) -> dict[str, Any]:
    return {"cart_id": cart_id, "version": version, "items": items}


@app.get("/carts/{cart_id:path}")
async def read_cart(cart_id: str, request: Request) -> dict[str, Any]:
    carts: Carts = request.state.carts
    if cart_id not in carts.carts:
        raise HTTPException(404, f"context {cart_id!r} does not exist")
    return cart(cart_id, *carts.carts[cart_id])


@app.post("/carts/{cart_id:path}/items")
async def add_item(cart_id: str, addition: Addition, request: Request) -> dict[str, Any]:
    carts: Carts = request.state.carts
    return cart(cart_id, *await carts.add(cart_id, addition.item, addition.quantity))
