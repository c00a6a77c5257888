"""The manager's persistence and recovery-point operations: one handler per request.

Each runs in the manager actor: a running tracker answers the request itself (in order with
the updates it holds); otherwise the store worker runs the store call (actors/_store_io.py).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from actors._changes import ChangeCause
from actors._future import Reply
from actors._messages import MakeRecoveryPoint, Restore, Save
from actors._recovery import RecoveryReport
from actors._requests import (
    LATER,
    CreateRecoveryPoint,
    DeleteRecoveryPoint,
    GetRecoveryReport,
    ListRecoveryPoints,
    LoadContext,
    RestoreRecoveryPoint,
    SaveContext,
)
from storage import State

if TYPE_CHECKING:
    from actors._supervisor import ManagerActor

__all__ = [
    "create_recovery_point",
    "delete_recovery_point",
    "list_recovery_points",
    "load",
    "recovery_report",
    "restore_recovery_point",
    "save",
]


def _forward(manager: ManagerActor, name: str, message: Any, reply: Reply[Any]) -> bool:
    """Hand a request to the running tracker of `name`, which answers `reply` itself."""
    cell = manager._contexts.get(name)
    if cell is None or cell.ref is None:
        return False
    cell.send(message, reply)
    return True


def save(manager: ManagerActor, request: SaveContext) -> Any:
    reply, name = request.reply, request.name
    if _forward(manager, name, Save(reply), reply):
        return LATER
    return manager._io(None, reply, partial(manager._store.head_version, name))


def load(manager: ManagerActor, request: LoadContext) -> Any:
    reply, name = request.reply, request.name
    return manager._io(None, reply, partial(manager._store.read_head, name))


def create_recovery_point(manager: ManagerActor, request: CreateRecoveryPoint) -> Any:
    reply, name, label = request.reply, request.name, request.label
    if _forward(manager, name, MakeRecoveryPoint(label, reply), reply):
        return LATER
    store = manager._store
    return manager._io(
        name, reply, lambda: store.create_recovery_point(store.read_head(name), label)
    )


def list_recovery_points(manager: ManagerActor, request: ListRecoveryPoints) -> Any:
    reply, name = request.reply, request.name
    return manager._io(None, reply, partial(manager._store.list_recovery_points, name))


def restore_recovery_point(manager: ManagerActor, request: RestoreRecoveryPoint) -> Any:
    reply, name, point_id = request.reply, request.name, request.point_id
    if _forward(manager, name, Restore(point_id, reply), reply):
        return LATER
    store = manager._store

    def restore() -> State:
        head = store.read_head(name)
        restored = head.successor(store.read_recovery_point(name, point_id))
        store.compare_and_set(restored, head.version, ChangeCause.RESTORE.value)
        return restored

    return manager._io(name, reply, restore)


def recovery_report(manager: ManagerActor, request: GetRecoveryReport) -> RecoveryReport | None:
    name = request.name
    return manager._contexts.reports.get(name)


def delete_recovery_point(manager: ManagerActor, request: DeleteRecoveryPoint) -> Any:
    reply, name, point_id = request.reply, request.name, request.point_id
    return manager._io(None, reply, partial(manager._store.delete_recovery_point, name, point_id))
