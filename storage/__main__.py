"""`python -m storage verify|ls|backup|copy`: check, list, back up and copy stores.

`verify URL` decodes every retained snapshot, journal entry and recovery point of every
context, prints each damaged one, and exits 1 if any is damaged (2 if the store cannot be
opened). `ls URL [NAME]` shows each context's head version (its newest snapshot with the
journal after it), the bytes that take, its recovery points and when it was last written.
Piped into a reader that stops early (`| head`), either stops quietly with status 141.

`backup SQLITE_URL FILE [--force]` copies a SQLite store's file as of one moment while
writers run, and verifies the copy. `copy SRC_URL DST_URL [--context NAME ...] [--replace]`
copies contexts between any two stores, each as of one moment, and verifies each. Both exit
1 when they refuse to overwrite (an existing FILE; a context that exists in the
destination) or a copy does not verify, and 2 when a store cannot be opened or another error
stops them. docs/operations.md has the how-to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from storage._backup import BackupExistsError, BackupVerificationError, backup_sqlite
from storage._copy import CopyVerificationError, DestinationExistsError, copy_store
from storage._exceptions import ContextError, ContextExistsError
from storage._history import HistoryEntry, VersionNotKeptError
from storage._inspect import ContextSummary, summarize, verify
from storage._store import Store
from storage._url import _PASSWORD, open_store

BROKEN_PIPE_STATUS = 141
"""Exit status when stdout's reader went away: 128 + SIGPIPE, as a tool killed by it has."""


def _verify(store: Store) -> int:
    findings = verify(store)
    for finding in findings:
        print(f"DAMAGED {finding}")
    contexts = len(store.list_contexts())
    if findings:
        print(f"{len(findings)} damaged record(s) in {contexts} context(s)")
        return 1
    print(f"ok: {contexts} context(s), every snapshot and recovery point intact")
    return 0


def _ls(store: Store, name: str | None) -> int:
    if name is None:
        print(f"{'NAME':<32} {'VERSION':>8} {'SIZE':>10} {'POINTS':>6}  UPDATED")
        for context in store.list_contexts():
            summary = summarize(store, context)
            print(
                f"{summary.name:<32} {summary.version:>8} {summary.size:>10} "
                f"{summary.recovery_points:>6}  {_when(summary)}"
            )
        return 0
    summary = summarize(store, name)
    print(
        f"context {name}: version {summary.version}, {summary.size} bytes, updated {_when(summary)}"
    )
    print(
        f"stored as: snapshot of version {summary.snapshot_version} "
        f"+ {summary.journal_entries} journal entries"
    )
    print(f"retained snapshots: {', '.join(map(str, store.list_versions(name)))}")
    points = store.list_recovery_points(name)
    print(f"recovery points: {len(points)}")
    for point in points:
        label = point.label if point.label is not None else "-"
        print(
            f"  id {point.point_id}: version {point.version}, label {label}, "
            f"created {point.created_at.isoformat()}"
        )
    return 0


def _when(summary: ContextSummary) -> str:
    return summary.updated_at.isoformat() if summary.updated_at else "DAMAGED"


REFUSED_STATUS = 1
"""Exit status of a backup or copy that refused to overwrite, or whose copy did not verify."""

ERROR_STATUS = 2
"""Exit status when a store cannot be opened or another error stops a command."""


def _shown(url: str) -> str:
    """`url` as messages show it: without its password."""
    return _PASSWORD.sub(r"\1:***@", url, count=1)


def _backup(url: str, file: str, *, force: bool) -> int:
    if urlsplit(url).scheme != "sqlite":
        # Checked before opening: a backup of another store would connect for nothing.
        print(
            f"error: backup copies a SQLite file and {_shown(url)!r} is not a sqlite:/// URL; copy "
            f"the contexts instead: python -m storage copy SRC_URL sqlite:///{file}",
            file=sys.stderr,
        )
        return ERROR_STATUS
    try:
        store = open_store(url)
    except (ContextError, ValueError, ImportError) as exc:
        print(f"cannot open {url}: {exc}", file=sys.stderr)
        return ERROR_STATUS
    try:
        report = backup_sqlite(store, file, force=force)
    except (BackupExistsError, BackupVerificationError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED_STATUS
    except ContextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR_STATUS
    finally:
        store.close()
    print(
        f"backed up {report.contexts} context(s) to {report.path} ({report.size} bytes); "
        "every snapshot, journal entry and recovery point in it intact"
    )
    return 0


def _copy(source_url: str, destination_url: str, names: list[str] | None, *, replace: bool) -> int:
    stores: list[Store] = []
    try:
        for url in (source_url, destination_url):
            try:
                stores.append(open_store(url))
            except (ContextError, ValueError, ImportError) as exc:
                print(f"cannot open {_shown(url)}: {exc}", file=sys.stderr)
                return ERROR_STATUS
        source, destination = stores
        try:
            report = copy_store(
                source,
                destination,
                names,
                replace=replace,
                progress=lambda done: print(f"copied {done}", flush=True),
            )
        except (DestinationExistsError, ContextExistsError, CopyVerificationError) as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return REFUSED_STATUS
        except ContextError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ERROR_STATUS
        for name in report.vanished:
            print(f"skipped {name}: deleted in the source during the copy")
        print(
            f"{len(report.copied)} context(s) copied, {report.records} record(s); each "
            "verified: the destination holds the versions read from the source, intact"
        )
        return 0
    finally:
        for store in stores:
            store.close()


# -- history and show: the versions a store keeps, and the State of one --------------------

HISTORY_COMMANDS = frozenset({"history", "show"})
"""The subcommands `_run_history_command` runs."""


def _add_history_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history",
        help="list the versions of a context the store keeps: version, time, kind, cause, keys",
    )
    history.add_argument("url", help="store URL, e.g. sqlite:///contexts.db")
    history.add_argument("name", help="the context")
    history.add_argument("--since", type=int, metavar="N", help="versions N and above only")
    history.add_argument("--limit", type=int, metavar="N", help="at most N versions")
    show = commands.add_parser(
        "show", help="print a context's State as JSON: the head, or a kept older version"
    )
    show.add_argument("url", help="store URL, e.g. sqlite:///contexts.db")
    show.add_argument("name", help="the context")
    moment = show.add_mutually_exclusive_group()
    moment.add_argument("--version", type=int, metavar="N", help="version N, if still kept")
    moment.add_argument(
        "--at",
        type=datetime.fromisoformat,
        metavar="TIME",
        help="the newest version made at or before TIME (ISO 8601, with its offset)",
    )


