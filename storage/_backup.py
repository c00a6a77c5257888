"""An online backup of a SQLite store: `backup_sqlite()`, and `python -m storage backup`.

SQLite's backup API copies the database in one step (`Connection.backup` with every page at
once), which is one read transaction: the copy is the whole file as of one moment, every
context at once, while other threads and processes keep committing (in WAL mode a reader
holds no writer up). A backup made in steps would restart whenever another connection
writes, and under a steady writer might never end.

The copy goes to a temporary file beside the target, is opened as a store and verified (every
record decodes), and only then takes the target's name, so a failed backup leaves no file
that looks like one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import attrs

from storage._exceptions import ContextError, InvalidArgumentError, PersistenceError
from storage._inspect import Finding, verify
from storage._sqlite import SqliteStore
from storage._store import Store

__all__ = ["BackupExistsError", "BackupReport", "BackupVerificationError", "backup_sqlite"]


class BackupExistsError(ContextError, FileExistsError):
    """The backup's target file exists and overwriting it was not asked for; the message
    and `path` name it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{str(path)!r} exists; nothing was written (force=True, or --force, overwrites it)"
        )
        self.path = path


class BackupVerificationError(PersistenceError):
    """The backup does not open as a store or has damaged records; it was not kept."""

    def __init__(self, path: Path, findings: list[Finding]) -> None:
        shown = "; ".join(str(finding) for finding in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        super().__init__(
            f"backup to {str(path)!r} has {len(findings)} damaged record(s), so it was not "
            f"kept: {shown}{more}"
        )
        self.path = path
        self.findings = tuple(findings)


@attrs.frozen
class BackupReport:
    """What `backup_sqlite` wrote."""

    path: Path
    contexts: int
    """Contexts in the backup (every one of them verified)."""
    size: int
    """The backup file's size in bytes."""


def backup_sqlite(source: Store, target: str | Path, *, force: bool = False) -> BackupReport:
    """Copy the SQLite file of `source` to `target` as of one moment, while writers run.

    Args:
        source: a `SqliteStore` (for another kind of store, `copy_store` into a
            `SqliteStore` of the target file copies its contexts).
        target: the backup file to write; its directory must exist.
        force: overwrite `target` if it exists.

    Raises:
        InvalidArgumentError: `source` is not a `SqliteStore`, or `target` is its own file.
        BackupExistsError: `target` exists and `force` is false; nothing was written.
        BackupVerificationError: the copy has damaged records (the source has them too:
            `python -m storage verify`); no target was written.
        PersistenceError: SQLite failed, or the target's directory does not exist.
    """
    if not isinstance(source, SqliteStore):
        msg = (
            f"backup copies a SQLite file, and {source!r} is not a SqliteStore; copy its "
            "contexts instead: copy_store(source, SqliteStore(path)), or "
            "`python -m storage copy SRC_URL sqlite:///FILE`"
        )
        raise InvalidArgumentError(msg)
    target = Path(target)
    if target.absolute() == source.path.absolute() or (
        target.exists() and target.samefile(source.path)
    ):
        msg = f"backup target {str(target)!r} is the source's own file"
        raise InvalidArgumentError(msg)
    if target.exists() and not force:
        raise BackupExistsError(target)
    if not target.absolute().parent.is_dir():
        msg = f"cannot back up to {str(target)!r}: its directory does not exist"
        raise PersistenceError(msg)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        _copy_pages(source, partial)
        contexts = _verified(partial)
        try:
            _install(partial, target, force=force)
        except BackupExistsError:
            raise
        except OSError as exc:  # a directory in the way, no permission, a full disk
            msg = f"cannot write the backup to {str(target)!r}: {exc}"
            raise PersistenceError(msg) from exc
    finally:
        for leftover in (partial, *(Path(f"{partial}{s}") for s in ("-wal", "-shm", "-journal"))):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return BackupReport(target, contexts, target.stat().st_size)


def _copy_pages(source: SqliteStore, partial: Path) -> None:
    """Every page of `source`'s file into the new file `partial`, in one step."""
    try:
        with (
            closing(sqlite3.connect(source.path, timeout=source.busy_timeout)) as origin,
            closing(sqlite3.connect(partial)) as copy,
        ):
            # pages=-1: one step, one read transaction, so one moment of the whole file.
            origin.backup(copy, pages=-1)
    except sqlite3.Error as exc:
        msg = f"sqlite backup of {source.path} to {partial} failed: {exc}"
        raise PersistenceError(msg) from exc


def _verified(partial: Path) -> int:
    """Open the copy as a store and decode every record; the number of contexts in it."""
    with SqliteStore(partial) as store:
        findings = verify(store)
        if findings:
            raise BackupVerificationError(partial, findings)
        return len(store.list_contexts())


def _install(partial: Path, target: Path, *, force: bool) -> None:
    """Give the verified copy the target's name, durably."""
    file = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(file)  # its pages are on disk before any name says it is a backup
    finally:
        os.close(file)
    if force:
        os.replace(partial, target)
    else:
        try:
            os.link(partial, target)  # fails if the target appeared meanwhile
        except FileExistsError:
            raise BackupExistsError(target) from None
    directory = os.open(target.absolute().parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the new name survives a crash too
    finally:
        os.close(directory)
