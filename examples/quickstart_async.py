"""The quickstart from asyncio: every future the runtime returns can be awaited.

Run it with `uv run python examples/quickstart_async.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from actors import State, create_adapter, create_manager


def bump(state: State) -> None:
    state.set("counter", state.get("counter", 0) + 1)


async def main(db: Path) -> None:
    manager = create_manager(f"sqlite:///{db}")
    adapter = create_adapter(manager)
    tracker = await adapter.initialize()

    # Fifty concurrent read-modify-write updates from asyncio tasks, none lost.
    await asyncio.gather(*(tracker.modify(bump) for _ in range(50)))
    print(f"counter = {await tracker.get('counter')}")

    other = await adapter.create_and_activate_context("session-42", data={"user": "ada"})
    print(f"current: {await adapter.current_context()}, user = {await other.get('user')}")
    point = await other.create_recovery_point("before-logout")
    await other.delete("user")
    restored = await manager.restore_recovery_point("session-42", point.point_id)
    print(f"restored to version {restored.version}: {dict(restored.items())}")

    await manager.shutdown()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(Path(directory) / "contexts.db"))
