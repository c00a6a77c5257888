"""The requests a manager actor serves: one class per operation, built by its facades.

Each request carries the reply its caller waits on and says which context it acts on
(`context`, or None) and whether it waits behind a transition of that context under way
(`waits`: a deactivation, a deletion or a store call about it), so that it never acts on
what the manager knew before that ended. Queries that change nothing do not wait.

A new manager operation is a class here (its fields, then `reply`; `operation` names it in
errors) and one handler registered for it in the manager (see actors/_supervisor.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import attrs

from actors._future import LATER, Reply
from storage import State

__all__ = [
    "DEFAULT_CONTEXT",
    "LATER",
    "ActiveContexts",
    "CreateAndSwitch",
    "CreateContext",
    "CreateRecoveryPoint",
    "CurrentContext",
    "CurrentTracker",
    "Deactivate",
    "DeleteContext",
    "DeleteRecoveryPoint",
    "GetRecoveryReport",
    "GetStates",
    "GetStats",
    "GetTracker",
    "Initialize",
    "ListContexts",
    "ListRecoveryPoints",
    "LoadContext",
    "LoadVersion",
    "ManagerRequest",
    "ReadHistory",
    "RestoreRecoveryPoint",
    "SaveContext",
    "Shutdown",
    "Status",
    "SubscribeCurrent",
    "Switch",
]

DEFAULT_CONTEXT = "default"
"""The context `ContextAdapter.initialize()` creates and makes current."""


class ManagerRequest:
    """A request to the manager actor, answered through `reply`."""

    __slots__ = ()
    operation: ClassVar[str]
    """The facade method's name, for error messages (`manager.<operation>()`)."""
    waits: ClassVar[bool] = True
    """Whether it waits for a transition of `context` under way (False for queries)."""
    reply: Reply[Any]

    @property
    def context(self) -> str | None:
        """The context it acts on, or None."""
        return None


class _Named(ManagerRequest):
    """A request about context `name`."""

    __slots__ = ()
    name: str

    @property
    def context(self) -> str | None:
        return self.name


# -- contexts -----------------------------------------------------------------------------


@attrs.frozen
class CreateContext(ManagerRequest):
    operation = "create_context"
    state: State
    reply: Reply[State]

    @property
    def context(self) -> str | None:
        return self.state.context


@attrs.frozen
class GetTracker(_Named):
    operation = "get_tracker"
    name: str
    reply: Reply[Any]
    seed: State | None = None
    """Create the context as this State if it is not stored (`create=True`)."""


@attrs.frozen
class Deactivate(_Named):
    operation = "deactivate"
    name: str
    reply: Reply[None]


@attrs.frozen
class DeleteContext(_Named):
    operation = "delete_context"
    name: str
    reply: Reply[None]


@attrs.frozen
class GetStates(ManagerRequest):
    operation = "get_states"
    names: tuple[str, ...]
    """Valid and distinct."""
    reply: Reply[Any]


@attrs.frozen
class ListContexts(ManagerRequest):
    operation = "list_contexts"
    reply: Reply[list[str]]


@attrs.frozen
class Status(_Named):
    operation = "status"
    waits = False
    name: str
    reply: Reply[Any]


@attrs.frozen
class ActiveContexts(ManagerRequest):
    operation = "active_contexts"
    reply: Reply[list[str]]


@attrs.frozen
class GetStats(ManagerRequest):
    operation = "stats"
    reply: Reply[Any]


# -- persistence and recovery points --------------------------------------------------------


@attrs.frozen
class SaveContext(_Named):
    operation = "save"
    name: str
    reply: Reply[int]


@attrs.frozen
class LoadContext(_Named):
    operation = "load"
    waits = False
    name: str
    reply: Reply[State]


@attrs.frozen
class CreateRecoveryPoint(_Named):
    operation = "create_recovery_point"
    name: str
    label: str | None
    reply: Reply[Any]


@attrs.frozen
class ListRecoveryPoints(_Named):
    operation = "list_recovery_points"
    waits = False
    name: str
    reply: Reply[Any]


@attrs.frozen
class RestoreRecoveryPoint(_Named):
    operation = "restore_recovery_point"
    name: str
    point_id: int
    reply: Reply[State]


@attrs.frozen
class DeleteRecoveryPoint(_Named):
    operation = "delete_recovery_point"
    name: str
    point_id: int
    reply: Reply[None]


@attrs.frozen
class GetRecoveryReport(_Named):
    operation = "recovery_report"
    waits = False
    name: str
    reply: Reply[Any]


# -- history and point-in-time reads (actors/_history_ops.py) ---------------------------------


@attrs.frozen
class ReadHistory(_Named):
    operation = "history"
    waits = False
    name: str
    since: int | None
    limit: int | None
    reply: Reply[Any]


@attrs.frozen
class LoadVersion(_Named):
    operation = "load"
    waits = False
    name: str
    version: int | None
    """The version to read, or None to read the newest made at or before `at`."""
    at: datetime | None
    reply: Reply[State]


# -- adapters -------------------------------------------------------------------------------


@attrs.frozen
class Initialize(ManagerRequest):
    operation = "initialize"
    adapter: int
    reply: Reply[Any]

    @property
    def context(self) -> str | None:
        return DEFAULT_CONTEXT


@attrs.frozen
class Switch(_Named):
    operation = "switch"
    adapter: int
    name: str
    reply: Reply[Any]


@attrs.frozen
class CreateAndSwitch(ManagerRequest):
    operation = "create_and_switch"
    adapter: int
    state: State
    reply: Reply[Any]

    @property
    def context(self) -> str | None:
        return self.state.context


@attrs.frozen
class CurrentContext(ManagerRequest):
    operation = "current_context"
    adapter: int
    reply: Reply[str | None]


@attrs.frozen
class CurrentTracker(ManagerRequest):
    operation = "current_tracker"
    adapter: int
    reply: Reply[Any]


@attrs.frozen
class SubscribeCurrent(ManagerRequest):
    operation = "subscribe_current"
    adapter: int
    subscription: Any
    reply: Reply[Any]


# -- the manager ----------------------------------------------------------------------------


@attrs.frozen
class Shutdown(ManagerRequest):
    operation = "shutdown"
    reply: Reply[None]
