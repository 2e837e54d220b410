"""What ``floe-sidecar status --json`` says: the sidecar's status, typed, for both processes.

The sidecar builds a :class:`SidecarStatus` from its cursors, the segments on disk and the running
sidecar's own health file; ``floe run`` and ``floe dev`` read it back with :func:`decode_status`.
It is the one shape status has across the process boundary: a field added here is seen by both
sides, and an answer that is not this shape is refused as a whole instead of being half read.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "STATUS_VERSION",
    "HandoffStatus",
    "SidecarStatus",
    "SinkStatus",
    "decode_status",
    "encode_status",
]

STATUS_VERSION = 1


class SinkStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One sink's standing in the spool, from its cursor and the last run's health."""

    name: str
    configured_in_last_run: bool = False
    delivered: int = 0  # items, over the cursor's whole life
    pending_events: int = 0  # complete lines still ahead of its cursor
    pending_bytes: int = 0
    oldest_pending_age_s: float | None = None
    dead_lettered: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock
    consecutive_failures: int = 0
    delivering_for_s: float | None = None  # the current deliver call has run this long
    # When its cursor began (epoch seconds): ``delivered`` and ``dead_lettered`` count from here.
    counting_since: float | None = None


class HandoffStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A node's sidecar (``--adopt``): the spools of ended run pods it took over."""

    directory: str
    adopted_spools: int = 0  # this process
    adopted_segments: int = 0
    dropped_duplicates: int = 0  # segments offered again after an earlier hand-off
    last_adopted_at: float | None = None  # wall clock
    last_error: str | None = None
    waiting: int = 0  # pod spools there now (a run still holds them, or they are not due)


class SidecarStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The sidecar of one spool: running or not, its segments, dead-letter and sinks."""

    version: int = STATUS_VERSION
    spool: str
    running: bool
    pid: int | None = None  # -1: running, but the lock file names no pid
    state: str = "not running"  # running | draining | stopping | stopped | not running
    status_updated_s_ago: float | None = None
    segments: int = 0
    segment_bytes: int = 0
    deadletter: str = ""
    deadletter_records: int = 0
    #: Held back, not lost, by the running sidecar (``floe run`` reports them): dead-letter
    #: writes that failed (the lines wait before the cursor), spool writes of the socket intake
    #: that failed (those lines were not acknowledged: their client spools them itself), and
    #: connections closed mid-line (too many bytes held, or idle).
    deadletter_write_errors: int = 0
    intake_write_errors: int = 0
    intake_closed_mid_line: int = 0
    sinks: tuple[SinkStatus, ...] = ()
    handoff: HandoffStatus | None = None  # only a node's sidecar (``--adopt``) has one

    @property
    def pending_events(self) -> int:
        return sum(s.pending_events for s in self.sinks)

    def sink(self, name: str) -> SinkStatus | None:
        return next((s for s in self.sinks if s.name == name), None)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SidecarStatus)


def encode_status(status: SidecarStatus) -> bytes:
    """Indented JSON, newline-terminated (what ``--json`` prints)."""
    return msgspec.json.format(_encoder.encode(status), indent=2) + b"\n"


def decode_status(data: bytes | str) -> SidecarStatus:
    """Raises ``msgspec.DecodeError`` / ``msgspec.ValidationError`` for anything else."""
    return _decoder.decode(data)
