"""The adapter's event emitter against a real Unix socket and a real spool directory.

The emitter must never block or raise: a sidecar that acks, one that never acks, one that stops
reading, one that hangs up, nothing listening, and a spool that cannot be written.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import data
from support.adapter import SidecarStandIn, read_spool

from floe_core.events import decode_event, encode_event
from floe_core.transport import MAX_LINE_BYTES
from floe_dagster.emitter import EventEmitter, emitter_from_env


@pytest.fixture
def sock_dir(tmp_path: Path) -> Iterator[Path]:
    # AF_UNIX paths are limited to ~100 bytes; pytest's tmp_path can be longer.
    short = Path(f"/tmp/floe-emit-{os.getpid()}-{tmp_path.name[-12:]}")
    short.mkdir(mode=0o700)
    yield short
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


@pytest.fixture
def warnings_seen() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record)

    logger = logging.getLogger("floe_dagster.emitter")
    handler = Collect()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def event_ids(events: list[object]) -> list[str]:
    return [e.event_id for e in events]  # type: ignore[attr-defined]


def test_spool_only_writes_owner_only_ndjson(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    events = data.run_finished_events(5)
    emitter = EventEmitter(spool)
    for event in events:
        emitter.emit(event)
    stats = emitter.close()
    assert (stats.emitted, stats.spooled, stats.acked, stats.dropped) == (5, 5, 0, 0)
    assert event_ids(read_spool(spool)) == event_ids(events)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    for segment in spool.iterdir():
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600


def test_listening_sidecar_gets_every_event_and_acks_them(tmp_path: Path, sock_dir: Path) -> None:
    sidecar = SidecarStandIn(sock_dir / "s.sock", mode="ack")
    try:
        emitter = EventEmitter(tmp_path / "spool", sock_dir / "s.sock")
        assert emitter.connected
        events = data.run_finished_events(200)
        for event in events:
            emitter.emit(event)
        stats = emitter.close()
    finally:
        sidecar.close()
    assert (stats.acked, stats.spooled, stats.dropped) == (200, 0, 0)
    assert [decode_event(line).event_id for line in sidecar.lines] == event_ids(events)
    assert not (tmp_path / "spool").exists()  # nothing spooled, not even a segment


def test_socket_path_with_nothing_listening_falls_back_to_spool(
    tmp_path: Path, sock_dir: Path, warnings_seen: list[logging.LogRecord]
) -> None:
    emitter = emitter_from_env(
        {"FLOE_SOCKET": str(sock_dir / "nobody.sock"), "FLOE_SPOOL_DIR": str(tmp_path / "sp")}
    )
    assert not emitter.connected
    events = data.run_finished_events(3)
    for event in events:
        emitter.emit(event)
    stats = emitter.close()
    assert (stats.spooled, stats.dropped) == (3, 0)
    assert stats.socket_error and "nobody.sock" in stats.socket_error
    assert event_ids(read_spool(tmp_path / "sp")) == event_ids(events)
    assert warnings_seen == []  # no sidecar is a normal set-up, not a warning


def test_unacknowledged_lines_go_to_the_spool_after_a_bounded_wait(
    tmp_path: Path, sock_dir: Path
) -> None:
    sidecar = SidecarStandIn(sock_dir / "s.sock", mode="silent")
    try:
        emitter = EventEmitter(tmp_path / "spool", sock_dir / "s.sock", ack_timeout_s=0.3)
        events = data.run_finished_events(10)
        for event in events:
            emitter.emit(event)
        started = time.monotonic()
        stats = emitter.close()
        waited = time.monotonic() - started
    finally:
        sidecar.close()
    assert waited < 5  # bounded: close never hangs on a silent sidecar
    assert (stats.acked, stats.spooled, stats.dropped) == (0, 10, 0)
    assert event_ids(read_spool(tmp_path / "spool")) == event_ids(events)


def test_sidecar_hanging_up_mid_stream_loses_nothing(tmp_path: Path, sock_dir: Path) -> None:
    sidecar = SidecarStandIn(sock_dir / "s.sock", mode="hangup", hangup_after=4)
    try:
        emitter = EventEmitter(tmp_path / "spool", sock_dir / "s.sock", ack_timeout_s=1.0)
        events = data.run_finished_events(12)
        for i, event in enumerate(events):
            emitter.emit(event)
            if i == 5:
                time.sleep(0.3)  # let the stand-in ack 4 and hang up
        stats = emitter.close()
    finally:
        sidecar.close()
    assert stats.acked == 4
    assert stats.acked + stats.spooled == 12 and stats.dropped == 0
    acked_ids = [decode_event(line).event_id for line in sidecar.lines][:4]
    spooled_ids = event_ids(read_spool(tmp_path / "spool"))
    assert acked_ids + spooled_ids == event_ids(events)


def test_sidecar_that_stops_reading_never_blocks_emit(tmp_path: Path, sock_dir: Path) -> None:
    sidecar = SidecarStandIn(sock_dir / "s.sock", mode="stall")
    big_error = "x" * 50_000
    try:
        emitter = EventEmitter(
            tmp_path / "spool", sock_dir / "s.sock", ack_timeout_s=0.2, max_unacked_bytes=1 << 20
        )
        events = data.run_finished_events(
            100, error=big_error
        )  # ~5 MB: far more than the socket buffers
        for event in events:
            emitter.emit(event)  # must return even though nobody reads
        stats = emitter.close()
    finally:
        sidecar.close()
    assert stats.dropped == 0 and stats.acked == 0 and stats.spooled == 100
    assert stats.socket_error and "not acknowledged" in stats.socket_error
    assert event_ids(read_spool(tmp_path / "spool")) == event_ids(events)


def test_garbage_reply_switches_to_spool(tmp_path: Path, sock_dir: Path) -> None:
    import socket
    import threading

    path = sock_dir / "g.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def reply() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"NOPE\n")
        time.sleep(0.5)
        conn.close()

    thread = threading.Thread(target=reply, daemon=True)
    thread.start()
    emitter = EventEmitter(tmp_path / "spool", path, ack_timeout_s=2.0)
    events = data.run_finished_events(3)
    for event in events:
        emitter.emit(event)
    stats = emitter.close()
    thread.join(timeout=5)
    server.close()
    assert stats.socket_error and "NOPE" in stats.socket_error
    assert event_ids(read_spool(tmp_path / "spool")) == event_ids(events)


def test_line_over_the_socket_limit_goes_to_the_spool(tmp_path: Path, sock_dir: Path) -> None:
    sidecar = SidecarStandIn(sock_dir / "s.sock", mode="ack")
    try:
        emitter = EventEmitter(tmp_path / "spool", sock_dir / "s.sock")
        small, huge = (
            data.run_finished_events(1)[0],
            data.run_finished_events(1, error="e" * MAX_LINE_BYTES)[0],
        )
        emitter.emit(small)
        emitter.emit(huge)
        stats = emitter.close()
    finally:
        sidecar.close()
    assert (stats.acked, stats.spooled) == (1, 1)
    assert len(encode_event(huge)) > MAX_LINE_BYTES
    assert event_ids(read_spool(tmp_path / "spool")) == [huge.event_id]


def test_unwritable_spool_drops_counts_and_warns_once(
    tmp_path: Path, warnings_seen: list[logging.LogRecord]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    emitter = EventEmitter(blocker / "spool")
    for event in data.run_finished_events(7):
        emitter.emit(event)  # never raises
    stats = emitter.close()
    assert (stats.emitted, stats.spooled, stats.dropped) == (7, 0, 7)
    assert stats.spool_error and "spool" in stats.spool_error
    assert len(warnings_seen) == 1
    assert "dropping events" in warnings_seen[0].getMessage()
