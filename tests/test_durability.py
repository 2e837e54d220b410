"""What a crash, a full disk or a concurrent reader must not cost: the atomic replace is durable
and never torn, a segment replaced under its name is not retired unread, and a fresh segment is
never taken for a sealed one.

Each test here fails on one realistic bug (a mutant) the rest of the suite let through: the
fsync dropped, a write in place, the inode check of retention dropped, the flock taken after the
rename that makes a segment visible; and the dead-letter file keeps every record whole, its raw
bytes restorable exactly.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from floe_core import fsutil, spool
from floe_core.spool import SpoolWriter, is_sealed, list_segments
from floe_sidecar.engine import retention
from floe_sidecar.engine.cursor import (
    Cursor,
    SegmentPosition,
    fingerprint,
    load_cursor,
    save_cursor,
)
from floe_sidecar.engine.deadletter import (
    DeadLetter,
    DeadLetterRecord,
    read_deadletter,
    restore_line,
)
from floe_sidecar.engine.reader import SealedEnd, SpoolReader
from floe_sidecar.engine.retention import retire_segments

#: Pinned: saved cursors hold these (blake2b, 8 bytes, of a segment's first bytes).
FINGERPRINT_OF_A_LINE = "b46704131ea8423f"
FINGERPRINT_OF_NOTHING = "e4a6a0577479b2b4"


class FsyncSpy:
    """Records, in order, which file (by inode) each ``fsync`` and each ``os.replace`` touched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            info = os.fstat(fd)
            kind = "fsync-dir" if stat.S_ISDIR(info.st_mode) else "fsync"
            self.calls.append((kind, info.st_ino))
            real_fsync(fd)

        def replace(src: str | Path, dst: str | Path) -> None:
            self.calls.append(("replace", os.stat(src).st_ino))
            real_replace(src, dst)

        monkeypatch.setattr(fsutil.os, "fsync", fsync)
        monkeypatch.setattr(fsutil.os, "replace", replace)


# -- atomic_write: durable, and never torn -------------------------------------------------------


def test_a_durable_atomic_write_fsyncs_the_new_file_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "profiles.yml"
    target.write_bytes(b"old")
    spy = FsyncSpy(monkeypatch)
    fsutil.atomic_write(target, b"new")
    new_inode = target.stat().st_ino
    assert spy.calls == [("fsync", new_inode), ("replace", new_inode)]
    assert target.read_bytes() == b"new"


def test_sync_dir_also_fsyncs_the_directory_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "released.json"
    spy = FsyncSpy(monkeypatch)
    fsutil.atomic_write(target, b"{}", sync_dir=True)
    new_inode = target.stat().st_ino
    assert spy.calls == [
        ("fsync", new_inode),
        ("replace", new_inode),
        ("fsync-dir", tmp_path.stat().st_ino),
    ]


def test_a_non_durable_atomic_write_skips_every_fsync_but_still_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "page.html"
    spy = FsyncSpy(monkeypatch)
    fsutil.atomic_write(target, b"<html>", durable=False, sync_dir=True)
    assert spy.calls == [("replace", target.stat().st_ino)]


def test_the_cursor_is_saved_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    spy = FsyncSpy(monkeypatch)
    save_cursor(path, Cursor(owner="s"))
    assert spy.calls == [("fsync", path.stat().st_ino), ("replace", path.stat().st_ino)]
    save_cursor(path, Cursor(owner="s"), durable=False)  # a test run's or a replay's cursor
    assert [kind for kind, _ in spy.calls] == ["fsync", "replace", "replace"]


def test_a_write_that_fails_part_way_leaves_the_old_cursor_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    old = Cursor(owner="s", positions={"a.ndjson": SegmentPosition(ino=1, dev=2, offset=30)})
    old.delivered = 7
    save_cursor(path, old)
    before = path.read_bytes()
    real_write = os.write
    writes: list[int] = []

    def disk_fills(fd: int, data: bytes | memoryview) -> int:
        """The first call writes half, the second finds the disk full."""
        writes.append(len(data))
        if len(writes) == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil.os, "write", disk_fills)
    new = Cursor(owner="s", positions={"a.ndjson": SegmentPosition(ino=1, dev=2, offset=900)})
    with pytest.raises(OSError, match="No space left"):
        save_cursor(path, new)
    monkeypatch.undo()
    assert len(writes) == 2  # it did write part of the new cursor somewhere
    assert path.read_bytes() == before
    msgspec.json.decode(path.read_bytes())  # parseable
    back = load_cursor(path, "s")
    assert back.positions["a.ndjson"].offset == 30 and back.delivered == 7
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # the torn temporary file is gone


