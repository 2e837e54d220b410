"""The sidecar's small parts: sink configuration, cursors, retry policy, dead-letter records,
segment retirement, replay."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import random
import stat
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import event_id_of, event_line
from support.sidecar import write_spool

from floe_core.spool import SpoolWriter, list_segments
from floe_sidecar import config
from floe_sidecar.config import SinkConfigError, SinkSpec, build_sinks, parse_sink_spec
from floe_sidecar.engine.cursor import Cursor, SegmentPosition, load_cursor, save_cursor
from floe_sidecar.engine.deadletter import (
    DeadLetter,
    DeadLetterRecord,
    read_deadletter,
    restore_line,
)
from floe_sidecar.engine.retention import retire_segments
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.replay import replay_files
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Sink
from floe_sidecar.sinks.console import ConsoleSink
from floe_sidecar.sinks.file import FileSink


def settings(tmp_path: Path, **environ: str) -> SidecarSettings:
    return SidecarSettings(spool_dir=tmp_path / "spool", environ=environ, output_dir=tmp_path)


# -- sink configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("console", SinkSpec("console", "console")),
        ("file:/x/y.ndjson", SinkSpec("file", "file", "/x/y.ndjson")),
        ("audit=file:out.ndjson", SinkSpec("file", "audit", "out.ndjson", named=True)),
        ("python:pkg.mod:build", SinkSpec("python", "build", "pkg.mod:build")),
        ("mine=python:pkg.mod:build", SinkSpec("python", "mine", "pkg.mod:build", named=True)),
    ],
)
def test_sink_specs(text: str, spec: SinkSpec) -> None:
    assert parse_sink_spec(text) == spec


@pytest.mark.parametrize("text", ["", "file", "file:", "python:mod", "kafka:x", "../x=console"])
def test_bad_sink_specs_are_refused_with_the_spec_named(text: str) -> None:
    with pytest.raises(SinkConfigError, match="--sink"):
        parse_sink_spec(text)


def test_builtin_sinks_come_from_their_factories(tmp_path: Path) -> None:
    assert build_sinks(settings(tmp_path)) == []  # nothing configured: every output is off
    sinks = build_sinks(
        settings(
            tmp_path,
            OPENLINEAGE__TRANSPORT__TYPE="console",
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        ),
        [parse_sink_spec("file:x.ndjson")],
    )
    # An OTLP endpoint turns on all three OpenTelemetry signals, each its own sink and cursor.
    assert [s.name for s in sinks] == ["openlineage", "otel", "otel-logs", "otel-metrics", "file"]
    no_logs = settings(
        tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_LOGS_EXPORTER="none"
    )
    assert [s.name for s in build_sinks(no_logs)] == ["otel", "otel-metrics"]
    assert [s.name for s in build_sinks(settings(tmp_path), [ConsoleSink()], builtin=False)] == [
        "console"
    ]


def test_a_broken_builtin_names_its_sink(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        config, "BUILTIN_SINKS", (("openlineage", "floe_sidecar.no_such_module", "build"),)
    )
    with pytest.raises(SinkConfigError, match="sink openlineage: cannot import"):
        build_sinks(settings(tmp_path))


def test_plugin_sinks_are_loaded_named_and_checked(tmp_path: Path) -> None:
    env = {"FLOE_TEST_SINK_URL": "http://127.0.0.1:9/"}
    (sink,) = build_sinks(
        settings(tmp_path, **env), [parse_sink_spec("python:support.plugins:http_sink")]
    )
    assert sink.name == "http"
    (named,) = build_sinks(
        settings(tmp_path, **env), [parse_sink_spec("other=python:support.plugins:http_sink")]
    )
    assert named.name == "other"
    with pytest.raises(SinkConfigError, match="sink http_sink: KeyError"):
        build_sinks(settings(tmp_path), [parse_sink_spec("python:support.plugins:http_sink")])
    with pytest.raises(SinkConfigError, match="two sinks are named 'console'"):
        build_sinks(settings(tmp_path), [ConsoleSink(), ConsoleSink()])


# -- cursors ------------------------------------------------------------------------------------


def test_cursor_round_trip_is_atomic_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cursor = Cursor(owner="s", positions={"a.ndjson": SegmentPosition(ino=1, dev=2, offset=30)})
    cursor.delivered = 7
    save_cursor(path, cursor)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temporary file left
    back = load_cursor(path, "s")
    assert back.positions["a.ndjson"].offset == 30 and back.delivered == 7
    assert load_cursor(tmp_path / "missing.json", "s").positions == {}


def test_an_unreadable_cursor_is_set_aside_and_reading_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"owner": "s", "positions": {"a": {"in')  # torn by hand
    assert load_cursor(path, "s").positions == {}
    assert not path.exists()
    assert [p.name.split(".corrupt-")[0] for p in tmp_path.iterdir()] == ["c.json"]


def test_a_cursor_set_aside_is_logged_with_where_it_went_and_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator learns that a sink starts over (duplicates follow), from which file, where the
    unreadable one went and why; the fresh cursor is the sink's, its lifetime starting now."""
    path = tmp_path / "lineage.json"
    path.write_bytes(b'{"owner": "lineage", "positions": {"a": {"in')
    with pytest.raises(msgspec.DecodeError) as undecodable:
        msgspec.json.decode(path.read_bytes())
    before = time.time()
    with caplog.at_level(logging.WARNING, logger="floe_sidecar.engine.cursor"):
        cursor = load_cursor(path, "lineage")
    (aside,) = tmp_path.iterdir()
    (record,) = [r for r in caplog.records if r.name == "floe_sidecar.engine.cursor"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "cursor unreadable; set aside, starting from the oldest segment"
    assert (record.cursor, record.moved_to) == (str(path), str(aside))  # type: ignore[attr-defined]
    assert record.error == str(undecodable.value)  # type: ignore[attr-defined]
    assert cursor.owner == "lineage" and cursor.positions == {}
    assert before <= cursor.created_at <= time.time()
    # A link planted where the cursor belongs: never read through, set aside the same way.
    planted = tmp_path / "elsewhere.json"
    planted.write_bytes(b'{"owner": "lineage"}')
    path.symlink_to(planted)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="floe_sidecar.engine.cursor"):
        cursor = load_cursor(path, "lineage")
    (record,) = [r for r in caplog.records if r.name == "floe_sidecar.engine.cursor"]
    refusal = f"[Errno {errno.ELOOP}] a symbolic link, refused (never followed): {path}"
    assert record.error == refusal  # type: ignore[attr-defined]
    assert cursor.owner == "lineage" and cursor.positions == {}
    assert not os.path.lexists(path) and planted.read_bytes() == b'{"owner": "lineage"}'


