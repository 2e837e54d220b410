"""One `floe run` per project at a time.

Two runs in one project would share one spool and one sidecar (the first would stop it while
the second still sends to it) and, on DuckDB, one database file that only one process may open
for writing. So the second run refuses at once, naming the first (its pid), instead of
reporting a sidecar it did not start or failing deep inside dbt. The lock is an ``flock`` on
``.floe/run.lock``: the kernel drops it when the holder exits, however it exits, so a crashed
run never leaves the project locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from floe_cli.errors import CliError
from floe_core.layout import ProjectPaths

__all__ = ["run_lock"]


@contextlib.contextmanager
def run_lock(paths: ProjectPaths) -> Iterator[None]:
    """Hold the project's run lock for the ``with`` block; CliError when another run holds it."""
    paths.floe_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(paths.run_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise CliError(
                f"another `floe run`{who} is running in {paths.root}: wait for it to finish. "
                "Two runs in one project would share its sidecar and spool, and DuckDB lets "
                "only one process write the database file."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
