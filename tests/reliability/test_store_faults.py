"""Store faults a caller cannot see coming: each ends in a typed error, never in a write
acknowledged into a file that is gone."""

from __future__ import annotations

import os
import uuid

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
