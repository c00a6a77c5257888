"""Copying contexts between stores of any kind: `copy_store()`, and `python -m storage copy`.

Each context is read from the source as of one moment (`Store.export_context`: a read
transaction, a Lua script, a lock), so a writer that keeps updating it meanwhile can only make
the copy older, never a mix of two versions. It is written to the destination in one
transaction (`Store.import_context`), with its retained snapshots and journal entries byte for
byte and its recovery points under new ids. Then it is read back and compared with what was
read from the source: the same head, snapshots, journal entries and recovery points, every
record decoding with the destination's codec, and the head reading without damage.

Contexts are copied one after another, each as of its own moment: a copy of a store that is
being written is not one moment of the whole store (no backend could give that cheaply across
Redis keys of many slots); a SQLite file is, with `backup_sqlite`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from storage._exceptions import (
    ContextError,
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    InvalidArgumentError,
    PersistenceError,
    UnsupportedFormatError,
)
from storage._memory import MemoryStore
from storage._names import validate_context_name
from storage._sqlite import SqliteStore
from storage._store import ContextExport, RecoveryPoint, Store

__all__ = [
    "CopiedContext",
    "CopyReport",
    "CopyVerificationError",
    "DestinationExistsError",
    "copy_store",
]

_DAMAGE = (CorruptSnapshotError, UnsupportedFormatError)


class DestinationExistsError(ContextExistsError):
    """Contexts to copy exist in the destination, and replacing them was not asked for.

    Checked before anything is written: nothing was copied. `names` lists them all (`name`,
    as `ContextExistsError` has it, is the first).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        listed = ", ".join(repr(name) for name in self.names)
        ContextError.__init__(
            self,
            f"context(s) {listed} exist in the destination; nothing was copied "
            "(replace=True, or --replace, replaces them)",
        )
        self.name = self.names[0]


