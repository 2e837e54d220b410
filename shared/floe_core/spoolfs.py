"""Opening files under the spool without ever following a symbolic link.

The spool is a shared volume in compose and Kubernetes: whoever else writes to it (a user-code
container) could plant ``x.ndjson -> /etc/shadow`` or ``.sidecar/lock -> /some/file``. Every file
the sidecar opens under the spool goes through :func:`open_under`: each directory on the way is
opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY`` and the file itself with
``O_NOFOLLOW``, so a link anywhere below the spool root fails with :class:`SymlinkRefused`
instead of being followed. The root itself is refused by :func:`check_spool_root` when it is a
link.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from floe_core.errors import UsageError

__all__ = [
    "SymlinkRefused",
    "check_spool_root",
    "open_dir",
    "open_in",
    "open_under",
    "read_under",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkRefused(OSError):
    """A path under the spool is a symbolic link (or not what it should be): never followed."""


def check_spool_root(spool: Path) -> None:
    """Refuse a spool directory given through a symbolic link (it would be chmod-ed and its
    ``*.ndjson`` consumed wherever it points)."""
    if spool.is_symlink():
        raise UsageError(
            f"--spool {spool} is a symbolic link (to {os.readlink(spool)}); refused: give the "
            "real directory"
        )


def open_dir(directory: Path | str, dir_fd: int | None = None) -> int:
    """A directory fd, refusing a link in the last component."""
    try:
        return os.open(directory, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SymlinkRefused(
                exc.errno, f"not a directory (a link?), refused: {directory}"
            ) from None
        raise


def open_under(root: Path, relative: str, flags: int, mode: int = 0o600) -> int:
    """``os.open(root / relative)`` with no link followed below ``root`` (see the module)."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a path under the spool: {relative!r}")
    fd = open_dir(root)
    try:
        for part in parts[:-1]:
            child = open_dir(part, dir_fd=fd)
            os.close(fd)
            fd = child
        return open_in(fd, parts[-1], flags, mode, shown=root / relative)
    finally:
        os.close(fd)


def open_in(dir_fd: int, name: str, flags: int, mode: int = 0o600, *, shown: object = None) -> int:
    """Open ``name`` in the directory ``dir_fd`` (one component), a link refused."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(
                exc.errno, f"a symbolic link, refused (never followed): {shown or name}"
            ) from None
        raise


@contextmanager
def _fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def read_under(root: Path, relative: str, limit: int | None = None) -> bytes:
    """The bytes of a file under the spool (at most ``limit``), links refused."""
    with _fd(open_under(root, relative, os.O_RDONLY)) as fd:
        chunks = []
        left = limit
        while left is None or left > 0:
            chunk = os.read(fd, 1 << 20 if left is None else min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            if left is not None:
                left -= len(chunk)
        return b"".join(chunks)
