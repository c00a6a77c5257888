"""The messages actors exchange. Each request carries the reply slot its sender waits on.

Values inside messages are private copies made by the sender, so an actor never shares a
mutable object with a caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pykka

from actors._future import Reply
from storage import State

# -- to a tracker: requests ----------------------------------------------------------------


@attrs.frozen
class GetState:
    reply: Reply[State]


@attrs.frozen
class GetValue:
    key: str
    default: Any
    reply: Reply[Any]


@attrs.frozen
class Keys:
    reply: Reply[list[str]]


@attrs.frozen
class SetValue:
    key: str
    value: Any
    reply: Reply[int]


@attrs.frozen
class DeleteValue:
    key: str
    reply: Reply[int]


@attrs.frozen
class SetMetadata:
    key: str
    value: str
    reply: Reply[int]


@attrs.frozen
class UpdateState:
    state: State
    reply: Reply[State]


@attrs.frozen
class Modify:
    fn: Callable[[State], object]
    reply: Reply[State]


@attrs.frozen
class Save:
    reply: Reply[int]


@attrs.frozen
class MakeRecoveryPoint:
    label: str | None
    reply: Reply[Any]


@attrs.frozen
class Restore:
    point_id: int
    reply: Reply[State]


@attrs.frozen
class Crash:
    """Testing: fail as an unexpected exception would. `reply` gets the failure like any
    request that hits a fault; `restarted` resolves once the tracker runs again."""

    restarted: Reply[None]
    reply: Reply[None]


TrackerRequest = (
    GetState
    | GetValue
    | Keys
    | SetValue
    | DeleteValue
    | SetMetadata
    | UpdateState
    | Modify
    | Save
    | MakeRecoveryPoint
    | Restore
    | Crash
)

# -- to a tracker: control from its manager --------------------------------------------------


@attrs.frozen
class Restart:
    """Reload from the store and resume the stashed requests."""


@attrs.frozen
class GiveUp:
    """Stop trying: fail every stashed and future request with `error`."""

    error: BaseException


@attrs.frozen
class Stop:
    """Write what is unsaved, then stop; `reply` resolves once stopped. If the write fails,
    `reply` fails and the tracker keeps running, unless `force` (shutdown) is set: then it
    stops anyway, and the error is logged and replied."""

    reply: Reply[None]
    error: BaseException
    force: bool = False


@attrs.frozen
class Passivate:
    """Stop to free the thread if nothing was asked of you since `idle_since` (monotonic)."""

    idle_since: float


@attrs.frozen
class Flush:
    """Timer tick of a batched sync policy."""


@attrs.frozen
class UseWriter:
    """Send durable writes to `writer` from now on (None: commit them yourself)."""

    writer: pykka.ActorRef[Any] | None


@attrs.frozen
class Wake:
    """Look again at the write in flight: the writer has answered its caller, or someone
    now listens to the context's changes (sent by a write's reply callback, or the hub)."""


# -- to a manager ---------------------------------------------------------------------------


@attrs.frozen
class WriterFailed:
    """The group writer failed (a bug of ours) and has answered every write it held."""

    writer: object  # its ref: a report from a writer already replaced is ignored


@attrs.frozen
class TrackerFailed:
    name: str
    tracker: object  # the failing actor's ref: stale reports from an older actor are ignored
    error: BaseException


@attrs.frozen
class Passivated:
    """A tracker stopped because it was idle; its context stays ACTIVE."""

    name: str
    tracker: pykka.ActorRef[Any]


@attrs.frozen
class Deliver:
    """A request for a context whose tracker is passivated (or just stopped): start it again
    and hand the request on, in order."""

    name: str
    message: Any


@attrs.frozen
class Tick:
    """The manager's timer: time to look for idle trackers."""


@attrs.frozen
class ForgetAdapter:
    """From an adapter's finalizer: it was garbage-collected; drop what is kept for it."""

    adapter: int


@attrs.frozen
class ListStopping:
    """From the exit hook, when a shutdown is late: answer `reply` with the names of the
    contexts whose trackers have not stopped yet (what the lateness may lose)."""

    reply: Reply[list[str]]


@attrs.frozen
class Recovered:
    """A tracker loaded its context from a fallback past damaged snapshots."""

    report: Any


@attrs.frozen
class Done:
    """A reply the manager chained on another actor's future has arrived."""

    callback: Callable[..., None]
    args: tuple[Any, ...]
