"""The dead-letter file on its own: every record whole and owner-only, the raw bytes restorable
exactly (UTF-8 or not, head only or whole), and records adopted from another sidecar's file
counted once each, a torn last one included."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from floe_core import fsutil
from floe_sidecar.engine.deadletter import (
    DeadLetter,
    DeadLetterRecord,
    read_deadletter,
    restore_line,
)


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