def test_a_failed_atomic_write_of_a_new_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil.os, "write", full)
    with pytest.raises(OSError):
        fsutil.atomic_write(tmp_path / "compiled_artifacts.json", b"{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_owner_only_from_its_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """profiles.yml and the cursors go through the temporary file: had it another mode for an
    instant, a reader that opened it then would keep its access and read what follows."""
    modes_before_the_chmod: list[int] = []
    real_fchmod = os.fchmod

    def fchmod(fd: int, mode: int) -> None:
        modes_before_the_chmod.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(fsutil.os, "fchmod", fchmod)
    umask = os.umask(0)  # nothing taken away by the umask: the mode asked for is the mode got
    try:
        fsutil.atomic_write(tmp_path / "profiles.yml", b"password: from-env\n")
    finally:
        os.umask(umask)
    assert modes_before_the_chmod == [0o600]
    assert stat.S_IMODE((tmp_path / "profiles.yml").stat().st_mode) == 0o600


def test_the_error_that_stopped_the_write_is_the_one_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the temporary file is already gone (removed by someone else as the rename
    failed), the caller gets the real failure, not a FileNotFoundError of the clean-up."""
    target = tmp_path / "c.json"
    target.write_bytes(b"old")

    def replace(src: str | Path, dst: str | Path) -> None:
        os.unlink(src)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fsutil.os, "replace", replace)
    with pytest.raises(OSError) as failed:
        fsutil.atomic_write(target, b"new")
    assert failed.value.errno == errno.EIO
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["c.json"]


# -- retention: the segment by identity, not by name ---------------------------------------------


def _segment(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def _position_at_end(path: Path) -> SegmentPosition:
    st = path.stat()
    return SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=st.st_size)


