"""The sidecar as seen from `floe run` / `floe dev`: how to start it and how to ask it for news.

The ``floe`` command never imports the sidecar (it may not even be installed next to it); it
starts ``floe-sidecar`` as a child process and reads ``floe-sidecar status --json``, the same data
a user sees with ``floe-sidecar status``, as the typed :class:`floe_core.status.SidecarStatus`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from floe_cli.children import Child
from floe_cli.errors import CliError
from floe_core.layout import ProjectPaths
from floe_core.status import SidecarStatus, decode_status

__all__ = [
    "StatusQuery",
    "read_status",
    "sidecar_available",
    "sidecar_child",
    "socket_identity",
    "socket_path",
    "wait_for_socket",
]

# sockaddr_un holds 108 bytes on Linux, 104 on macOS, terminator included.
_MAX_SOCKET_PATH = 100
STATUS_TIMEOUT_S = 10.0


def sidecar_available() -> bool:
    """Is the sidecar installed next to this interpreter (the ``sidecar`` extra)?"""
    import importlib.util

    return importlib.util.find_spec("floe_sidecar") is not None


def socket_path(paths: ProjectPaths) -> Path:
    """``.floe/sidecar.sock``, or a short per-user path when that one is too long for a socket."""
    preferred = paths.socket
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"floe-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.stat().st_mode & 0o077:
        raise CliError(
            f"{base} must be a directory owned by you with mode 0700 (it holds the sidecar's "
            "socket when .floe/sidecar.sock is too long a path)"
        )
    digest = hashlib.blake2b(os.fsencode(paths.root), digest_size=6).hexdigest()
    return base / f"{digest}.sock"


def sidecar_child(
    paths: ProjectPaths,
    *,
    socket: Path | None,
    env: Mapping[str, str],
    log_path: Path | None,
    grace_s: float = 10.0,
) -> Child:
    """``floe-sidecar`` for this project: its spool, socket, artifacts, local outputs."""
    argv = [
        sys.executable,
        "-m",
        "floe_sidecar.cli",
        "--spool",
        str(paths.spool),
        "--artifacts",
        str(paths.artifacts),
        "--output-dir",
        str(paths.floe_dir),
        "--grace",
        f"{grace_s:g}",
        "--status-interval",
        "0.5",
        "--log-format",
        "text",
    ]
    if socket is not None:
        argv += ["--socket", str(socket)]
    return Child("sidecar", argv, env=env, cwd=paths.root, log_path=log_path)


def socket_identity(socket: Path) -> tuple[int, int, int] | None:
    """(device, inode, change time) of the socket file, None when there is none: a socket left
    by another sidecar is not the one a new child binds."""
    try:
        st = socket.lstat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def wait_for_socket(
    child: Child,
    socket: Path,
    timeout_s: float = 15.0,
    *,
    before: tuple[int, int, int] | None = None,
) -> bool:
    """Wait until ``child`` listens; False if it died or took longer than ``timeout_s``.

    ``before``: :func:`socket_identity` taken before the child started; a socket still that one
    was not made by the child (another sidecar's, or one it will replace), so it does not count.
    """
    deadline = time.monotonic() + timeout_s

    def ours() -> bool:
        return socket.is_socket() and socket_identity(socket) != before

    while time.monotonic() < deadline:
        if not child.running():
            return False
        if ours():
            return True
        time.sleep(0.05)
    return ours() and child.running()


def read_status(spool: Path, env: Mapping[str, str] | None = None) -> SidecarStatus | None:
    """``floe-sidecar status --json`` for ``spool``; None when it cannot tell."""
    return StatusQuery(spool, env).result()


class StatusQuery:
    """``floe-sidecar status --json`` asked now and read later (:meth:`result`): the answer
    takes a process start, which can run on another core while this one goes on."""

    def __init__(self, spool: Path, env: Mapping[str, str] | None = None) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if not spool.is_dir():
            return
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "floe_sidecar.cli",
                    "status",
                    "--json",
                    "--spool",
                    str(spool),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
            )
        except OSError:
            self._process = None
        self._began = time.monotonic()

    def result(self) -> SidecarStatus | None:
        """The status; None when it cannot tell (no spool, no sidecar, no answer in time)."""
        process = self._process
        if process is None:
            return None
        try:
            left = max(0.0, STATUS_TIMEOUT_S - (time.monotonic() - self._began))
            out, _ = process.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
        if process.returncode != 0:
            return None
        try:
            return decode_status(out)
        except msgspec.MsgspecError:
            return None
