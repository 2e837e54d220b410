"""Removing (or archiving) segments once nobody needs them any more.

A segment goes when it is sealed (no writer will append to it again) and every configured sink
has a position at its end for that very file (same inode).
Sinks that are no longer configured do not count: their stale cursors never pin the spool.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from floe_core.fsutil import fsync_dir
from floe_core.spool import is_sealed, list_segments
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
    for path in list_segments(spool_dir):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if not all(_consumed(p.get(path.name), st) for p in positions):
            continue
        if not is_sealed(path):
            continue
        after = os.stat(path)  # sealed now: a size taken before the seal may be stale
        if (after.st_size, after.st_ino) != (st.st_size, st.st_ino):
            continue
        try:
            if archive_dir is not None:
                _archive(path, archive_dir)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        retired.append(path.name)
    if retired:
        fsync_dir(spool_dir)
        log.debug(
            "segments retired",
            extra={"count": len(retired), "archived": archive_dir is not None},
        )
    return retired


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
