"""What subscribers receive: `Change` (a context moved to a new version) and
`CurrentContextChange` (an adapter's current context changed), and `Topic`, where a context's
tracker or an adapter's manager publishes them.

A change is built by its publisher from copies of the values, so no subscriber ever holds an
object a tracker owns; the hub gives each further subscriber a copy of its own.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs
import pykka

from actors._tell import tell_quietly
from storage import State
from storage._delta import Delta
from storage._state import copy_json_dict

__all__ = ["Change", "ChangeCause", "CurrentContextChange", "Publish", "Topic"]


class ChangeCause(enum.Enum):
    """Who or what moved a context to a new version."""

    UPDATE = "update"
    """A tracker call: `set`, `delete`, `set_metadata`, `update_state` or `modify`."""
    RESTORE = "restore"
    """`restore_recovery_point()` wrote a recovery point's contents as the next version."""
    RECOVERY = "recovery"
    """The tracker (re)loaded something other than what subscribers last heard of: a
    fallback past damaged snapshots (see `RecoveryReport`), or, under a batched sync policy,
    the last stored version after a crash lost updates not yet written."""
    EXTERNAL = "external"
    """Another writer (another process) stored a newer State; the tracker reloaded it after
    its own write met a `VersionConflict`."""


@attrs.frozen
class Change:
    """One accepted change of a context, as a subscriber receives it.

    `changed` and `metadata_changed` map the keys set to their new values (copies the
    subscriber owns); `removed` and `metadata_removed` name the keys deleted. When `reset` is
    true the previous contents are unknown (`RECOVERY`, `EXTERNAL`): `changed` and
    `metadata_changed` then hold the whole new State, and any key not in them is gone.
    """

    context: str
    old_version: int
    """The version this change was made on: the version the subscriber's view is at, if it
    missed nothing. Only a `RECOVERY` of lost batched updates goes back (old > new)."""
    new_version: int
    cause: ChangeCause
    updated_at: datetime
    changed: dict[str, Any] = attrs.field(factory=dict)
    removed: tuple[str, ...] = ()
    metadata_changed: dict[str, str] = attrs.field(factory=dict)
    metadata_removed: tuple[str, ...] = ()
    reset: bool = False
    missed: range = range(0)
    """Versions whose changes this subscription dropped just before this one (overflow
    policy `DROP_OLDEST`); empty if none were."""

    @classmethod
    def from_delta(cls, delta: Delta, cause: ChangeCause) -> Change:
        """The change `delta` describes, with copies of its values."""
        return cls(
            delta.context,
            delta.version - 1,
            delta.version,
            cause,
            delta.updated_at,
            copy_json_dict(delta.changed),
            delta.removed,
            dict(delta.metadata_changed),
            delta.metadata_removed,
        )

    @classmethod
    def replacing(cls, old_version: int, state: State, cause: ChangeCause) -> Change:
        """A `reset` change to (a copy of) the whole of `state`."""
        return cls(
            state.context,
            old_version,
            state.version,
            cause,
            state.updated_at,
            copy_json_dict(state.data),
            (),
            dict(state.metadata),
            (),
            reset=True,
        )

    def copy(self) -> Change:
        """An equal change whose values are new copies."""
        return attrs.evolve(
            self,
            changed=copy_json_dict(self.changed),
            metadata_changed=dict(self.metadata_changed),
        )

    def after_gap(self, first: Change, last: Change, count: int) -> Change:
        """This change, reporting that `first` .. `last` were dropped just before it."""
        return attrs.evolve(self, missed=range(first.new_version, last.new_version + 1))


@attrs.frozen
class CurrentContextChange:
    """An adapter's current context changed from `old` to `new` (None: no current context)."""

    old: str | None
    new: str | None
    missed: int = 0
    """How many earlier notifications this subscription dropped just before this one
    (overflow policy `DROP_OLDEST`)."""

    def copy(self) -> CurrentContextChange:
        """This notification itself: it holds nothing mutable."""
        return self

    def after_gap(
        self, first: CurrentContextChange, last: CurrentContextChange, count: int
    ) -> CurrentContextChange:
        """This notification, reporting that `count` were dropped just before it."""
        return attrs.evolve(self, missed=count)


@attrs.frozen
class Publish:
    """To the hub: `item` happened on `topic`."""

    topic: Topic
    item: Any


class Topic:
    """Where one context's changes (or one adapter's switches) are published, and whether
    anyone listens.

    A context's topic lives in its `Cell`, so it outlives every tracker incarnation
    (restarts, passivation, deactivation); each new tracker publishes to it. `live` is
    written only by the hub, which sets it while the topic has a subscription; a publisher
    reads it (one atomic attribute read) to skip building changes nobody wants.
    """

    __slots__ = ("hub", "live", "name")

    def __init__(self, name: str, hub: pykka.ActorRef[Any] | None) -> None:
        self.name = name
        self.hub = hub
        self.live = False

    def __repr__(self) -> str:
        return f"<Topic {self.name!r}{' live' if self.live else ''}>"

    def publish(self, item: Any) -> None:
        """Tell the hub about `item` (never waits; dropped if the hub has stopped)."""
        hub = self.hub
        if hub is not None:
            tell_quietly(hub, Publish(self, item))  # shut down: nobody listens
