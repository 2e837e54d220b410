"""Health: what each sink has delivered, what is still pending, and what went wrong.

The running sidecar rewrites ``<spool>/.sidecar/status.json`` every few seconds (and when it
stops). ``floe-sidecar status --spool DIR`` combines that file with the cursors and the segments
on disk, so it answers even when the sidecar is not running: per sink, delivered (items), pending
(complete lines and bytes not yet behind its cursor), how old the oldest pending event is, and the
last error.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from floe_core.fsutil import atomic_write
from floe_core.layout import SpoolLayout
from floe_core.spool import list_segment_names, list_segments
from floe_core.spoolfs import open_dir
from floe_core.status import HandoffStatus, SidecarStatus, SinkStatus
from floe_sidecar.engine.cursor import Cursor, SegmentPosition, load_cursor
from floe_sidecar.engine.deadletter import count_records

__all__ = [
    "Health",
    "Pending",
    "SinkHealth",
    "count_pending",
    "pending_bytes",
    "read_health",
    "render_status",
    "spool_status",
    "write_health",
]

_READ_BYTES = 1024 * 1024


class SinkHealth(msgspec.Struct, kw_only=True):
    name: str
    delivered_total: int  # items, over the cursor's life
    delivered: int = 0  # items, this process
    batches: int = 0
    failures: int = 0  # failed deliver attempts, this process
    consecutive_failures: int = 0
    rejected: int = 0
    gave_up: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_delivery_at: float | None = None
    delivering_for_s: float | None = None  # the current deliver call has run this long
    pending_bytes: int = 0
    pending_segments: int = 0
    caught_up: bool = False


class IntakeHealth(msgspec.Struct, kw_only=True):
    socket: str
    connections: int
    open_connections: int
    lines: int
    oversized: int
    fragments: int
    write_errors: int
    accept_errors: int = 0
    shed: int = 0
    idle_closed: int = 0
    buffered_bytes: int = 0


class Health(msgspec.Struct, kw_only=True):
    version: int = 1
    pid: int
    state: str  # running | draining | stopped
    started_at: float
    updated_at: float
    spool: str
    sinks: list[SinkHealth]
    deadletter: str
    deadletter_written: int = 0  # records, this process
    deadletter_write_errors: int = 0  # writes that failed (the lines wait, not lost)
    intake: IntakeHealth | None = None
    handoff: HandoffStatus | None = None  # a node's sidecar (``--adopt``)


_health_encoder = msgspec.json.Encoder()
_health_decoder = msgspec.json.Decoder(Health)


def write_health(path: Path, health: Health) -> None:
    atomic_write(path, _health_encoder.encode(health) + b"\n", durable=False)


def read_health(path: Path) -> Health | None:
    try:
        return _health_decoder.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.MsgspecError):
        return None


def _start(position: SegmentPosition | None, st: os.stat_result) -> int:
    """Where a consumer stands in a segment: 0 if it never read it (or it is another file)."""
    if position is None or (position.ino, position.dev) != (st.st_ino, st.st_dev):
        return 0
    return min(position.offset, st.st_size)


def segment_files(spool_dir: Path) -> dict[str, os.stat_result]:
    """Each segment of the spool that is a regular file, with its ``lstat``: taken once per
    status write and shared by every sink's :func:`pending_bytes` (a long backlog is listed
    often). Names resolve against one descriptor of the spool; a link is never followed."""
    files: dict[str, os.stat_result] = {}
    try:
        dir_fd = open_dir(spool_dir)
    except FileNotFoundError:
        return files
    try:
        for name in list_segment_names(spool_dir):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                files[name] = st
    finally:
        os.close(dir_fd)
    return files


def pending_bytes(
    files: dict[str, os.stat_result], positions: dict[str, SegmentPosition]
) -> tuple[int, int]:
    """(bytes, segments) of ``files`` (:func:`segment_files`) not yet behind ``positions``."""
    total = segments = 0
    for name, st in files.items():
        left = st.st_size - _start(positions.get(name), st)
        if left > 0:
            total += left
            segments += 1
    return total, segments


@dataclass(frozen=True)
class Pending:
    lines: int  # complete lines
    bytes: int
    oldest_at: float | None  # when the oldest pending event was emitted (epoch seconds)


class _Stamp(msgspec.Struct):
    emitted_at: datetime | None = None


_stamp_decoder = msgspec.json.Decoder(_Stamp)


def count_pending(spool_dir: Path, positions: dict[str, SegmentPosition]) -> Pending:
    """Complete lines after ``positions`` (reads the pending bytes once, in chunks)."""
    lines = total = 0
    oldest: float | None = None
    for path in list_segments(spool_dir):
        try:  # a link or a FIFO planted in the spool is never followed, never counted
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            offset = _start(positions.get(path.name), st)
            total += st.st_size - offset
            first = True
            while offset < st.st_size:
                data = os.pread(fd, min(_READ_BYTES, st.st_size - offset), offset)
                if not data:
                    break
                lines += data.count(b"\n")
                if first and oldest is None:
                    oldest = _emitted_at(data, st.st_mtime)
                first = False
                offset += len(data)
        finally:
            os.close(fd)
    return Pending(lines, total, oldest)


def _emitted_at(data: bytes, fallback: float) -> float | None:
    line, newline, _ = data.partition(b"\n")
    if not newline:
        return None
    try:
        stamp = _stamp_decoder.decode(line).emitted_at
    except (msgspec.MsgspecError, RecursionError):
        return fallback
    if stamp is None:
        return fallback
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def sidecar_pid(layout: SpoolLayout) -> int | None:
    """The pid of the sidecar holding this spool's lock, or None when none runs."""
    try:
        fd = os.open(layout.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        return None
    finally:
        os.close(fd)


def spool_status(layout: SpoolLayout) -> SidecarStatus:
    """Everything ``status`` shows (``--json`` prints it as is).

    The dead-letter file is the layout's (``--dead-letter``), else the one the running sidecar
    names in its status file, else the default.
    """
    now = time.time()
    health = read_health(layout.status)
    if layout.deadletter_override is None and health is not None and health.deadletter:
        layout = SpoolLayout(layout.spool_dir, deadletter_override=Path(health.deadletter))
    intake = health.intake if health is not None else None
    by_name = {s.name: s for s in health.sinks} if health else {}
    configured = [s.name for s in health.sinks] if health else []
    names = configured + [n for n in layout.cursor_names() if n not in by_name]
    sinks = []
    for name in names:
        cursor: Cursor = load_cursor(layout.cursor(name), name)
        pending = count_pending(layout.spool_dir, cursor.positions)
        live = by_name.get(name)
        sinks.append(
            SinkStatus(
                name=name,
                configured_in_last_run=name in by_name,
                delivered=cursor.delivered,
                pending_events=pending.lines,
                pending_bytes=pending.bytes,
                oldest_pending_age_s=None
                if pending.oldest_at is None or pending.lines == 0
                else round(max(0.0, now - pending.oldest_at), 3),
                dead_lettered=cursor.dead_lettered,
                last_error=live.last_error if live else None,
                last_error_at=live.last_error_at if live else None,
                consecutive_failures=live.consecutive_failures if live else 0,
                delivering_for_s=live.delivering_for_s if live else None,
                counting_since=cursor.created_at or None,
            )
        )
    segments = list_segments(layout.spool_dir)
    size = 0
    for path in segments:
        try:
            size += path.stat().st_size
        except FileNotFoundError:
            continue
    pid = sidecar_pid(layout)
    return SidecarStatus(
        spool=str(layout.spool_dir),
        running=pid is not None,
        pid=pid,
        state=health.state if health and pid is not None else "not running",
        status_updated_s_ago=None if health is None else round(now - health.updated_at, 3),
        segments=len(segments),
        segment_bytes=size,
        deadletter=str(layout.deadletter),
        deadletter_records=count_records(layout.deadletter),
        deadletter_write_errors=health.deadletter_write_errors if health else 0,
        intake_write_errors=intake.write_errors if intake else 0,
        intake_closed_mid_line=intake.shed + intake.idle_closed if intake else 0,
        sinks=tuple(sinks),
        handoff=None if health is None else health.handoff,
    )


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render_status(status: SidecarStatus) -> str:
    lines = []
    running = f"running (pid {status.pid}, {status.state})" if status.running else "not running"
    updated = _age(status.status_updated_s_ago)
    lines.append(f"sidecar: {running}; status file updated {updated} ago")
    lines.append(f"spool: {status.spool}: {status.segments} segments, {status.segment_bytes} bytes")
    lines.append(f"dead-letter: {status.deadletter_records} records in {status.deadletter}")
    held = {
        "dead-letter writes failed (lines held back)": status.deadletter_write_errors,
        "intake spool writes failed (left to their clients)": status.intake_write_errors,
        "connections closed mid-line": status.intake_closed_mid_line,
    }
    lines += [f"  {what}: {count}" for what, count in held.items() if count]
    handoff = status.handoff
    if handoff is not None:
        lines.append(
            f"adopting from {handoff.directory}: {handoff.adopted_spools} run pod spools "
            f"({handoff.adopted_segments} segments) taken over, {handoff.waiting} waiting, "
            f"{handoff.dropped_duplicates} duplicate segments dropped"
            + (f"; last error: {handoff.last_error}" if handoff.last_error else "")
        )
    rows = [("SINK", "DELIVERED", "PENDING", "PENDING BYTES", "OLDEST PENDING", "LAST ERROR")]
    for sink in status.sinks:
        name = sink.name + ("" if sink.configured_in_last_run else " (not configured)")
        error = sink.last_error or "-"
        if sink.delivering_for_s:
            error = f"deliver running for {_age(sink.delivering_for_s)}; {error}"
        rows.append(
            (
                name,
                str(sink.delivered),
                str(sink.pending_events),
                str(sink.pending_bytes),
                _age(sink.oldest_pending_age_s),
                error,
            )
        )
    if len(rows) == 1:
        lines.append("no sink has a cursor in this spool yet")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(5)]
            lines.append("  ".join([*cells, row[5]]).rstrip())
    return "\n".join(lines)
