"""File-system helpers both processes use: one atomic replace (compiled artifacts and profiles,
cursors, status) and one durable NDJSON append (file sinks, the embedded lineage and trace
outputs, the dead-letter file)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

__all__ = ["append_lines", "atomic_write", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True, sync_dir: bool = False) -> None:
    """Replace ``path`` with owner-only ``data``; readers see the old or the new content, never a
    mix.

    Write a temporary file next to it, fsync it (``durable``), rename it over the target, and
    with ``sync_dir`` fsync the directory too, so the rename itself survives a machine crash.
    ``durable=False`` skips the fsyncs (still atomic against a crash of this process).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # owner-only even if a stale temporary file had another mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # A full disk or an I/O error part-way: the target is untouched; leave no torn copy.
        tmp.unlink(missing_ok=True)
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


def append_lines(
    path: Path, data: bytes, *, durable: bool = True, follow_symlinks: bool = True
) -> None:
    """Append whole NDJSON lines (``data``, newline-terminated) to ``path``; with ``durable``,
    they are on disk when this returns, so a cursor may move past them.

    The file is created owner-only (a missing directory 0700). When its last line has no newline
    (a crash or a full disk cut an earlier write short), a newline goes first: the torn line stays
    one bad line and the new ones start clean. A file that is not regular (``/dev/null``, a FIFO)
    is written as is, without that repair and without fsync. Raises ``OSError``.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    nofollow = 0 if follow_symlinks else os.O_NOFOLLOW  # a link raises OSError(ELOOP)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | nofollow, 0o600)
        readable = True
    except PermissionError:  # write-only: append without the repair
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | nofollow, 0o600)
        readable = False
    try:
        info = os.fstat(fd)
        regular = stat.S_ISREG(info.st_mode)
        if regular and readable and info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable and regular:
            os.fsync(fd)
    finally:
        os.close(fd)
