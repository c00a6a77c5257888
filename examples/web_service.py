"""A web service on context-runtime: one shopping cart per context, read and changed by id.

    uv run uvicorn examples.web_service:app                     # http://127.0.0.1:8000
    uv run python examples/web_service.py 8080                  # or PORT=8080
    CARTS_STORE_URL=redis://127.0.0.1:6379/0 uv run uvicorn examples.web_service:app --workers 4

    curl -X POST localhost:8000/carts/ada/items -H 'content-type: application/json' \
         -d '{"item": "apple", "quantity": 2}'
    curl localhost:8000/carts/ada

The per-request pattern: each request names the context it works on (here the cart id in
the path) and asks the process's one manager for that context's tracker, `await
manager.get_tracker(cart_id)`. A tracker handles one message at a time, so `modify(fn)` is an
atomic read-modify-write however many requests, tasks or worker processes change one cart.

Never use an adapter's "current context" in a request handler: it is one value for the whole
process, so between a request's `switch_context()` and its `get_current_tracker()` another
request may switch it, and the first request writes into the second one's context. See
docs/web-services.md.

The lifespan starts the manager (store URL from $CARTS_STORE_URL) and shuts it down after the
last request; the exception handlers at the end turn the library's errors into HTTP statuses
with the library's message as the detail.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from actors import (
    ContextNotFoundError,
    ContextTimeoutError,
    InvalidArgumentError,
    ShutdownError,
    State,
    StateTooLargeError,
    VersionConflict,
    create_manager,
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    manager = create_manager(os.environ.get("CARTS_STORE_URL", "sqlite:///carts.db"))
    try:
        yield {"manager": manager}  # every request sees it as request.state.manager
    finally:
        await manager.shutdown()  # writes anything unsaved, then stops every actor


app = FastAPI(title="carts", lifespan=lifespan)


class Addition(BaseModel):
    item: str
    quantity: int = Field(gt=0)


def cart(state: State) -> dict[str, Any]:
    return {"cart_id": state.context, "version": state.version, "items": dict(state.items())}


# `:path` hands the id to the library whole ("../x" included): it validates every name.
@app.get("/carts/{cart_id:path}")
async def read_cart(cart_id: str, request: Request) -> dict[str, Any]:
    tracker = await request.state.manager.get_tracker(cart_id)
    return cart(await tracker.get_state())


@app.post("/carts/{cart_id:path}/items")
async def add_item(cart_id: str, addition: Addition, request: Request) -> dict[str, Any]:
    # Creates the cart on first use, however many requests or worker processes race to it:
    # the create and this first add are stored in one transaction.
    tracker = await request.state.manager.get_tracker(cart_id, create=True)

    def add(state: State) -> None:  # runs in the cart's actor, on the newest State
        state.set(addition.item, state.get(addition.item, 0) + addition.quantity)

    return cart(await tracker.modify(add))  # resolves once the new version is stored


STATUS = {
    InvalidArgumentError: 422,  # a bad cart id, a value a State cannot hold
    ContextNotFoundError: 404,
    VersionConflict: 409,
    StateTooLargeError: 413,
    ContextTimeoutError: 503,  # the call may still complete: the client should read, then retry
    ShutdownError: 503,
}


async def library_error(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=status)


for kind in STATUS:
    app.add_exception_handler(kind, library_error)


if __name__ == "__main__":
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port)
