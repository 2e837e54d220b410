"""Removing (or archiving) segments once nobody needs them any more.

A segment goes when it is sealed (no writer will append to it again) and every configured sink
has a position at its end for that very file (same inode); an empty sealed segment goes anyway.
Sinks that are no longer configured do not count: their stale cursors never pin the spool.

A backlog of many small segments is retired at the cost of one ``lstat`` and one ``unlink`` each:
only segments every sink has a position in are looked at (an empty one once a reader found it
sealed: nobody has a position in it), names resolve against one descriptor of the spool
directory, and a segment a sink's reader already found sealed at this very size
(:class:`~floe_sidecar.engine.reader.SealedEnd`) is not opened and locked again.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from floe_core.fsutil import fsync_dir
from floe_core.spool import fd_is_sealed, list_segment_names
from floe_core.spoolfs import open_dir
from floe_sidecar.engine.cursor import SegmentPosition
from floe_sidecar.engine.reader import SealedEnd

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
    sealed: Mapping[str, SealedEnd] | None = None,
) -> list[str]:
    """Delete or archive every segment all ``positions`` are done with; their names.

    ``sealed``: what the sinks' readers found sealed and read to the end (see the module
    docstring). Other candidates are opened and their seal checked here.
    """
    retired: list[str] = []
    known = sealed or {}
    try:
        dir_fd = open_dir(spool_dir)
    except FileNotFoundError:
        return retired
    try:
        for name in list_segment_names(spool_dir):
            word = known.get(name)
            if not all(name in p for p in positions) and (word is None or word.size):
                continue  # a sink has not read it yet: no stat needed to know it stays
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # a link or a FIFO planted in the spool: never read, never ours to retire
            # An empty segment (its writer's first write failed) holds nothing for anyone: once
            # sealed it goes, even though no sink ever had a line of it to move past.
            if st.st_size and not all(_consumed(p.get(name), st) for p in positions):
                continue
            if word != (st.st_ino, st.st_dev, st.st_size) and not _sealed_unchanged(
                dir_fd, name, st
            ):
                continue
            try:
                if archive_dir is not None:
                    _archive(spool_dir / name, archive_dir)
                else:
                    os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            retired.append(name)
        if retired:
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    if retired:
        log.debug(
            "segments retired",
            extra={"count": len(retired), "archived": archive_dir is not None},
        )
    return retired


def _sealed_unchanged(dir_fd: int, name: str, st: os.stat_result) -> bool:
    """Sealed now, and still the file (and size) the positions were compared with."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return False
    try:
        if not fd_is_sealed(fd, closing=True):
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
