"""Hostile blobs: a small snapshot that expands to gigabytes is damage, found without
allocating more than the configured state limit (issue: decompression bombs)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pykka
import pytest
import zstandard

from actors import CorruptSnapshotError, TrackerConfig, create_manager
from storage import SnapshotCodec, SqliteStore, State
from storage._codec import MAGIC, _frame

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
LIMIT = 8 * MIB
"""max_state_bytes of the stores these tests read bombs with."""


def bomb(expands_to: int, *, declared: bool = True) -> bytes:
    """A snapshot blob with a valid header and CRC whose zstd frame expands to `expands_to`
    bytes (of spaces), with the content size in the frame header or not."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=declared)
    stream = compressor.compressobj(size=expands_to if declared else -1)
    chunk = b" " * MIB
    parts = [stream.compress(chunk) for _ in range(expands_to // MIB)]
    return _frame(MAGIC, b"".join([*parts, stream.flush()]))


def lying_frame(declares: int) -> bytes:
    """A tiny frame whose header declares `declares` bytes of content it does not hold."""
    header = zstandard.ZstdCompressor(write_content_size=True).compress(b"{}")
    # Frame header: magic (4), descriptor (1) with an 8-byte content size field, then it.
    descriptor = 0b1110_0000  # content size field of 8 bytes, single segment
    return _frame(MAGIC, header[:4] + bytes([descriptor]) + declares.to_bytes(8, "little"))


@pytest.fixture(scope="module")
def two_gib_bomb() -> bytes:
    blob = bomb(2048 * MIB)
    assert len(blob) < 100_000
    return blob


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def test_a_bomb_declaring_its_size_is_damage(two_gib_bomb):
    codec = SnapshotCodec(max_state_bytes=LIMIT)
    with pytest.raises(CorruptSnapshotError, match=f"over the max_state_bytes limit of {LIMIT}"):
        codec.decode(two_gib_bomb)


def test_a_bomb_not_declaring_its_size_is_damage():
    codec = SnapshotCodec(max_state_bytes=LIMIT)
    with pytest.raises(CorruptSnapshotError, match="expands past the max_state_bytes limit"):
        codec.decode(bomb(64 * MIB, declared=False))


def test_a_frame_declaring_a_huge_size_is_damage():
    blob = lying_frame(2**62)
    assert len(blob) < 64
    with pytest.raises(CorruptSnapshotError, match="declares 4611686018427387904 bytes"):
        SnapshotCodec().decode(blob)


def test_a_state_within_the_limit_still_decodes():
    codec = SnapshotCodec(max_state_bytes=LIMIT)
    state = State.new("ctx", {"blob": "x" * (LIMIT - 1000)})
    assert codec.decode(codec.encode(state)) == state


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a child Python of the project, in a process of its own."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def _plant(db: Path, blob: bytes) -> None:
    """Context "ctx" at version 1 whose version-1 snapshot is `blob`; version 0 is intact."""
    with SqliteStore(db) as store:
        state = State.new("ctx", {"n": 0})
        store.create(state)
        store.compare_and_set(state.successor(State.new("ctx", {"n": 1})), 0)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE snapshots SET blob = ? WHERE context = 'ctx' AND version = 1", (blob,))


def test_a_bomb_in_a_store_is_typed_reported_and_skipped_by_recovery(tmp_path, two_gib_bomb, wait):
    db = tmp_path / "bomb.db"
    _plant(db, two_gib_bomb)
    manager = create_manager(f"sqlite:///{db}", config=TrackerConfig(max_state_bytes=LIMIT))
    try:
        with pytest.raises(CorruptSnapshotError, match="over the max_state_bytes limit"):
            wait(manager.load("ctx"))
        # Recovery falls back past the bomb to version 0, as past any damaged snapshot.
        tracker = wait(manager.get_tracker("ctx"))
        assert wait(tracker.get("n")) == 0
        report = wait(manager.recovery_report("ctx"))
        assert report is not None
        assert report.damaged_version == 1
    finally:
        manager.shutdown().get()
    verify = _python("-m", "storage", "verify", f"sqlite:///{db}")
    assert verify.returncode == 1, verify.stderr
    assert "DAMAGED ctx: snapshot version 1" in verify.stdout
    assert "Traceback" not in verify.stderr


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_loading_a_bomb_stays_within_the_limit_plus_64_mib(tmp_path, declared):
    # Measured in a child process of its own, whose peak RSS is this load's alone.
    db = tmp_path / "bomb.db"
    _plant(db, bomb(1024 * MIB, declared=declared))
    script = textwrap.dedent(
        f"""
        import resource, sys
        from storage import CorruptSnapshotError, SnapshotCodec, SqliteStore
        store = SqliteStore({str(db)!r}, codec=SnapshotCodec(max_state_bytes={LIMIT}))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            store.read_version("ctx", 1)
        except CorruptSnapshotError:
            pass
        else:
            sys.exit("the bomb was served")
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    result = _python("-c", script)
    assert result.returncode == 0, result.stderr
    before_kib, peak_kib = map(int, result.stdout.split())
    assert peak_kib * 1024 < before_kib * 1024 + LIMIT + 64 * MIB
