"""The one exception hierarchy of the context runtime.

It lives in `storage` because the stores raise most of these errors and `storage` never
imports `actors`; `actors` re-exports every name, so users catch them from either package.

```
ContextError
├── InvalidArgumentError           (also TypeError / ValueError)
│   ├── InvalidContextNameError
│   └── ConfigurationError
├── ContextNotFoundError           (also LookupError)
├── ContextExistsError
├── SnapshotNotFoundError          (also LookupError)
├── RecoveryPointNotFoundError     (also LookupError)
├── VersionConflict
├── LeaseError
│   ├── NotOwner
│   └── LeaseLost
├── StateError
│   ├── InvalidValueError          (also InvalidArgumentError)
│   ├── KeyNotFoundError           (also KeyError)
│   ├── StateTooLargeError
│   └── ForeignStateError
├── PersistenceError
│   ├── CorruptSnapshotError
│   │   └── NoIntactSnapshotError
│   ├── UnsupportedFormatError
│   └── WriteOutcomeUnknownError   (also OutcomeUnknownError)
├── RecoveryError
│   ├── UpdateNotAppliedError
│   ├── OutcomeUnknownError
│   └── ContextFailedError
├── SynchronizationError
├── ContextTimeoutError            (also TimeoutError)
├── ContextBusyError
├── ContextInactiveError
├── NoCurrentContextError
└── ShutdownError
```
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ContextBusyError",
    "ContextError",
    "ContextExistsError",
    "ContextFailedError",
    "ContextInactiveError",
    "ContextNotFoundError",
    "ContextTimeoutError",
    "CorruptSnapshotError",
    "ForeignStateError",
    "InvalidArgumentError",
    "InvalidContextNameError",
    "InvalidValueError",
    "KeyNotFoundError",
    "LeaseError",
    "LeaseLost",
    "NoCurrentContextError",
    "NoIntactSnapshotError",
    "NotOwner",
    "OutcomeUnknownError",
    "PersistenceError",
    "RecoveryError",
    "RecoveryPointNotFoundError",
    "ShutdownError",
    "SnapshotNotFoundError",
    "StateError",
    "StateTooLargeError",
    "SynchronizationError",
    "UnsupportedFormatError",
    "UpdateNotAppliedError",
    "VersionConflict",
    "WriteOutcomeUnknownError",
]


class ContextError(Exception):
    """Base class of every error the context runtime raises on purpose."""


class InvalidArgumentError(ContextError, TypeError, ValueError):
    """An argument to a public function has the wrong type or value; nothing was done.

    The message names the argument and the value. Retrying the same call fails the same
    way: fix the call.
    """


class ConfigurationError(InvalidArgumentError):
    """A store URL, store option or configuration value is unknown, malformed or out of range."""


class InvalidContextNameError(InvalidArgumentError):
    """A context name is not a non-empty string of at most 200 safe characters."""

    def __init__(self, name: object, reason: str) -> None:
        # The message shows at most 40 characters of a long name; `.name` keeps all of it.
        shown = name[:40] + "..." if isinstance(name, str) and len(name) > 40 else name
        super().__init__(f"invalid context name {shown!r}: {reason}")
        self.name = name
        self.reason = reason


class ContextNotFoundError(ContextError, LookupError):
    """The named context does not exist in the store."""

    def __init__(self, name: str) -> None:
        super().__init__(f"context {name!r} does not exist")
        self.name = name


class ContextExistsError(ContextError):
    """A context with that name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"context {name!r} already exists")
        self.name = name