class CopyVerificationError(PersistenceError):
    """A copied context does not read back from the destination as it was read from the
    source. The message names the context and the first difference."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"copy of context {name!r} does not verify: {problem}")
        self.name = name
        self.problem = problem


@attrs.frozen
class CopiedContext:
    """One context `copy_store` copied and verified."""

    name: str
    version: int
    """Its head version, the same in both stores once copied."""
    snapshots: tuple[int, ...]
    """The versions of its retained snapshots, oldest first."""
    journal_entries: int
    recovery_points: tuple[RecoveryPoint, ...]
    """Its recovery points as the destination keeps them (ids of the destination)."""

    def __str__(self) -> str:
        return (
            f"{self.name}: version {self.version}, {len(self.snapshots)} snapshot(s), "
            f"{self.journal_entries} journal entries, "
            f"{len(self.recovery_points)} recovery point(s)"
        )


@attrs.frozen
class CopyReport:
    """What `copy_store` did."""

    copied: tuple[CopiedContext, ...]
    """The contexts copied, in the order they were."""
    vanished: tuple[str, ...] = ()
    """Contexts listed in the source that were deleted there before they could be read."""

    @property
    def records(self) -> int:
        """Snapshots, journal entries and recovery points written, over every context."""
        return sum(
            len(c.snapshots) + c.journal_entries + len(c.recovery_points) for c in self.copied
        )


def copy_store(
    source: Store,
    destination: Store,
    contexts: Iterable[str] | None = None,
    *,
    replace: bool = False,
    progress: Callable[[CopiedContext], object] | None = None,
) -> CopyReport:
    """Copy contexts from `source` to `destination`, each as of one moment, and verify them.

    Args:
        contexts: the names to copy; None copies every context of the source (one deleted
            there before it is read is skipped and listed in `CopyReport.vanished`).
        replace: replace contexts that exist in the destination (each whole, in the
            transaction that writes its copy). Without it, any that exists refuses the copy
            before anything is written.
        progress: called with each context once it is copied and verified.

    The destination should not be written by anyone else during the copy: a write there
    between a context's import and its check is reported as a difference.

    Raises:
        InvalidArgumentError: `source` and `destination` are the same store (the same
            object, SQLite file, Redis server and prefix, or PostgreSQL database and
            schema), `contexts` is a str, or a name is not a valid context name.
        ContextNotFoundError: a context named in `contexts` is not in the source (checked
            before anything is written).
        DestinationExistsError: without `replace`, contexts to copy exist in the destination;
            nothing was written. (`ContextExistsError`, its base, if one was created there
            after that check: the contexts before it stay copied.)
        CopyVerificationError: a copied context reads back differently; the contexts before
            it were copied and verified, it is left as written.
        CorruptSnapshotError, UnsupportedFormatError, InvalidArgumentError: a source record
            is damaged (or the journal does not reach the head); nothing of that context was
            written, the contexts before it stay copied.
    """
    if _same_data(source, destination):
        # Copied onto itself, a context would at best come back unchanged, and with
        # `replace` it could undo what a writer stored between its export and its import.
        msg = f"source and destination are the same store ({source!r}); copy to another"
        raise InvalidArgumentError(msg)
    if isinstance(contexts, str):  # iterated, it would name one context per character
        msg = f"contexts is an iterable of names, not one str: write [{contexts!r}]"
        raise InvalidArgumentError(msg)
    if contexts is None:
        names, named = source.list_contexts(), False
    else:
        names = list(dict.fromkeys(validate_context_name(name) for name in contexts))
        named = True
        present = _existing(source, names)
        missing = [name for name in names if name not in present]
        if missing:
            raise ContextNotFoundError(missing[0])
    if not replace:
        existing = _existing(destination, names)
        if existing:
            raise DestinationExistsError(sorted(existing))
    copied: list[CopiedContext] = []
    vanished: list[str] = []
    for name in names:
        try:
            export = source.export_context(name)
        except ContextNotFoundError:
            if named:
                raise
            vanished.append(name)  # deleted in the source since it was listed
            continue
        points = destination.import_context(export, replace=replace)
        _verify(destination, export)
        done = CopiedContext(
            name,
            export.head,
            tuple(version for version, _ in export.snapshots),
            len(export.journal),
            tuple(points),
        )
        copied.append(done)
        if progress is not None:
            progress(done)
    return CopyReport(tuple(copied), tuple(vanished))


def _same_data(one: Store, other: Store) -> bool:
    """Whether two store objects keep the same data: the same object or SQLite file, or
    (Redis, PostgreSQL) the same place by their repr, which names the server and database
    with the prefix or schema."""
    if one is other:
        return True
    if isinstance(one, SqliteStore) and isinstance(other, SqliteStore):
        return one.path.resolve() == other.path.resolve()
    if isinstance(one, MemoryStore) or type(one) is not type(other):
        return False
    return repr(one) == repr(other)


_CHUNK = 500
"""Names per `head_versions` call: one round trip each, and well within SQLite's limit of
variables in one statement."""


def _existing(store: Store, names: list[str]) -> dict[str, int]:
    """The head versions of those of `names` that exist in `store`."""
    found: dict[str, int] = {}
    for start in range(0, len(names), _CHUNK):
        found.update(store.head_versions(names[start : start + _CHUNK]))
    return found


def _verify(store: Store, expected: ContextExport) -> None:
    """Check that `store` holds exactly `expected`, intact; raise the first difference."""
    name = expected.name
    found = store.export_context(name)

    def differ(problem: str) -> CopyVerificationError:
        return CopyVerificationError(name, problem)

    if found.head != expected.head:
        raise differ(f"head version {found.head}, the source's is {expected.head}")
    for kind, ours, theirs in (
        ("snapshots", found.snapshots, expected.snapshots),
        ("journal entries", found.journal, expected.journal),
    ):
        if [v for v, _ in ours] != [v for v, _ in theirs]:
            raise differ(f"{kind} {[v for v, _ in ours]}, the source's {[v for v, _ in theirs]}")
        for (version, blob), (_, original) in zip(ours, theirs, strict=True):
            if blob != original:
                raise differ(f"{kind} version {version} differs from the source's")
    points = [(p.version, p.label, p.created_at, blob) for p, blob in found.recovery_points]
    wanted = [(p.version, p.label, p.created_at, blob) for p, blob in expected.recovery_points]
    if points != wanted:
        raise differ(
            f"{len(points)} recovery point(s) of versions {[p[0] for p in points]}, the "
            f"source's {len(wanted)} of versions {[p[0] for p in wanted]} (or their labels, "
            "times or snapshots differ)"
        )
    # Byte-equal records could still be unreadable here (another codec configuration):
    # decode every one with the destination's codec, as `python -m storage verify` does.
    try:
        for version, blob in found.snapshots:
            store.codec.decode(blob, context=name, version=version)
        for version, blob in found.journal:
            store.codec.decode_delta(blob, context=name, version=version)
        for point, blob in found.recovery_points:
            store.codec.decode(blob, context=name, version=point.version)
        state, damage = store.read_latest(name)
    except _DAMAGE as exc:
        raise differ(f"a record does not decode: {exc}") from exc
    if damage or state.version != expected.head:
        details = "; ".join(f"{d.kind} {d.ident}: {d.error}" for d in damage)
        raise differ(f"the head reads as version {state.version} ({details or 'no damage'})")
