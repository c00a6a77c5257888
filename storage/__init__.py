"""Storage for the context runtime: the State record, its codec, and the stores that keep it.

`storage` stands alone: it never imports `actors`. Everything public is re-exported here.
`RedisStore` and `PostgresStore` are imported on first use, so `storage` works without the
optional redis-py and psycopg.
"""

from __future__ import annotations

import logging
import typing

from storage._backup import (
    BackupExistsError,
    BackupReport,
    BackupVerificationError,
    backup_sqlite,
)
from storage._codec import FORMAT_VERSION, JOURNAL_FORMAT_VERSION, SnapshotCodec
from storage._copy import (
    CopiedContext,
    CopyReport,
    CopyVerificationError,
    DestinationExistsError,
    copy_store,
)
from storage._delta import Delta
from storage._exceptions import (
    ConfigurationError,
    ContextBusyError,
    ContextError,
    ContextExistsError,
    ContextFailedError,
    ContextInactiveError,
    ContextNotFoundError,
    ContextTimeoutError,
    CorruptSnapshotError,
    ForeignStateError,
    InvalidArgumentError,
    InvalidContextNameError,
    InvalidValueError,
    KeyNotFoundError,
    LeaseError,
    LeaseLost,
    NoCurrentContextError,
    NoIntactSnapshotError,
    NotOwner,
    OutcomeUnknownError,
    PersistenceError,
    RecoveryError,
    RecoveryPointNotFoundError,
    ShutdownError,
    SnapshotNotFoundError,
    StateError,
    StateTooLargeError,
    SynchronizationError,
    UnsupportedFormatError,
    UpdateNotAppliedError,
    VersionConflict,
    WriteOutcomeUnknownError,
)
from storage._history import HistoryEntry, VersionNotKeptError
from storage._memory import MemoryStore
from storage._names import MAX_NAME_LENGTH, validate_context_name
from storage._sqlite import SqliteStore
from storage._state import State
from storage._store import ContextExport, Damage, Lease, RecoveryPoint, Store
from storage._url import open_store

if typing.TYPE_CHECKING:
    from storage._postgres import PostgresStore
    from storage._redis import RedisClusterStore, RedisStore

__all__ = [
    "FORMAT_VERSION",
    "JOURNAL_FORMAT_VERSION",
    "MAX_NAME_LENGTH",
    "BackupExistsError",
    "BackupReport",
    "BackupVerificationError",
    "ConfigurationError",
    "ContextBusyError",
    "ContextError",
    "ContextExistsError",
    "ContextExport",
    "ContextFailedError",
    "ContextInactiveError",
    "ContextNotFoundError",
    "ContextTimeoutError",
    "CopiedContext",
    "CopyReport",
    "CopyVerificationError",
    "CorruptSnapshotError",
    "Damage",
    "Delta",
    "DestinationExistsError",
    "ForeignStateError",
    "HistoryEntry",
    "InvalidArgumentError",
    "InvalidContextNameError",
    "InvalidValueError",
    "KeyNotFoundError",
    "Lease",
    "LeaseError",
    "LeaseLost",
    "MemoryStore",
    "NoCurrentContextError",
    "NoIntactSnapshotError",
    "NotOwner",
    "OutcomeUnknownError",
    "PersistenceError",
    "PostgresStore",
    "RecoveryError",
    "RecoveryPoint",
    "RecoveryPointNotFoundError",
    "RedisClusterStore",
    "RedisStore",
    "ShutdownError",
    "SnapshotCodec",
    "SnapshotNotFoundError",
    "SqliteStore",
    "State",
    "StateError",
    "StateTooLargeError",
    "Store",
    "SynchronizationError",
    "UnsupportedFormatError",
    "UpdateNotAppliedError",
    "VersionConflict",
    "VersionNotKeptError",
    "WriteOutcomeUnknownError",
    "backup_sqlite",
    "copy_store",
    "open_store",
    "validate_context_name",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    # Only the Redis and PostgreSQL stores are loaded lazily: they need redis-py and psycopg,
    # optional extras. Once loaded each is a plain module attribute, so this runs once each.
    if name in ("RedisStore", "RedisClusterStore"):
        from storage import _redis  # noqa: PLC0415

        value: object = getattr(_redis, name)
        globals()[name] = value
        return value
    if name == "PostgresStore":
        from storage._postgres import PostgresStore  # noqa: PLC0415

        globals()[name] = PostgresStore
        return PostgresStore
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