def _run_history_command(args: argparse.Namespace) -> int:
    """`history URL NAME [--since N] [--limit N]`, or `show URL NAME [--version N | --at T]`.

    Exit status: 0; 1 if the version asked for is no longer kept (the message says which
    are); 2 if the store cannot be opened or another error stops it.
    """
    try:
        store = open_store(args.url)
    except (ContextError, ValueError, ImportError) as exc:
        print(f"cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "history":
            for entry in store.history(args.name, args.since, args.limit):
                print(_history_line(entry))
        else:
            if args.version is not None:
                state = store.read_at(args.name, args.version)
            elif args.at is not None:
                state = store.read_as_of(args.name, args.at)
            else:
                state = store.read_head(args.name)
            print(json.dumps(store.codec.unstructure(state), indent=2, ensure_ascii=False))
    except VersionNotKeptError as exc:
        print(f"not kept: {exc}", file=sys.stderr)
        return 1
    except ContextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as `ls` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    finally:
        store.close()
    return 0


def _history_line(entry: HistoryEntry) -> str:
    """One version: `VERSION  TIME  KIND  CAUSE  KEYS CHANGED` (cause `-` if not recorded)."""
    if entry.changed is None:
        keys = "full snapshot"
    else:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("set", entry.changed),
                ("removed", entry.removed),
                ("metadata set", entry.metadata_changed or ()),
                ("metadata removed", entry.metadata_removed),
            )
            if names
        ]
        keys = "; ".join(parts) or "no change"
    stamp, cause = entry.updated_at.isoformat(), entry.cause or "-"
    return f"{entry.version:>8}  {stamp}  {entry.kind:<8}  {cause:<8}  {keys}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="check every snapshot and recovery point")
    check.add_argument("url", help="store URL, e.g. sqlite:///contexts.db")
    listing = commands.add_parser("ls", help="list contexts, or one context in detail")
    listing.add_argument("url", help="store URL, e.g. sqlite:///contexts.db")
    listing.add_argument("name", nargs="?", help="a context to show in detail")
    backup = commands.add_parser(
        "backup", help="copy a SQLite store's file as of one moment, while writers run"
    )
    backup.add_argument("url", help="the SQLite store, e.g. sqlite:///contexts.db")
    backup.add_argument("file", help="the backup file to write")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    copying = commands.add_parser(
        "copy", help="copy contexts between any two stores, each as of one moment"
    )
    copying.add_argument("source", help="store URL to copy from")
    copying.add_argument("destination", help="store URL to copy to")
    copying.add_argument(
        "--context",
        dest="contexts",
        action="append",
        metavar="NAME",
        help="copy this context (repeat for more); default: every context",
    )
    copying.add_argument(
        "--replace",
        action="store_true",
        help="replace contexts that exist in the destination (else the copy is refused)",
    )
    _add_history_commands(commands)
    args = parser.parse_args(argv)
    if args.command in HISTORY_COMMANDS:
        return _run_history_command(args)
    try:
        if args.command == "backup":
            return _backup(args.url, args.file, force=args.force)
        if args.command == "copy":
            return _copy(args.source, args.destination, args.contexts, replace=args.replace)
        return _inspect(args.url, getattr(args, "name", None), verifying=args.command == "verify")
    except BrokenPipeError:
        return _reader_gone()


def _inspect(url: str, name: str | None, *, verifying: bool) -> int:
    """`verify URL` (`verifying`), or `ls URL [NAME]`."""
    try:
        store = open_store(url)
    except (ContextError, ValueError, ImportError) as exc:
        print(f"cannot open {_shown(url)}: {exc}", file=sys.stderr)
        return ERROR_STATUS
    try:
        return _verify(store) if verifying else _ls(store, name)
    except ContextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR_STATUS
    finally:
        store.close()


def _reader_gone() -> int:
    # The reader went away (`... | head`): stop quietly, as other tools do. Later writes to
    # stdout, including the flush at exit, go nowhere instead of raising again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return BROKEN_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
