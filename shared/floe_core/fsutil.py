"""File-system helpers both processes use: compiled artifacts and profiles, cursors, status."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir"]


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
        os.fchmod(fd, 0o600)  # owner-only even if a stale temporary file had another mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable and sync_dir:
        fsync_dir(path.parent)