class SnapshotNotFoundError(ContextError, LookupError):
    """The context keeps no head snapshot of that version (never written or past retention)."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"context {name!r} keeps no snapshot of version {version}")
        self.name = name
        self.version = version


class RecoveryPointNotFoundError(ContextError, LookupError):
    """The context has no recovery point with that id."""

    def __init__(self, name: str, point_id: object) -> None:
        super().__init__(f"context {name!r} has no recovery point {point_id!r}")
        self.name = name
        self.point_id = point_id


class VersionConflict(ContextError):  # noqa: N818 - the name the spec and users know
    """A write expected one stored version and found another; nothing was written."""

    def __init__(self, name: str, expected: int, actual: int) -> None:
        super().__init__(
            f"version conflict on context {name!r}: expected version {expected}, found {actual}"
        )
        self.name = name
        self.expected = expected
        self.actual = actual


class LeaseError(ContextError):
    """Base class of the errors of single ownership (`TrackerConfig.leases`): which process
    may write a context."""


class NotOwner(LeaseError):  # noqa: N818 - the name users of leases know
    """Another process holds the context's lease, so this one may not write it now; nothing
    was written. Route the call to `owner`, or wait and retry (it was asked to hand over)."""

    def __init__(self, name: str, owner: str, expires_in: float) -> None:
        super().__init__(
            f"context {name!r} is owned by {owner!r} (lease ends in {expires_in:.3f} s "
            "unless renewed); this process may not write it"
        )
        self.name = name
        self.owner = owner
        self.expires_in = expires_in


class LeaseLost(LeaseError):  # noqa: N818 - the name users of leases know
    """The write carried a lease that has ended (it expired, or another process took the
    context over), so the store refused it and nothing was written: fencing. Safe to retry;
    the tracker reloads the context first."""

    def __init__(self, name: str, epoch: int, current: int) -> None:
        super().__init__(
            f"context {name!r}: the lease of epoch {epoch} has ended (the store holds epoch "
            f"{current}); the write was refused and nothing was written"
        )
        self.name = name
        self.epoch = epoch
        self.current = current


class StateError(ContextError):
    """A State was used in a way its rules forbid."""


class InvalidValueError(StateError, InvalidArgumentError):
    """A key or value is not JSON-compatible; the State was left unchanged."""

    def __init__(self, path: str, value: object, reason: str) -> None:
        super().__init__(f"invalid value at {path}: {reason} (got {type(value).__name__})")
        self.path = path
        self.value = value
        self.reason = reason


class KeyNotFoundError(StateError, KeyError):
    """The key to delete is not in the State; nothing changed."""

    def __init__(self, context: str, key: object) -> None:
        super().__init__(f"context {context!r} has no key {key!r}")
        self.context = context
        self.key = key

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0])


class StateTooLargeError(StateError):
    """The encoded State is larger than the configured limit; nothing was written."""

    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(
            f"state of context {name!r} encodes to {size} bytes, over the limit of {limit}"
        )
        self.name = name
        self.size = size
        self.limit = limit


class ForeignStateError(StateError):
    """A State read from one context was handed to another."""

    def __init__(self, name: str, state_context: str) -> None:
        super().__init__(f"a State of context {state_context!r} cannot update context {name!r}")
        self.name = name
        self.state_context = state_context


class PersistenceError(ContextError):
    """The store failed to read or write; the original error is chained as `__cause__`."""


class CorruptSnapshotError(PersistenceError):
    """A stored blob failed its integrity check; its contents were not returned."""


class NoIntactSnapshotError(CorruptSnapshotError):
    """Every retained snapshot of the context is damaged; `damage` lists what was found."""

    def __init__(self, message: str, damage: tuple[object, ...]) -> None:
        super().__init__(message)
        self.damage = damage


class UnsupportedFormatError(PersistenceError):
    """A stored blob or database was written by a newer or foreign format."""


class RecoveryError(ContextError):
    """A tracker failed under a call, or a context could not be brought back. Catch the
    subclass to know what to do: retry (`UpdateNotAppliedError`), read first
    (`OutcomeUnknownError`), or reactivate (`ContextFailedError`)."""


class UpdateNotAppliedError(RecoveryError):
    """The tracker failed before the call's update was stored: it was not applied, and
    retrying it is safe. The tracker restarts from the store."""


class OutcomeUnknownError(RecoveryError):
    """The call's update may or may not have been stored (the tracker or writer failed, or
    the connection broke, after the write was sent). Read the context before retrying:
    retrying blindly could apply it twice."""


class ContextFailedError(RecoveryError):
    """The context failed for good: its tracker hit the restart limit, or nothing intact
    was left to recover. Calls fail until it is deactivated and activated again."""


class WriteOutcomeUnknownError(PersistenceError, OutcomeUnknownError):
    """The connection to the store failed while a write was under way: it may or may not
    have been applied. Read the context to learn which (a tracker reloads itself from the
    store before it answers with this); retrying blindly could apply it twice."""


class SynchronizationError(ContextError):
    """A subscriber or another process could not be kept in step with a context."""


class ContextTimeoutError(ContextError, TimeoutError):
    """An actor did not answer within its timeout (the actor world's lock-acquisition failure)."""


class ContextBusyError(ContextError):
    """The context's tracker already holds as many waiting requests as it may (its stash is
    full); this one was not applied. Retry after a pause, or spread the load."""


class ContextInactiveError(ContextError):
    """The context exists but is deactivated; activate it before using its tracker."""

    def __init__(self, name: str) -> None:
        super().__init__(f"context {name!r} is inactive; activate it first")
        self.name = name


class NoCurrentContextError(ContextError):
    """The adapter has no current context (none was switched to, or it was deactivated)."""


class ShutdownError(ContextError):
    """The manager or tracker was shut down before it could handle the call."""
