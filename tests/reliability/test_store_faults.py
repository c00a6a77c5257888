"""Store faults a caller cannot see coming: each ends in a typed error, never in a write
acknowledged into a file that is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pykka
import pytest

from actors import (
    ContextStatus,
    PersistenceError,
    TrackerConfig,
    WriteOutcomeUnknownError,
    create_manager,
)
from tests.redis_server import SilentLink

GONE = "was deleted or replaced while open"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _unlink_database(db):
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            os.unlink(path)


@pytest.mark.parametrize("replace", [False, True], ids=["deleted", "replaced"])
def test_writes_to_a_deleted_database_file_are_refused(tmp_path, replace, wait):
    db = tmp_path / "gone.db"
    manager = create_manager(f"sqlite:///{db}")
    try:
        manager.create_context("ctx", {"n": 0}).get()
        tracker = manager.get_tracker("ctx").get()
        assert wait(tracker.set("n", 1)) == 1
        _unlink_database(db)
        if replace:
            db.write_bytes(b"")  # another file now has the name
        with pytest.raises(PersistenceError, match=GONE):
            wait(tracker.set("n", 2))
        with pytest.raises(PersistenceError, match=GONE):
            wait(tracker.modify(lambda s: s.set("n", 3)))
        with pytest.raises(PersistenceError, match=GONE):
            wait(manager.create_context("other"))
        # Nothing was acknowledged; the tracker still answers (and still refuses).
        assert wait(tracker.get("n")) == 1
        assert manager.status("ctx").get() is ContextStatus.ACTIVE
        with pytest.raises(PersistenceError, match=GONE):
            wait(tracker.set("n", 4))
    finally:
        manager.shutdown().get()


def test_a_redis_user_who_may_not_publish_still_writes_exactly(redis_server, wait):
    # Redis does not roll back a script that fails after writing: a PUBLISH the ACL denies
    # must not turn a write that stands into an error (and memory must not part from it).
    admin = redis_server.client()
    admin.execute_command(
        "ACL", "SETUSER", "nopublish", "on", ">secret", "~*", "&*", "+@all", "-publish"
    )
    prefix = f"acl-{uuid.uuid4().hex}"
    url = redis_server.url.replace("redis://", "redis://nopublish:secret@")
    manager = create_manager(f"{url}?prefix={prefix}")
    try:
        wait(manager.create_context("counter", {"n": 0}))
        tracker = wait(manager.get_tracker("counter"))
        for _ in range(3):
            wait(tracker.modify(lambda s: s.set("n", s.get("n") + 1)))
        assert wait(tracker.get("n")) == 3
        assert wait(manager.load("counter")).get("n") == 3
    finally:
        manager.shutdown().get()
        admin.execute_command("ACL", "DELUSER", "nopublish")
        admin.close()


def test_a_write_whose_reply_is_lost_is_reported_as_unknown_and_the_tracker_learns_it(
    redis_server, wait
):
    # The command reaches the server and runs; the connection closes before its reply. The
    # caller is told "may or may not have been applied", never "failed", and the tracker
    # reads the store before it answers, so memory and store agree at once.
    link = SilentLink(redis_server.port)
    url = f"redis://127.0.0.1:{link.port}/0?prefix=lost-{uuid.uuid4().hex}&socket_timeout=5"
    manager = create_manager(url, config=TrackerConfig(watch_interval=None))
    try:
        wait(manager.create_context("ctx", {"n": 0}))
        tracker = wait(manager.get_tracker("ctx"))
        assert wait(tracker.set("n", 1)) == 1
        link.lose_next_reply()
        with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
            wait(tracker.set("n", 2))
        assert wait(manager.load("ctx")).get("n") == 2  # it was applied
        assert wait(tracker.get("n")) == 2  # and the tracker knows
        assert wait(tracker.set("n", 3)) == 3
    finally:
        manager.shutdown().get()
        link.close()


def test_a_postgres_commit_whose_reply_is_lost_is_unknown_and_the_tracker_learns_it(
    postgres_server, wait
):
    # As above, on PostgreSQL: the connection closes at the first reply of the pipelined
    # BEGIN ... COMMIT. Whether the server got to COMMIT first is not the caller's to know
    # ("may or may not"); the tracker reads the store before it answers, so memory and store
    # agree at once, whichever it was.
    link = SilentLink(postgres_server.port)
    # One pooled connection: the pool never opens another in the background, whose reply
    # could be the one lost instead of the commit's.
    url = postgres_server.url().replace(f":{postgres_server.port}/", f":{link.port}/")
    url += "&pool_size=1"
    manager = create_manager(url, config=TrackerConfig(watch_interval=None))
    try:
        wait(manager.create_context("ctx", {"n": 0}))
        tracker = wait(manager.get_tracker("ctx"))
        assert wait(tracker.set("n", 1)) == 1
        link.lose_next_reply()
        with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
            wait(tracker.set("n", 2))
        stored = wait(manager.load("ctx")).get("n")
        assert stored in (1, 2)
        assert wait(tracker.get("n")) == stored  # the tracker knows which
        assert wait(tracker.set("n", 3)) == stored + 1  # each value was written as its version
        assert wait(manager.load("ctx")).get("n") == 3
    finally:
        manager.shutdown().get()
        link.close()


FULL_DISK_CHILD = """
import os, sys
from actors import PersistenceError, create_manager
from storage import SqliteStore, State

