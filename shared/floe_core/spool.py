"""The spool: a directory of append-only NDJSON segments, the one durable path for events.

Each writer (an adapter step, the sidecar's socket intake) appends to segments of its own, so lines
from different processes never interleave. A writer holds an exclusive ``flock`` on the segment it
writes; a reader that can take that lock knows the segment is sealed (its writer closed it or died)
and may delete it once every sink has consumed it. Segment names sort by creation time.

Directory and files are created owner-only (0700 / 0600): events can carry compiled SQL.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from pathlib import Path

__all__ = [
    "SEGMENT_SUFFIX",
    "SpoolWriter",
    "ensure_spool_dir",
    "fd_is_sealed",
    "is_sealed",
    "is_segment_name",
    "list_segment_names",
    "list_segments",
    "segment_name",
]

SEGMENT_SUFFIX = ".ndjson"
DEFAULT_MAX_SEGMENT_BYTES = 64 * 1024 * 1024


def ensure_spool_dir(directory: Path) -> Path:
    """Create the spool directory owner-only; refuse one that others can read or write."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(directory, mode & 0o700)
    return directory


def list_segments(directory: Path) -> list[Path]:
    """Segments in creation order. Hidden files (segments being created) are not segments yet."""
    return [directory / name for name in list_segment_names(directory)]


def list_segment_names(directory: Path) -> list[str]:
    """:func:`list_segments`, names only (no path objects: a reader of a long backlog lists
    often)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if is_segment_name(n))


def is_segment_name(name: str) -> bool:
    """The one rule for which directory entries are segments (a writer's temporary and state
    files start with a dot, or end otherwise); every lister of the spool asks it."""
    return name.endswith(SEGMENT_SUFFIX) and not name.startswith(".")


def is_sealed(segment: Path) -> bool:
    """True when no writer holds the segment open: it will never grow again."""
    try:
        fd = os.open(segment, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        return fd_is_sealed(fd)
    finally:
        os.close(fd)


def fd_is_sealed(fd: int, *, closing: bool = False) -> bool:
    """:func:`is_sealed` for a segment the caller already holds open (no second open).

    A shared lock: it fails while the writer holds its exclusive one, and readers (one per sink,
    retention) asking at the same moment do not take each other for a writer. ``closing``: the
    caller closes ``fd`` right after, which drops the lock; no unlock call is spent on it (one
    system call less per segment of a long backlog).
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    if not closing:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return True


_last_ns = 0
_last_ns_lock = threading.Lock()


def _creation_ns() -> int:
    """Now, in ns since the epoch, and later than any earlier answer in this process: two
    segments one process creates sort in the order it created them, even within one clock tick
    or across a step back of the wall clock."""
    global _last_ns
    with _last_ns_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def segment_name(prefix: str, created_ns: int) -> str:
    """The name of a segment created at ``created_ns``: the UTC second and the nanoseconds
    within it, both from that one reading (two readings could straddle a second and sort a
    later segment first), then the writer's prefix, pid and a random tag."""
    seconds, ns = divmod(created_ns, 1_000_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{ns:09d}-{prefix}-{os.getpid()}-{secrets.token_hex(3)}{SEGMENT_SUFFIX}"


class SpoolWriter:
    """Appends complete NDJSON lines to this writer's own segments.

    Not thread-safe; one writer per process or per emitter. ``append`` raises ``OSError`` when the
    disk refuses the write; callers decide what that means (the adapter counts a dropped event).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        prefix: str = "events",
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_segment_bytes = max_segment_bytes
        self._fd: int | None = None
        self._size = 0
        self.segment: Path | None = None

    def append(self, lines: bytes) -> None:
        """Write ``lines`` (each ending in a newline) in one ``write`` call."""
        if self._fd is None or self._size >= self.max_segment_bytes:
            self._open_new_segment()
        assert self._fd is not None
        view = memoryview(lines)
        while view:  # a regular file write is whole unless the disk fills; finish or raise
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(lines)

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # releases the flock: the segment is sealed

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_new_segment(self) -> None:
        self.close()
        ensure_spool_dir(self.directory)
        name = segment_name(self.prefix, _creation_ns())
        hidden = self.directory / f".{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Visible only once locked, so a reader never takes a fresh segment for a sealed one.
            os.rename(hidden, self.directory / name)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = 0
        self.segment = self.directory / name
