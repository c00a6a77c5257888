"""The manager's bulk read: the States of many contexts in one call, no tracker started.

Reading a context through its handle activates it: a tracker, a store read, two round trips,
which is what a service reading a thousand contexts once (a report, an export, a cold cache)
does not want. `manager.get_states(names)` reads them in one store call instead (one read
transaction on SQLite, one statement on PostgreSQL, one round trip on Redis), on the store
worker, not in the manager's thread.

What it returns is every update acknowledged before the call: under the durable policy
(`SyncPolicy.durable()`, the default) acknowledged means stored, so the store alone holds it
all, running trackers included (a tracker answers a write only once it is stored), and so
does what other processes wrote. Under a batched policy a running tracker may hold
acknowledged updates that are not stored yet: those contexts are asked of their trackers
(each answers after what is queued before the ask), the rest read from the store. A tracker
that stopped meanwhile wrote what it held as it stopped, so its context is read from the
store instead.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from actors._cell import Cell
from actors._future import LATER, Reply, new_reply, reject, resolve
from actors._messages import GetState
from actors._requests import GetStates
from storage import ContextInactiveError, ContextNotFoundError, State

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = ["get_states"]


def get_states(manager: ManagerActor, request: GetStates) -> Any:
    names, reply = request.names, request.reply
    if not names:
        return {}
    read_heads = manager._store.read_heads
    if manager._config.sync.max_updates == 1:
        return manager._io(None, reply, partial(read_heads, names))
    gather = _Gather(manager, names, reply)
    unasked = []
    for name in names:
        cell = manager._contexts.get(name)
        if cell is not None and cell.ref is not None:
            gather.ask(cell, name)
        else:
            unasked.append(name)
    gather.read(unasked)
    return LATER


class _Gather:
    """The answers of trackers and the store for one `get_states` call, collected in the
    manager's thread (each comes back through `manager._when_done`): the reply is answered,
    in the order of `names`, once none is outstanding, or with the first error."""

    def __init__(self, manager: ManagerActor, names: tuple[str, ...], reply: Reply[Any]) -> None:
        self.manager = manager
        self.names = names
        self.reply = reply
        self.states: dict[str, State] = {}
        self.outstanding = 0

    def ask(self, cell: Cell, name: str) -> None:
        """Ask the tracker of `cell` for its State (answered after what is queued before)."""
        self.outstanding += 1
        asked: Reply[State] = new_reply()
        cell.send(GetState(asked), asked)
        self.manager._when_done(asked, self._answered, name)

    def read(self, names: list[str]) -> None:
        """Read `names` from the store, on the store worker (nothing if there are none)."""
        if names:
            self.outstanding += 1
            done: Reply[dict[str, State]] = new_reply()
            self.manager._io(None, done, partial(self.manager._store.read_heads, names))
            self.manager._when_done(done, self._stored)

    def _answered(self, asked: Reply[State], name: str) -> None:
        self.outstanding -= 1
        error = asked.exception()
        if error is None:
            self.states[name] = asked.result()
        elif isinstance(error, ContextInactiveError):
            self.read([name])  # stopped meanwhile: it wrote what it held as it stopped
        elif not isinstance(error, ContextNotFoundError):  # deleted meanwhile: left out
            reject(self.reply, error)  # first answer wins: later ones change nothing
        self._settle()

    def _stored(self, done: Reply[dict[str, State]]) -> None:
        self.outstanding -= 1
        error = done.exception()
        if error is not None:
            reject(self.reply, error)
        else:
            self.states.update(done.result())
        self._settle()

    def _settle(self) -> None:
        if self.outstanding == 0:
            states = self.states
            resolve(self.reply, {name: states[name] for name in self.names if name in states})