disk = sys.argv[1]
db = os.path.join(disk, "app.db")
writer = SqliteStore(db)  # the process that filled the disk, still holding the file
writer.create(State.new("ctx", {"n": 1}))
fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, bytes(4096))
except OSError:
    pass  # the disk is full
with create_manager(f"sqlite:///{db}") as manager:
    tracker = manager.get_tracker("ctx").get()
    print("read", tracker.get("n").get(), manager.list_contexts().get())
    try:
        tracker.set("n", 2).get()
    except PersistenceError as error:
        print("write refused:", error)
    print("after", tracker.get("n").get(), manager.load("ctx").get().get("n"))
"""


@pytest.mark.timeout(60)
def test_a_store_on_a_full_disk_opens_and_reads(tmp_path):
    # A tmpfs of 1 MiB of its own, mounted in a user and mount namespace (no root needed),
    # filled to the last byte: opening must not write, reads must work, writes fail typed.
    disk = tmp_path / "disk"
    disk.mkdir()
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed to mount a small tmpfs"
    script = tmp_path / "child.py"
    script.write_text(FULL_DISK_CHILD)
    mount = f"mount -t tmpfs -o size=1m tmpfs {disk} && exec {sys.executable} {script} {disk}"
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", mount],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "read 1 ['ctx']"
    assert lines[1].startswith("write refused:")
    assert "full" in lines[1]
    assert lines[2] == "after 1 1"


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


@pytest.mark.timeout(60)
def test_the_manager_answers_while_another_process_holds_the_write_lock(tmp_path, wait):
    # A store call waits up to busy_timeout for the lock; it must not hold up calls that
    # need no store I/O (the status and handle of a context already running).
    db = tmp_path / "locked.db"
    manager = create_manager(f"sqlite:///{db}?busy_timeout=20", ask_timeout=2.0)
    holder = None
    try:
        manager.create_context("a", {"n": 1}).get()
        tracker = manager.get_tracker("a").get()
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline() == "locked\n"
        creating = manager.create_context("b")  # waits for the lock, in the store worker
        assert wait(manager.status("a")) is ContextStatus.ACTIVE
        assert wait(manager.get_tracker("a")) == tracker
        assert wait(tracker.get("n")) == 1
        assert wait(manager.active_contexts()) == ["a"]
        assert not creating.done()
        holder.stdin.close()  # the other process lets go: the creation goes through
        assert creating.get(timeout=20).context == "b"
        assert manager.status("b").get() is ContextStatus.INACTIVE
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
            holder.stdout.close()
            if not holder.stdin.closed:
                holder.stdin.close()
        manager.shutdown().get()
