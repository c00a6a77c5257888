"""Quickstart: the spec's usage example, then persistence across a restart and a crash.

Run it with `uv run python examples/quickstart.py [DATABASE]`; without an argument it uses a
file in a fresh temporary directory.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from actors import ContextStatus, VersionConflict, create_adapter, create_manager
from actors.testing import crash


def main(db: Path) -> None:
    url = f"sqlite:///{db}"

    # -- the spec's example ------------------------------------------------------------------
    manager = create_manager(url)
    adapter = create_adapter(manager)
    adapter.initialize().get()  # creates "default" if absent, activates it, makes it current
    tracker = adapter.get_current_tracker().get()
    state = tracker.get_state().get()  # a private copy
    state.set("key", "value")
    state = tracker.update_state(state).get()  # version-checked; returns the new State
    print(f"default is at version {state.version}: {dict(state.items())}")

    stale = state.snapshot()
    tracker.set("visits", 1).get()
    try:
        tracker.update_state(stale).get()
    except VersionConflict as error:
        print(f"a stale update is refused: {error}")

    adapter.create_and_activate_context("new-context", data={"theme": "dark"}).get()
    print(f"current context: {adapter.current_context().get()}")
    adapter.switch_context("default").get()
    print(f"switched back to: {adapter.current_context().get()}")
    assert adapter.get_status("new-context").get() is ContextStatus.ACTIVE

    # -- a crash is recovered from the last snapshot, and the handle keeps working ----------
    tracker.modify(lambda s: s.set("visits", s.get("visits") + 1)).get()
    crash(tracker).get()  # resolves once the supervisor has restarted the tracker
    print(f"after a crash, visits = {tracker.get('visits').get()} (nothing acknowledged lost)")

    manager.shutdown().get()

    # -- a new manager on the same file sees everything that was acknowledged ---------------
    with create_manager(url) as manager:
        adapter = create_adapter(manager)
        tracker = adapter.switch_context("default").get()
        state = tracker.get_state().get()
        print(f"after a restart: version {state.version}, data {dict(state.items())}")
        print(f"stored contexts: {manager.list_contexts().get()}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as directory:
            main(Path(directory) / "contexts.db")
