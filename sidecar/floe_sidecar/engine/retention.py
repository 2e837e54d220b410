"""Removing (or archiving) segments once nobody needs them any more.

A segment goes when it is sealed (no writer will append to it again) and every configured sink
has a position at its end for that very file (same inode); an empty sealed segment goes anyway.
Sinks that are no longer configured do not count: their stale cursors never pin the spool.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from floe_core.fsutil import fsync_dir
from floe_core.spool import fd_is_sealed, list_segment_names
from floe_sidecar.engine.cursor import SegmentPosition

__all__ = ["retire_segments"]

log = logging.getLogger("floe_sidecar.engine.retention")


def _consumed(position: SegmentPosition | None, st: os.stat_result) -> bool:
    return (
        position is not None
        and position.offset >= st.st_size
        and (position.ino, position.dev) == (st.st_ino, st.st_dev)
    )


def retire_segments(
    spool_dir: Path,
    positions: Sequence[dict[str, SegmentPosition]],
    *,
    archive_dir: Path | None = None,
) -> list[str]:
    """Delete or archive every segment all ``positions`` are done with; their names."""
    retired: list[str] = []
    for name in list_segment_names(spool_dir):
        path = spool_dir / name
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # a link or a FIFO planted in the spool: never read, never ours to retire
        # An empty segment (its writer's first write failed) holds nothing for anyone: once
        # sealed it goes, even though no sink ever had a line of it to move past.
        if st.st_size and not all(_consumed(p.get(name), st) for p in positions):
            continue
        if not _sealed_unchanged(path, st):
            continue
        try:
            if archive_dir is not None:
                _archive(path, archive_dir)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        retired.append(name)
    if retired:
        fsync_dir(spool_dir)
        log.debug(
            "segments retired",
            extra={"count": len(retired), "archived": archive_dir is not None},
        )
    return retired


def _sealed_unchanged(path: Path, st: os.stat_result) -> bool:
    """Sealed now, and still the file (and size) the positions were compared with."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not fd_is_sealed(fd):
            return False
        after = os.fstat(fd)  # sealed now: a size taken before the seal may be stale
        return (after.st_size, after.st_ino) == (st.st_size, st.st_ino)
    finally:
        os.close(fd)


def _archive(path: Path, archive_dir: Path) -> None:
    archive_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = archive_dir / path.name
    try:
        os.rename(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another file system: copy, make it durable, unlink
            raise
        tmp = archive_dir / f".{path.name}.tmp"
        shutil.copyfile(path, tmp)
        os.chmod(tmp, 0o600)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
        os.unlink(path)
    fsync_dir(archive_dir)
