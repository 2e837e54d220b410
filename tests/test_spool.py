"""The spool writer: owner-only, whole lines, one segment per writer, sealed when closed."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from floe_core.spool import (
    SpoolWriter,
    _creation_ns,
    ensure_spool_dir,
    fd_is_sealed,
    is_sealed,
    list_segments,
    segment_name,
)


def test_directory_and_segments_are_owner_only(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SpoolWriter(spool) as writer:
        writer.append(b'{"a": 1}\n')
        segment = writer.segment
    assert segment is not None
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


def test_a_group_readable_spool_dir_is_tightened(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o755)
    spool.chmod(0o755)
    ensure_spool_dir(spool)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


def test_open_segment_is_not_sealed_until_closed(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    writer.append(b"x\n")
    assert writer.segment is not None
    assert not is_sealed(writer.segment)
    writer.close()
    assert is_sealed(writer.segment)


def test_the_seal_check_leaves_no_lock_behind_unless_the_caller_closes_at_once(
    tmp_path: Path,
) -> None:
    """A reader's shared lock must not outlive its check on a descriptor it keeps; with
    ``closing`` it may (the close drops it), sparing the unlock call."""
    with SpoolWriter(tmp_path) as writer:
        writer.append(b"x\n")
        segment = writer.segment
    assert segment is not None

    def exclusive_lock_taken() -> bool:
        other = os.open(segment, os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(other)

    fd = os.open(segment, os.O_RDONLY)
    try:
        assert fd_is_sealed(fd)
        assert exclusive_lock_taken()  # unlocked again
        assert fd_is_sealed(fd, closing=True)
        assert not exclusive_lock_taken()  # held until the close below
    finally:
        os.close(fd)
    assert exclusive_lock_taken()


def test_a_dead_writer_leaves_a_sealed_segment(tmp_path: Path) -> None:
    code = (
        "import os, sys; from floe_core.spool import SpoolWriter; "
        "w = SpoolWriter(sys.argv[1]); w.append(b'line\\n'); os._exit(9)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert result.returncode == 9
    (segment,) = list_segments(tmp_path)
    assert segment.read_bytes() == b"line\n"
    assert is_sealed(segment)


def test_writers_get_their_own_segments_in_creation_order(tmp_path: Path) -> None:
    names = []
    for i in range(3):
        with SpoolWriter(tmp_path, prefix="adapter") as writer:
            writer.append(f"{i}\n".encode())
            assert writer.segment is not None
            names.append(writer.segment.name)
    assert [p.name for p in list_segments(tmp_path)] == names
    assert [p.read_bytes() for p in list_segments(tmp_path)] == [b"0\n", b"1\n", b"2\n"]


def test_a_segment_name_takes_second_and_nanoseconds_from_one_reading() -> None:
    """Two clock readings could straddle a second: ``20261204T010000.000000050`` for a
    segment created after ``20261204T010000.999999990``, read first by every sink."""
    late = 1_796_346_000 * 1_000_000_000 - 10  # 10 ns before a whole second
    after = late + 60
    names = [segment_name("adapter", late), segment_name("adapter", after)]
    assert sorted(names) == names
    assert names[0].startswith("20261204T005959.999999990-adapter-")
    assert names[1].startswith("20261204T010000.000000050-adapter-")


def test_segments_sort_in_creation_order_when_the_wall_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NTP step back between two segments must not put the later one first."""
    clock = iter([2_000_000_000_500_000_000, 1_999_999_999_400_000_000, 1_999_999_999_300_000_000])
    monkeypatch.setattr("floe_core.spool.time.time_ns", lambda: next(clock))
    # The readings are years ahead: put the process's last one back afterwards, or every later
    # segment of this process would be named in that future.
    monkeypatch.setattr("floe_core.spool._last_ns", 0)
    spool = tmp_path / "spool"
    made = []
    for i in range(3):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(b'{"n": %d}\n' % i)
            made.append(writer.segment)
    assert list_segments(spool) == made


def test_under_a_stopped_clock_each_segment_is_one_nanosecond_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within one clock tick (or after a step back) a name moves on by the least it can, so it
    stays as close to the clock as the order allows; once the clock is ahead again, it is the
    clock's."""
    clock = iter([5_000, 5_000, 4_000, 9_000])
    monkeypatch.setattr("floe_core.spool.time.time_ns", lambda: next(clock))
    monkeypatch.setattr("floe_core.spool._last_ns", 0)
    assert [_creation_ns() for _ in range(4)] == [5_000, 5_001, 5_002, 9_000]


def test_rotation_starts_a_new_segment(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path, max_segment_bytes=10) as writer:
        for _ in range(5):
            writer.append(b"0123456789\n")
    segments = list_segments(tmp_path)
    assert len(segments) == 5
    assert all(p.read_bytes() == b"0123456789\n" for p in segments)


def test_hidden_files_are_not_segments(tmp_path: Path) -> None:
    (tmp_path / ".being-created.ndjson").write_bytes(b"x\n")
    (tmp_path / "notes.txt").write_bytes(b"x\n")
    assert list_segments(tmp_path) == []
    assert list_segments(tmp_path / "missing") == []


def test_append_raises_when_the_disk_refuses(tmp_path: Path) -> None:
    # A spool path below a regular file cannot be created, for root too.
    (tmp_path / "file").write_bytes(b"")
    writer = SpoolWriter(tmp_path / "file" / "spool")
    with pytest.raises(OSError):
        writer.append(b"x\n")