# -- retry ---------------------------------------------------------------------------------------


def test_backoff_grows_to_the_cap_with_jitter_below_the_nominal_delay() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8, multiplier=2, jitter=0.5)
    rng = random.Random(1)
    for failures, nominal in [(1, 0.5), (2, 1), (3, 2), (5, 8), (50, 8)]:
        delays = [policy.delay(failures, rng) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal * 0.3  # really jittered
    assert policy.retries_forever and not policy.gives_up(10**6, 10**9)


def test_give_up_by_attempts_or_time() -> None:
    assert RetryPolicy(give_up_attempts=3).gives_up(3, 0)
    assert not RetryPolicy(give_up_attempts=3).gives_up(2, 10**6)
    assert RetryPolicy(give_up_after=60).gives_up(1, 60)
    with pytest.raises(ValueError, match="initial_delay"):
        RetryPolicy(initial_delay=5, max_delay=1)


# -- dead-letter ---------------------------------------------------------------------------------


def test_dead_letter_records_keep_the_raw_bytes_text_or_base64(tmp_path: Path) -> None:
    dead = DeadLetter(tmp_path / "d" / "dead.ndjson")
    dead.write(
        [
            DeadLetterRecord("bad_line", "undecodable", "s.ndjson", 10, b'{"a":\xff'),
            DeadLetterRecord("oversized", "too long", "s.ndjson", 99, b"head", length=5000),
            DeadLetterRecord("note", "segment truncated", "s.ndjson", 0),
        ]
    )
    dead.close()
    assert stat.S_IMODE((tmp_path / "d" / "dead.ndjson").stat().st_mode) == 0o600
    first, second, third = read_deadletter(tmp_path / "d" / "dead.ndjson")
    assert "line_b64" in first and restore_line(first) == b'{"a":\xff'
    assert (second["line"], second["length"], second["truncated"]) == ("head", 5000, True)
    assert "line" not in third and third["reason"] == "segment truncated"


# -- retirement ----------------------------------------------------------------------------------


def test_only_sealed_segments_everyone_finished_are_retired(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 10)
    open_writer = SpoolWriter(spool, prefix="live")
    open_writer.append(event_line(99))
    done, live = list_segments(spool)
    at_end = {
        p.name: SegmentPosition(ino=p.stat().st_ino, dev=p.stat().st_dev, offset=p.stat().st_size)
        for p in (done, live)
    }
    behind = {done.name: SegmentPosition(ino=done.stat().st_ino, dev=done.stat().st_dev, offset=1)}
    assert retire_segments(spool, [at_end, behind]) == []
    assert retire_segments(spool, [at_end, at_end]) == [done.name]  # live one is still written
    open_writer.close()
    archive = tmp_path / "archive"
    assert retire_segments(spool, [at_end], archive_dir=archive) == [live.name]
    assert [p.name for p in archive.iterdir()] == [live.name] and list_segments(spool) == []


# -- replay --------------------------------------------------------------------------------------


def test_replay_renders_every_sinks_items_and_reports_bad_lines(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 3)
    (segment,) = list_segments(spool)
    with segment.open("ab") as f:
        f.write(b"\n{nope\n" + b"x" * 3000 + b"\nunterminated")
    out = io.BytesIO()
    sinks: list[Sink[Any]] = [FileSink(tmp_path / "unused.ndjson"), ConsoleSink("c2")]
    summary = replay_files([segment], sinks, out, max_line_bytes=2000)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    items = [r for r in records if "item" in r]
    assert [(r["sink"], r["item"]["event_id"]) for r in items] == [
        (s, event_id_of(i)) for i in range(3) for s in ("file", "c2")
    ]
    errors = [r["error"] for r in records if "error" in r]
    assert len(errors) == 3
    assert "undecodable" in errors[0] and "exceeds the 2000-byte limit" in errors[1]
    assert "middle of a line" in errors[2]
    assert (summary.events, summary.items, summary.errors) == (3, 6, 3)
    assert not (tmp_path / "unused.ndjson").exists()  # translate only: nothing delivered
    assert os.listdir(spool) == [segment.name]
