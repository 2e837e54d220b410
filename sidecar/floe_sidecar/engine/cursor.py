"""A consumer's durable position in the spool: per segment, its identity and a byte offset.

Segments are written concurrently (several adapter steps, the socket intake), so one position
per segment rather than one global offset. A position names the file by inode and device plus a
fingerprint of its first bytes, so a segment replaced or truncated under the same name is noticed
and read again from the start instead of being skipped. Positions are saved atomically
(tmp + fsync + rename) only after the sink accepted everything before them.

A sink whose deliveries build on state (cumulative metrics: totals so far, the event ids already
counted) keeps that state in its cursor, ``state``, saved in the same write as the positions: a
restart finds the totals that match the positions, never totals that already count lines the
positions say are still ahead.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import msgspec

from floe_core.fsutil import atomic_write
from floe_core.spoolfs import SymlinkRefused

__all__ = [
    "FINGERPRINT_BYTES",
    "NO_STATE",
    "Cursor",
    "SegmentPosition",
    "fingerprint",
    "load_cursor",
    "save_cursor",
]

CURSOR_VERSION = 1
NO_STATE = msgspec.Raw(b"null")
FINGERPRINT_BYTES = 256

log = logging.getLogger("floe_sidecar.engine.cursor")


class SegmentPosition(msgspec.Struct, kw_only=True):
    ino: int
    dev: int
    #: Never negative: a cursor that says so is unreadable (set aside, read from the start).
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    # blake2b of the first ``fp_len`` bytes: tells a replaced file from the one we read.
    fp: str = ""
    fp_len: int = 0


class Cursor(msgspec.Struct, kw_only=True):
    version: int = CURSOR_VERSION
    owner: str  # sink name, or "reported" (how far bad lines are dead-lettered)
    positions: dict[str, SegmentPosition] = {}
    delivered: int = 0  # items delivered over the cursor's whole life
    dead_lettered: int = 0
    updated_at: float = 0.0
    #: When this cursor began (epoch seconds): the start of its lifetime totals.
    created_at: float = 0.0
    #: The sink's own state as of ``positions`` (JSON, the sink's format; ``null``: none).
    state: msgspec.Raw = NO_STATE


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Cursor)


def fingerprint(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def load_cursor(path: Path, owner: str) -> Cursor:
    """The saved cursor, or a fresh one. An unreadable cursor is set aside, never trusted.

    Starting over re-delivers what is still in the spool (duplicates, recognisable by event id)
    rather than skipping anything.
    """
    try:
        data = _read_no_follow(path)
    except FileNotFoundError:
        return Cursor(owner=owner, created_at=time.time())
    except SymlinkRefused as exc:  # planted in the shared spool volume: never read through
        return _set_aside(path, owner, str(exc))
    try:
        cursor = _decoder.decode(data)
    except msgspec.MsgspecError as exc:
        return _set_aside(path, owner, str(exc))
    cursor.owner = owner
    if not cursor.created_at:  # written before cursors knew their start
        cursor.created_at = time.time()
    return cursor


def _read_no_follow(path: Path) -> bytes:
    """The file's bytes; a symbolic link is refused, not followed (it lives under the spool)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            msg = f"a symbolic link, refused (never followed): {path}"
            raise SymlinkRefused(exc.errno, msg) from None
        raise
    with os.fdopen(fd, "rb") as file:
        return file.read()


def _set_aside(path: Path, owner: str, error: str) -> Cursor:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    os.replace(path, aside)  # a link is moved, its target untouched
    log.warning(
        "cursor unreadable; set aside, starting from the oldest segment",
        extra={"cursor": str(path), "moved_to": str(aside), "error": error},
    )
    return Cursor(owner=owner, created_at=time.time())


def save_cursor(path: Path, cursor: Cursor, *, durable: bool = True) -> None:
    """tmp + fsync + rename: a reader (or a restart) sees the old cursor or the new one.

    The directory is not fsynced after the rename: if a machine crash takes the rename back, the
    sidecar restarts from the previous cursor and delivers that batch again (duplicates, with the
    same event ids), which at-least-once allows; it never skips anything. That saves one fsync
    per delivered batch.
    """
    cursor.updated_at = time.time()
    atomic_write(path, _encoder.encode(cursor), durable=durable)