def test_a_segment_replaced_by_a_shorter_one_is_not_retired_unread(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    path = _segment(spool_dir, name, b'{"old": 1}\n' * 10)
    read_to_the_end = {name: _position_at_end(path)}
    keep_old_inode = tmp_path / "old-inode"
    os.link(path, keep_old_inode)  # the old file lives on, so the new one gets another inode
    replacement = spool_dir / ".replacement"
    replacement.write_bytes(b'{"new": 1}\n')
    os.replace(replacement, path)
    assert path.stat().st_ino != keep_old_inode.stat().st_ino
    assert path.stat().st_size < read_to_the_end[name].offset

    assert retire_segments(spool_dir, [read_to_the_end]) == []
    assert path.read_bytes() == b'{"new": 1}\n'
    # Once a sink has read the new file to its end, it goes.
    assert retire_segments(spool_dir, [{name: _position_at_end(path)}]) == [name]
    assert not path.exists()


def test_the_same_inode_on_another_device_is_another_file(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    path = _segment(spool_dir, name, b'{"a": 1}\n')
    end = _position_at_end(path)
    elsewhere = SegmentPosition(ino=end.ino, dev=end.dev + 1, offset=end.offset)
    assert retire_segments(spool_dir, [{name: elsewhere}]) == []
    assert retire_segments(spool_dir, [{name: end}, {name: elsewhere}]) == []
    assert path.exists()


def test_a_segment_is_retired_exactly_at_its_end_and_not_before(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    path = _segment(spool_dir, name, b'{"a": 1}\n{"b": 2}\n')
    end = _position_at_end(path)
    short = SegmentPosition(ino=end.ino, dev=end.dev, offset=end.offset - 1)
    assert retire_segments(spool_dir, [{name: short}]) == []
    assert retire_segments(spool_dir, [{name: end}, {}]) == []  # a sink that never read it
    assert retire_segments(spool_dir, [{name: end}, {name: end}]) == [name]


# -- the spool writer: locked before it is visible -----------------------------------------------


def test_a_new_segment_is_locked_before_it_becomes_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the rename that makes a segment visible and the writer's first append, a reader
    must see it unsealed and retention must keep it: else it is retired, and the writer appends
    to an unlinked file (every event of the step lost)."""
    spool_dir = tmp_path / "spool"
    real_rename = os.rename
    seen_in_the_window: list[tuple[bool, list[str]]] = []

    def rename_then_look(src: str | Path, dst: str | Path) -> None:
        real_rename(src, dst)
        visible = Path(dst)
        if visible.parent == spool_dir and not visible.name.startswith("."):
            # A sink's reader reaches the empty segment at once; only the lock tells it that more
            # is coming (else it would report it sealed, and retention take it on its word).
            reader = SpoolReader(spool_dir, {})
            assert reader.read(10) is None
            sealed = reader.sealed_ends()
            reader.close()
            seen_in_the_window.append(
                (is_sealed(visible), retire_segments(spool_dir, [{}], sealed=sealed))
            )

    monkeypatch.setattr(spool.os, "rename", rename_then_look)
    with SpoolWriter(spool_dir, prefix="adapter") as writer:
        writer.append(b'{"n": 1}\n')
        segment = writer.segment
        assert segment is not None
        assert not is_sealed(segment)
    monkeypatch.undo()
    assert seen_in_the_window == [(False, [])]
    assert [p.name for p in list_segments(spool_dir)] == [segment.name]
    assert segment.read_bytes() == b'{"n": 1}\n'
    assert is_sealed(segment)  # closed: now it is sealed


# -- archiving: the copy is whole and durable before the segment goes ----------------------------


def test_archiving_across_file_systems_copies_durably_then_unlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir, archive = tmp_path / "spool", tmp_path / "archive" / "spool"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    data = b'{"a": 1}\n' * 50
    path = _segment(spool_dir, name, data)
    real_rename = os.rename

    def other_file_system(src: str | Path, dst: str | Path) -> None:
        if Path(src) == path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(retention.os, "rename", other_file_system)
    spy = FsyncSpy(monkeypatch)
    assert retire_segments(spool_dir, [{name: _position_at_end(path)}], archive_dir=archive) == [
        name
    ]
    archived = archive / name
    assert archived.read_bytes() == data and not path.exists()
    assert [p.name for p in archive.iterdir()] == [name]  # no temporary copy left
    assert stat.S_IMODE(archived.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    # The copy is on disk before the original goes; both directory changes are made durable.
    assert spy.calls[0] == ("fsync", archived.stat().st_ino)
    assert ("fsync-dir", archive.stat().st_ino) in spy.calls
    assert spy.calls[-1] == ("fsync-dir", spool_dir.stat().st_ino)


def test_an_archive_that_cannot_be_written_keeps_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir, archive = tmp_path / "spool", tmp_path / "archive"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    path = _segment(spool_dir, name, b'{"a": 1}\n')

    def refused(src: str | Path, dst: str | Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(retention.os, "rename", refused)
    with pytest.raises(PermissionError):
        retire_segments(spool_dir, [{name: _position_at_end(path)}], archive_dir=archive)
    assert path.read_bytes() == b'{"a": 1}\n'


def test_archiving_into_an_existing_archive_on_the_same_file_system(tmp_path: Path) -> None:
    spool_dir, archive = tmp_path / "spool", tmp_path / "archive"
    archive.mkdir(mode=0o700)
    names = [f"20260101T00000{i}.000000001-adapter-1-aaaaaa.ndjson" for i in range(2)]
    positions = {n: _position_at_end(_segment(spool_dir, n, b'{"n": 1}\n')) for n in names}
    inodes = {n: p.ino for n, p in positions.items()}
    assert retire_segments(spool_dir, [positions], archive_dir=archive) == names
    assert {n: (archive / n).stat().st_ino for n in names} == inodes  # renamed, not copied
    assert list_segments(spool_dir) == []


def test_one_segment_that_must_stay_does_not_hold_back_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment still being read, still being written or already gone is skipped, not a stop:
    the segments after it are retired in the same pass (else the spool only grows)."""
    spool_dir = tmp_path / "spool"
    unread, written, done = (
        f"20260101T00000{i}.000000001-adapter-1-aaaaaa.ndjson" for i in range(3)
    )
    unread_path = _segment(spool_dir, unread, b"{}\n")
    positions = {
        unread: SegmentPosition(ino=unread_path.stat().st_ino, dev=unread_path.stat().st_dev),
        written: _position_at_end(_segment(spool_dir, written, b"{}\n")),
        done: _position_at_end(_segment(spool_dir, done, b"{}\n")),
    }
    real_list = retention.list_segment_names
    ghost = "20260101T000000.000000000-adapter-1-gone00.ndjson"
    monkeypatch.setattr(retention, "list_segment_names", lambda d: [ghost, *real_list(d)])
    writer_fd = os.open(spool_dir / written, os.O_RDONLY)
    try:
        fcntl.flock(writer_fd, fcntl.LOCK_EX)  # a writer still appends to it
        assert retire_segments(spool_dir, [positions]) == [done]
    finally:
        os.close(writer_fd)
    assert sorted(p.name for p in list_segments(spool_dir)) == [unread, written]


def test_the_spool_writer_fsyncs_its_segment_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    with SpoolWriter(tmp_path / "spool") as writer:
        writer.fsync()  # nothing open yet: nothing to sync
        assert spy.calls == []
        writer.append(b'{"n": 1}\n')
        writer.fsync()
        assert writer.segment is not None
        assert spy.calls == [("fsync", writer.segment.stat().st_ino)]


def test_a_segment_that_changed_as_it_was_sealed_is_kept_and_the_next_still_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The size read before the seal check may be stale (a last append, a replacement): such a
    segment waits for the next pass, and a segment another process removed meanwhile is not an
    error; neither stops the pass."""
    spool_dir = tmp_path / "spool"
    grew, vanished, done = (
        f"20260101T00000{i}.000000001-adapter-1-aaaaaa.ndjson" for i in range(3)
    )
    positions = {
        n: _position_at_end(_segment(spool_dir, n, b"{}\n")) for n in (grew, vanished, done)
    }
    real_sealed, real_unlink = retention.fd_is_sealed, os.unlink
    grew_ino = (spool_dir / grew).stat().st_ino

    def last_append_then_seal(fd: int, *, closing: bool = False) -> bool:
        if os.fstat(fd).st_ino == grew_ino:
            with (spool_dir / grew).open("ab") as late:
                late.write(b'{"late": 1}\n')
        return real_sealed(fd, closing=closing)

    def removed_by_another(path: str | Path, *, dir_fd: int | None = None) -> None:
        if Path(path).name == vanished:
            real_unlink(path, dir_fd=dir_fd)
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(retention, "fd_is_sealed", last_append_then_seal)
    monkeypatch.setattr(retention.os, "unlink", removed_by_another)
    with caplog.at_level("DEBUG", logger="floe_sidecar.engine.retention"):
        assert retire_segments(spool_dir, [positions]) == [done]
    monkeypatch.undo()
    assert [p.name for p in list_segments(spool_dir)] == [grew]
    assert (spool_dir / grew).read_bytes() == b'{}\n{"late": 1}\n'
    [record] = [r for r in caplog.records if r.name == "floe_sidecar.engine.retention"]
    assert record.getMessage() == "segments retired" and record.levelname == "DEBUG"
    assert (record.count, record.archived) == (1, False)  # type: ignore[attr-defined]


# -- the dead-letter file: nothing it keeps is lost or altered -----------------------------------


def test_a_record_holds_the_reason_the_place_and_the_bytes() -> None:
    record = DeadLetterRecord(
        kind="bad_line",
        reason="undecodable line",
        segment="s.ndjson",
        offset=12,
        line=b"{not json",
        sink="lineage",
    )
    assert record.to_json("2026-01-01T00:00:00Z") == {
        "at": "2026-01-01T00:00:00Z",
        "kind": "bad_line",
        "reason": "undecodable line",
        "sink": "lineage",
        "segment": "s.ndjson",
        "offset": 12,
        "length": 9,
        "truncated": False,
        "line": "{not json",
    }


def test_a_note_has_no_line_fields() -> None:
    note = DeadLetterRecord(kind="note", reason="segment replaced", segment="s.ndjson")
    assert note.to_json("t") == {
        "at": "t",
        "kind": "note",
        "reason": "segment replaced",
        "sink": None,
        "segment": "s.ndjson",
        "offset": None,
    }
    assert restore_line(note.to_json("t")) is None


def test_an_oversized_line_keeps_its_head_and_says_so() -> None:
    head = DeadLetterRecord(kind="oversized", reason="too long", line=b"abc", length=10)
    out = head.to_json("t")
    assert (out["length"], out["truncated"], out["line"]) == (10, True, "abc")
    whole = DeadLetterRecord(kind="oversized", reason="r", line=b"abc", length=3)
    assert whole.to_json("t")["truncated"] is False


def test_bytes_that_are_not_utf8_are_kept_in_base64_and_restored_exactly() -> None:
    raw = b"\xff\xfe{\x00}\n\x80"
    out = DeadLetterRecord(kind="bad_line", reason="r", line=raw).to_json("t")
    assert "line" not in out and out["length"] == len(raw)
    assert restore_line(json.loads(json.dumps(out))) == raw
    text = DeadLetterRecord(kind="bad_line", reason="r", line="é{".encode()).to_json("t")
    assert "line_b64" not in text and restore_line(text) == "é{".encode()


def test_write_appends_whole_owner_only_lines_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "dl" / "deadletter.ndjson"
    dead = DeadLetter(path)
    assert dead.write([]) == 0 and not path.exists()
    records = [DeadLetterRecord(kind="rejected", reason=f"no {i}", line=b"x") for i in range(3)]
    assert dead.write(records) == 3
    assert dead.write(records[:1]) == 1
    assert dead.count == 4
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = read_deadletter(path)
    assert [r["reason"] for r in back] == ["no 0", "no 1", "no 2", "no 0"]
    assert all(str(r["at"]).endswith("Z") for r in back)
    assert path.read_bytes().endswith(b"\n")


def test_write_is_durable_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = fsutil.os.fsync
    monkeypatch.setattr(fsutil.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    record = [DeadLetterRecord(kind="gave_up", reason="r")]
    DeadLetter(tmp_path / "a.ndjson").write(record)
    assert len(synced) == 1
    DeadLetter(tmp_path / "b.ndjson", durable=False).write(record)
    DeadLetter(tmp_path / "b.ndjson", durable=False).absorb(b'{"kind": "note"}\n')
    assert len(synced) == 1


def test_records_of_another_sidecar_are_absorbed_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "deadletter.ndjson"
    dead = DeadLetter(path)
    assert dead.absorb(b"") == 0 and dead.absorb(b"\n  \n") == 0 and not path.exists()
    assert dead.absorb(b'{"kind": "bad_line"}\n\n{"kind": "rejected"}\n') == 2
    assert dead.absorb(b'{"kind": "torn"') == 1  # a torn last record stays one record
    assert dead.absorb(b'{"kind": "after"}\n') == 1
    assert dead.count == 4
    assert path.read_bytes() == (
        b'{"kind": "bad_line"}\n\n{"kind": "rejected"}\n{"kind": "torn"\n{"kind": "after"}\n'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reading_a_missing_file_finds_no_record(tmp_path: Path) -> None:
    assert read_deadletter(tmp_path / "none.ndjson") == []
    (tmp_path / "blank.ndjson").write_bytes(b"\n \n")
    assert read_deadletter(tmp_path / "blank.ndjson") == []


# -- append_lines: durable by default, and a write-only file still gets the lines ----------------


def test_appended_lines_are_durable_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out" / "lineage.ndjson"
    spy = FsyncSpy(monkeypatch)
    fsutil.append_lines(path, b'{"a": 1}\n')
    assert spy.calls == [("fsync", path.stat().st_ino)]
    fsutil.append_lines(path, b'{"b": 2}\n', durable=False)
    fsutil.append_lines(Path(os.devnull), b'{"c": 3}\n')  # not a regular file: never synced
    assert len(spy.calls) == 1
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_file_that_cannot_be_read_is_appended_to_without_the_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file this process may write but not read: the lines still land, durably; only the
    torn-line repair, which must read the last byte, is skipped."""
    torn, created = tmp_path / "torn.ndjson", tmp_path / "new.ndjson"
    torn.write_bytes(b'{"a": 1}\n{"torn"')
    real_open = os.open

    def write_only(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(fsutil.os, "open", write_only)
    spy = FsyncSpy(monkeypatch)
    fsutil.append_lines(torn, b'{"b": 2}\n')
    fsutil.append_lines(created, b'{"c": 3}\n')
    monkeypatch.undo()
    assert torn.read_bytes() == b'{"a": 1}\n{"torn"{"b": 2}\n'
    assert created.read_bytes() == b'{"c": 3}\n'
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert [kind for kind, _ in spy.calls] == ["fsync", "fsync"]


def test_a_segment_that_reached_its_size_limit_gets_no_more_lines(tmp_path: Path) -> None:
    """Rotation at the limit, not one write past it: a segment never exceeds the limit by more
    than the one write that reached it."""
    with SpoolWriter(tmp_path / "spool", max_segment_bytes=10) as writer:
        writer.append(b"012345678\n")  # exactly 10 bytes: full
        writer.append(b"a\n")
        writer.append(b"b\n")
    sizes = [p.stat().st_size for p in list_segments(tmp_path / "spool")]
    assert sizes == [10, 4]


def test_a_short_write_is_finished_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk may take part of a write (nearly full, a signal): the rest follows, so no line is
    cut short."""
    real_write = os.write

    def short_first(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data)[: max(1, len(data) // 3)])

    monkeypatch.setattr(spool.os, "write", short_first)
    with SpoolWriter(tmp_path / "spool") as writer:
        writer.append(b'{"n": 1}\n{"n": 2}\n')
        segment = writer.segment
    monkeypatch.undo()
    assert segment is not None and segment.read_bytes() == b'{"n": 1}\n{"n": 2}\n'


def test_rotation_counts_every_write_of_the_segment(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path / "spool", max_segment_bytes=10) as writer:
        for _ in range(3):
            writer.append(b"01234\n")
    assert [p.stat().st_size for p in list_segments(tmp_path / "spool")] == [12, 6]


def test_segment_names_sort_by_their_utc_creation_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers take segments in name order, so the name starts with the UTC time (whatever the
    machine's time zone), then nanoseconds, the writer's prefix and pid, and a random token."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        before = datetime.now(UTC).replace(microsecond=0)
        with SpoolWriter(tmp_path / "spool", prefix="adapter") as writer:
            writer.append(b"{}\n")
            name = writer.segment.name if writer.segment else ""
        after = datetime.now(UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
    match = re.fullmatch(
        rf"(\d{{8}}T\d{{6}})\.(\d{{9}})-adapter-{os.getpid()}-([0-9a-f]{{6}})\.ndjson", name
    )
    assert match is not None, name
    stamp = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    assert before <= stamp <= after


def test_a_segment_is_opened_for_appending_only(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path / "spool") as writer:
        writer.append(b"{}\n")
        assert writer._fd is not None
        flags = fcntl.fcntl(writer._fd, fcntl.F_GETFL)
    assert flags & os.O_APPEND and flags & os.O_ACCMODE == os.O_WRONLY


def test_a_segment_that_cannot_be_locked_is_not_used_and_the_error_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(spool.fcntl, "flock", no_locks)
    writer = SpoolWriter(tmp_path / "spool")
    with pytest.raises(OSError, match="No locks available"):
        writer.append(b"{}\n")
    monkeypatch.undo()
    assert writer._fd is None and list_segments(tmp_path / "spool") == []
    writer.append(b"{}\n")  # the next append tries a new segment
    writer.close()
    assert len(list_segments(tmp_path / "spool")) == 1


def test_absorbed_records_are_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = FsyncSpy(monkeypatch)
    path = tmp_path / "deadletter.ndjson"
    DeadLetter(path).absorb(b'{"kind": "note"}\n')
    assert spy.calls == [("fsync", path.stat().st_ino)]


# -- the spool directory: owner-only from the moment it exists -----------------------------------


def test_a_new_spool_directory_is_created_owner_only_with_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chmods: list[tuple[str, int]] = []
    real_chmod = os.chmod
    monkeypatch.setattr(
        spool.os, "chmod", lambda p, m: (chmods.append((str(p), m)), real_chmod(p, m))
    )
    directory = spool.ensure_spool_dir(tmp_path / "a" / "b" / "spool")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert chmods == []  # owner-only from its creation, not only after a chmod


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (0o755, 0o700),
        (0o777, 0o700),
        (0o750, 0o700),
        (0o654, 0o600),
        (0o700, 0o700),
        (0o600, 0o600),
    ],
)
def test_an_existing_spool_directory_loses_what_others_could_do(
    tmp_path: Path, before: int, after: int
) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    os.chmod(directory, before)
    spool.ensure_spool_dir(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == after


def test_a_writer_has_no_segment_until_its_first_append(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool")
    assert writer.segment is None and writer.prefix == "events"
    writer.append(b"{}\n")
    writer.close()
    assert writer.segment is not None and f"-events-{os.getpid()}-" in writer.segment.name


def test_the_segment_fingerprint_keeps_its_format() -> None:
    """Saved cursors hold it: a change would make every sink read every segment again."""
    assert fingerprint(b'{"event_id": 1}\n') == FINGERPRINT_OF_A_LINE
    assert fingerprint(b"") == FINGERPRINT_OF_NOTHING


def test_the_nanosecond_field_of_a_name_is_the_clocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = 1_796_000_000_999_999_999  # the last nanosecond of a second
    monkeypatch.setattr(spool.time, "time_ns", lambda: clock)
    # A segment made earlier in this process took a later reading, which this one must follow.
    monkeypatch.setattr(spool, "_last_ns", 0)
    with SpoolWriter(tmp_path / "spool") as writer:
        writer.append(b"{}\n")
        name = writer.segment.name if writer.segment else ""
    assert name.split("-", 1)[0].split(".")[1] == "999999999"


def test_a_segment_fills_to_exactly_its_limit(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path / "spool", max_segment_bytes=10) as writer:
        writer.append(b"01234567\n")  # 9 bytes: one to go
        writer.append(b"\n")
        writer.append(b"a\n")
    assert [p.stat().st_size for p in list_segments(tmp_path / "spool")] == [10, 2]


def test_what_the_readers_found_sealed_retires_without_opening_and_stale_word_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's "sealed at this size" spares retention an open and a lock per segment (a long
    backlog drains at the cost of an lstat and an unlink each); a word that no longer matches the
    file (it grew, it was replaced) is not trusted: the seal is checked again."""
    spool_dir = tmp_path / "spool"
    known, grew, live = (f"20260101T00000{i}.000000001-adapter-1-aaaaaa.ndjson" for i in range(3))
    paths = {n: _segment(spool_dir, n, b"{}\n") for n in (known, grew, live)}
    positions = {n: _position_at_end(p) for n, p in paths.items()}
    word = {n: SealedEnd(p.ino, p.dev, p.offset) for n, p in positions.items() if n != live}
    with paths[grew].open("ab") as late:  # appended after the reader's visit
        late.write(b'{"late": 1}\n')
    positions[grew] = _position_at_end(paths[grew])  # the sink read the late line too
    opened: list[str] = []
    real_sealed_unchanged = retention._sealed_unchanged

    def checked(dir_fd: int, name: str, st: os.stat_result) -> bool:
        opened.append(name)
        return real_sealed_unchanged(dir_fd, name, st)

    monkeypatch.setattr(retention, "_sealed_unchanged", checked)
    writer_fd = os.open(paths[live], os.O_RDONLY)
    try:
        fcntl.flock(writer_fd, fcntl.LOCK_EX)  # no reader's word: still written, so it stays
        assert retire_segments(spool_dir, [positions], sealed=word) == [known, grew]
    finally:
        os.close(writer_fd)
    assert opened == [grew, live]  # the known one was not opened again
    assert [p.name for p in list_segments(spool_dir)] == [live]


def test_a_segment_gone_before_its_stat_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (a second sidecar's retention, an operator) may remove a segment between
    the listing and its stat: the next ones everybody finished are still retired in this pass."""
    spool_dir = tmp_path / "spool"
    gone, done = (f"2026010{i}T000000.000000001-adapter-1-aaaaaa.ndjson" for i in (1, 2))
    paths = {n: _segment(spool_dir, n, b"{}\n") for n in (gone, done)}
    positions = {n: _position_at_end(p) for n, p in paths.items()}
    real_list = retention.list_segment_names

    def listed_then_removed(directory: Path) -> list[str]:
        names = real_list(directory)
        paths[gone].unlink()
        return names

    monkeypatch.setattr(retention, "list_segment_names", listed_then_removed)
    assert retire_segments(spool_dir, [positions]) == [done]
    assert list_segments(spool_dir) == []


def test_a_link_under_a_segment_name_is_never_retired_even_on_a_matching_word(
    tmp_path: Path,
) -> None:
    """Retention looks at the directory entry itself (an lstat): a link planted in the spool is
    not a segment, even when every position and a reader's word match the file it points to;
    and the real segments after it still go."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    target = _segment(tmp_path / "elsewhere", "target.ndjson", b"{}\n")
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    (spool_dir / name).symlink_to(target)
    after = "20260102T000000.000000001-adapter-1-aaaaaa.ndjson"
    end = _position_at_end(target)
    positions = {name: end, after: _position_at_end(_segment(spool_dir, after, b"{}\n"))}
    word = {name: SealedEnd(end.ino, end.dev, end.offset)}
    assert retire_segments(spool_dir, [positions], sealed=word) == [after]
    assert (spool_dir / name).is_symlink() and target.read_bytes() == b"{}\n"


def test_the_seal_check_never_follows_blocks_or_leaks_and_spends_no_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate is opened to check its seal: never through a link swapped in after the lstat
    (O_NOFOLLOW), never waiting on a FIFO swapped in (O_NONBLOCK: an open for reading would block
    until a writer came), never leaking into a process the sidecar starts (O_CLOEXEC). Its lock
    goes with the close, so no unlock call is spent per segment of a backlog."""
    spool_dir = tmp_path / "spool"
    name = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"
    path = _segment(spool_dir, name, b"{}\n")
    opened: list[int] = []
    locks: list[int] = []
    real_open, real_flock = os.open, fcntl.flock

    def open_spy(file: str | Path, flags: int, *args: object, **kwargs: object) -> int:
        if file == name:
            opened.append(flags)
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    def flock_spy(fd: int, operation: int) -> None:
        locks.append(operation)
        real_flock(fd, operation)

    monkeypatch.setattr(retention.os, "open", open_spy)
    monkeypatch.setattr(spool.fcntl, "flock", flock_spy)
    assert retire_segments(spool_dir, [{name: _position_at_end(path)}]) == [name]
    monkeypatch.undo()
    (flags,) = opened
    for flag in (os.O_NOFOLLOW, os.O_NONBLOCK, os.O_CLOEXEC):
        assert flags & flag == flag
    assert flags & os.O_ACCMODE == os.O_RDONLY
    assert locks == [fcntl.LOCK_SH | fcntl.LOCK_NB]


# -- links: a configured path may be one, the sidecar's own files refuse them --------------------


def test_lines_are_appended_through_a_link_unless_links_are_refused(tmp_path: Path) -> None:
    """``--dead-letter /dev/stderr`` or a file sink's path may be a link (/dev/stderr is one): by
    default it is followed. The sidecar's files in the shared spool volume refuse links."""
    target = tmp_path / "real" / "dead.ndjson"
    target.parent.mkdir()
    link = tmp_path / "dead.ndjson"
    link.symlink_to(target)
    fsutil.append_lines(link, b'{"a": 1}\n')
    DeadLetter(link).write([DeadLetterRecord(kind="note", reason="through the link")])
    assert link.is_symlink()
    assert [r.get("a", r.get("reason")) for r in read_deadletter(target)] == [
        1,
        "through the link",
    ]
    with pytest.raises(OSError) as refused:
        fsutil.append_lines(link, b'{"b": 2}\n', follow_symlinks=False)
    assert refused.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        DeadLetter(link, follow_symlinks=False).write([DeadLetterRecord(kind="note", reason="r")])
    assert len(read_deadletter(target)) == 2


def test_every_failed_dead_letter_write_is_counted_and_raised(tmp_path: Path) -> None:
    """The status reports write errors (records held back, not lost): each one counts once."""
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    dead = DeadLetter(blocker / "deadletter.ndjson")  # its directory cannot be made
    for _ in range(3):
        with pytest.raises(OSError):
            dead.write([DeadLetterRecord(kind="note", reason="r")])
    assert (dead.write_errors, dead.count) == (3, 0)
