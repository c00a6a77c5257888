"""The context runtime: named, versioned, persisted and supervised contexts on Pykka actors.

```python
from actors import create_adapter, create_manager

manager = create_manager("sqlite:///contexts.db")
adapter = create_adapter(manager)
tracker = adapter.initialize().get()
tracker.set("key", "value").get()
manager.shutdown().get()
```

Every error comes from one hierarchy rooted at `ContextError` (re-exported from `storage`).
"""

from __future__ import annotations

import logging

from actors._adapter import ContextAdapter, create_adapter
from actors._cell import ContextStatus
from actors._change_stream import ChangeStream
from actors._changes import Change, ChangeCause, CurrentContextChange
from actors._config import (
    LeasePolicy,
    Overflow,
    SubscriptionConfig,
    SupervisorConfig,
    SyncPolicy,
    TrackerConfig,
)
from actors._create import create_manager
from actors._factory import ContextTrackerFactory
from actors._future import ContextFuture
from actors._handle import ContextTracker
from actors._manager import ContextManager
from actors._recovery import RecoveryReport
from actors._stats import ContextStats
from actors._subscription import Subscription
from actors._typed import TypedContexts, TypedTracker, Versioned
from actors._typed_convert import make_model_converter, model_converter
from actors._typed_errors import (
    MigrationError,
    ModelMismatchError,
    ModelValueError,
    SchemaVersionError,
)
from actors._typed_schema import ContextSchema, context_schema
from storage import (
    ConfigurationError,
    ContextBusyError,
    ContextError,
    ContextExistsError,
    ContextFailedError,
    ContextInactiveError,
    ContextNotFoundError,
    ContextTimeoutError,
    CorruptSnapshotError,
    Damage,
    ForeignStateError,
    HistoryEntry,
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
    RecoveryPoint,
    RecoveryPointNotFoundError,
    ShutdownError,
    SnapshotNotFoundError,
    State,
    StateError,
    StateTooLargeError,
    SynchronizationError,
    UnsupportedFormatError,
    UpdateNotAppliedError,
    VersionConflict,
    VersionNotKeptError,
    WriteOutcomeUnknownError,
)

__all__ = [
    "Change",
    "ChangeCause",
    "ChangeStream",
    "ConfigurationError",
    "ContextAdapter",
    "ContextBusyError",
    "ContextError",
    "ContextExistsError",
    "ContextFailedError",
    "ContextFuture",
    "ContextInactiveError",
    "ContextManager",
    "ContextNotFoundError",
    "ContextSchema",
    "ContextStats",
    "ContextStatus",
    "ContextTimeoutError",
    "ContextTracker",
    "ContextTrackerFactory",
    "CorruptSnapshotError",
    "CurrentContextChange",
    "Damage",
    "ForeignStateError",
    "HistoryEntry",
    "InvalidArgumentError",
    "InvalidContextNameError",
    "InvalidValueError",
    "KeyNotFoundError",
    "LeaseError",
    "LeaseLost",
    "LeasePolicy",
    "MigrationError",
    "ModelMismatchError",
    "ModelValueError",
    "NoCurrentContextError",
    "NoIntactSnapshotError",
    "NotOwner",
    "OutcomeUnknownError",
    "Overflow",
    "PersistenceError",
    "RecoveryError",
    "RecoveryPoint",
    "RecoveryPointNotFoundError",
    "RecoveryReport",
    "SchemaVersionError",
    "ShutdownError",
    "SnapshotNotFoundError",
    "State",
    "StateError",
    "StateTooLargeError",
    "Subscription",
    "SubscriptionConfig",
    "SupervisorConfig",
    "SyncPolicy",
    "SynchronizationError",
    "TrackerConfig",
    "TypedContexts",
    "TypedTracker",
    "UnsupportedFormatError",
    "UpdateNotAppliedError",
    "VersionConflict",
    "VersionNotKeptError",
    "Versioned",
    "WriteOutcomeUnknownError",
    "context_schema",
    "create_adapter",
    "create_manager",
    "make_model_converter",
    "model_converter",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
