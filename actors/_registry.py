"""ContextRegistry: the manager's record of each context it knows, and its transition.

Per context it keeps the `Cell` (what handles read to find the tracker), the recovery report
of its last fallback load, and the transition in flight, if any, as one `Transition` record:
the deactivation, deletion or store call under way (`pending`: calls naming the context wait
for it), the first load of a tracker just started (`loading`: calls for a handle wait for
it), the stop of its tracker under way (`stopping`), and the calls waiting meanwhile.
A record goes as soon as nothing is in flight, so that throwaway contexts leave nothing.

It also keeps `handles`, the handles the facade may give out without asking the manager
(`ContextManager.get_tracker()`'s fast path): a context's handle is published while it is
ACTIVE with nothing in flight, and taken back, here in the manager's thread, as soon as a
transition of it begins (`begin`, `set_stopping`) or it is forgotten, and by the manager's
handlers wherever they make a context FAILED or INACTIVE without one: always before any
reply about that transition is resolved.

Only the manager actor uses it: no lock, no thread, no waiting. The facade only reads
`handles`, one `dict.get` at a time, atomic under the GIL (single-writer publication, as
for a `Cell`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from actors._cell import Cell, ContextStatus
from actors._future import Reply
from actors._handle import ContextTracker
from actors._recovery import RecoveryReport
from actors._requests import ManagerRequest

__all__ = ["ContextRegistry", "Transition"]


class Transition:
    """What is in flight for one context."""

    __slots__ = ("loading", "pending", "stopping", "waiting")

    def __init__(self) -> None:
        self.pending: Reply[Any] | None = None
        """The deactivation, deletion or store call under way: later calls wait for it."""
        self.loading: Reply[None] | None = None
        """The first load of its tracker: handles are given out once it succeeds."""
        self.stopping: Reply[None] | None = None
        """The stop of its tracker under way (one, whoever asked for it)."""
        self.waiting: dict[int, ManagerRequest] = {}
        """The calls waiting for `pending`, by id."""

    @property
    def idle(self) -> bool:
        return (
            self.pending is None
            and self.loading is None
            and self.stopping is None
            and not self.waiting
        )


class ContextRegistry:
    """The cells, reports and transitions of a manager's contexts."""

    def __init__(
        self,
        make_cell: Callable[[str], Cell],
        handles: dict[str, ContextTracker] | None = None,
    ) -> None:
        self._make_cell = make_cell
        self.handles: dict[str, ContextTracker] = {} if handles is None else handles
        """The published handles of running contexts, by name: written only here (in the
        manager's thread), read by the facade's fast path (see the module docstring)."""
        self.cells: dict[str, Cell] = {}
        """Every context known here, by name (read-only outside this class)."""
        self.reports: dict[str, RecoveryReport] = {}
        self.last_errors: dict[str, str] = {}
        """The last error that failed each context's tracker (repr), for `stats()`."""
        self._transitions: dict[str, Transition] = {}

    def sizes(self) -> dict[str, int]:
        """How much is kept, table by table (for leak checks)."""
        return {
            "cells": len(self.cells),
            "reports": len(self.reports),
            "last errors": len(self.last_errors),
            "transitions": len(self._transitions),
            "handles": len(self.handles),
        }

    # -- cells ------------------------------------------------------------------------------

    def get(self, name: str) -> Cell | None:
        return self.cells.get(name)

    def cell(self, name: str) -> Cell:
        """The cell of `name`, new if it had none or a deleted one."""
        cell = self.cells.get(name)
        if cell is None or cell.status is ContextStatus.NONEXISTENT:
            cell = self.cells[name] = self._make_cell(name)
        return cell

    def is_running(self, name: str) -> bool:
        cell = self.cells.get(name)
        return cell is not None and cell.ref is not None

    def running(self) -> list[str]:
        return [name for name, cell in self.cells.items() if cell.ref is not None]

    def forget(self, name: str) -> Cell | None:
        """A deleted context leaves nothing: its cell (returned) and report go."""
        self.handles.pop(name, None)
        self.reports.pop(name, None)
        self.last_errors.pop(name, None)
        return self.cells.pop(name, None)

    # -- published handles ------------------------------------------------------------------

    def publish(self, cell: Cell) -> None:
        """Let the facade hand out `cell`'s handle without asking the manager, if its context
        runs loaded with nothing in flight (no transition record: no deactivation, deletion
        or store call, load or stop under way) and `cell` is its current cell. A passivated
        context stays published: its handle's calls start its tracker again."""
        name = cell.name
        if (
            cell.status is ContextStatus.ACTIVE
            and cell.ref is not None
            and not cell.closed
            and name not in self._transitions
            and self.cells.get(name) is cell
        ):
            handle = self.handles.get(name)
            if handle is None or handle._cell is not cell:
                self.handles[name] = ContextTracker(cell)

    def unpublish(self, name: str) -> None:
        """From now on the facade asks the manager for `name`'s handle (a transition of it
        begins: call this before any reply about it is resolved)."""
        self.handles.pop(name, None)

    def unpublish_all(self) -> None:
        """The manager is closing: every call goes to it (and is refused)."""
        self.handles.clear()

    # -- transitions ------------------------------------------------------------------------

    def pending(self, name: str) -> Reply[Any] | None:
        """The transition of `name` under way that calls wait for, if any: a deactivation,
        deletion or store call, or the first load of its tracker (which finds out whether
        it is stored at all)."""
        record = self._transitions.get(name)
        if record is None:
            return None
        if record.pending is not None and record.pending.done():
            self.end(name, record.pending)
        if record.pending is not None:
            return record.pending
        if record.loading is not None and not record.loading.done():
            return record.loading
        return None

    def begin(self, name: str, reply: Reply[Any]) -> None:
        """A transition of `name` is under way until `reply` is settled (then `end()`)."""
        self.handles.pop(name, None)
        self._record(name).pending = reply

    def end(self, name: str, reply: Reply[Any]) -> None:
        """The transition `reply` of `name` is over (unless another took its place)."""
        record = self._transitions.get(name)
        if record is not None and record.pending is reply:
            record.pending = None
            self._drop_if_idle(name, record)

    def wait(self, name: str, request: ManagerRequest) -> None:
        """`request` waits for the transition of `name` under way."""
        self._record(name).waiting[id(request)] = request

    def resume(self, name: str, request: ManagerRequest) -> None:
        """`request` waits no more."""
        record = self._transitions[name]
        del record.waiting[id(request)]
        self._drop_if_idle(name, record)

    def waiting(self) -> Iterator[ManagerRequest]:
        """Every call waiting for a transition (to answer when the manager stops)."""
        for record in self._transitions.values():
            yield from record.waiting.values()

    def loading(self, name: str) -> Reply[None] | None:
        record = self._transitions.get(name)
        return record.loading if record is not None else None

    def set_loading(self, name: str, ready: Reply[None]) -> None:
        """The tracker of `name` is loading until `ready` is settled (then `loaded()`)."""
        self._record(name).loading = ready

    def loaded(self, name: str, ready: Reply[None]) -> None:
        """The load `ready` of `name` is over (unless another took its place)."""
        record = self._transitions.get(name)
        if record is not None and record.loading is ready:
            record.loading = None
            self._drop_if_idle(name, record)

    def stopping(self, name: str) -> Reply[None] | None:
        record = self._transitions.get(name)
        return record.stopping if record is not None else None

    def set_stopping(self, name: str, reply: Reply[None] | None) -> None:
        """The stop of the tracker of `name` under way (None: it is over)."""
        if reply is not None:
            self.handles.pop(name, None)
            self._record(name).stopping = reply
            return
        record = self._transitions.get(name)
        if record is not None:
            record.stopping = None
            self._drop_if_idle(name, record)

    def all_stopping(self) -> list[str]:
        """The contexts whose trackers are stopping, sorted."""
        return sorted(
            name for name, record in self._transitions.items() if record.stopping is not None
        )

    def _record(self, name: str) -> Transition:
        record = self._transitions.get(name)
        if record is None:
            record = self._transitions[name] = Transition()
        return record

    def _drop_if_idle(self, name: str, record: Transition) -> None:
        if record.idle and self._transitions.get(name) is record:
            del self._transitions[name]
