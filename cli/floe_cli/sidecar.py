"""The sidecar as seen from `floe run` / `floe dev`: how to start it and how to ask it for news.

The adapter never imports the sidecar (it may not even be installed next to it); it starts
``floe-sidecar`` as a child process and reads ``floe-sidecar status --json``, the same data a user
sees with ``floe-sidecar status``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floe_cli.children import Child
from floe_cli.prepare import ProjectPaths

__all__ = [
    "SidecarStatus",
    "SinkStatus",
    "read_status",
    "sidecar_available",
    "sidecar_child",
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
    preferred = paths.floe_dir / "sidecar.sock"
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"floe-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.stat().st_mode & 0o077:
        raise PermissionError(f"{base} must be a directory owned by you with mode 0700")
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


def wait_for_socket(child: Child, socket: Path, timeout_s: float = 15.0) -> bool:
    """Wait until the sidecar listens; False if it died or took longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket.is_socket():
            return True
        if not child.running():
            return False
        time.sleep(0.05)
    return socket.is_socket()


@dataclass(frozen=True)
class SinkStatus:
    name: str
    delivered: int
    pending_events: int
    last_error: str | None
    consecutive_failures: int
    delivering_for_s: float | None

    @property
    def failing(self) -> bool:
        """Its endpoint refuses, errs or hangs right now."""
        return self.consecutive_failures > 0 or (self.delivering_for_s or 0.0) >= 5.0


@dataclass(frozen=True)
class SidecarStatus:
    running: bool
    sinks: tuple[SinkStatus, ...]
    deadletter: str
    deadletter_records: int
    segments: int

    @property
    def pending_events(self) -> int:
        return sum(s.pending_events for s in self.sinks)

    def sink(self, name: str) -> SinkStatus | None:
        return next((s for s in self.sinks if s.name == name), None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SidecarStatus:
        return cls(
            running=bool(data.get("running")),
            sinks=tuple(
                SinkStatus(
                    name=str(s["name"]),
                    delivered=int(s.get("delivered") or 0),
                    pending_events=int(s.get("pending_events") or 0),
                    last_error=s.get("last_error"),
                    consecutive_failures=int(s.get("consecutive_failures") or 0),
                    delivering_for_s=s.get("delivering_for_s"),
                )
                for s in data.get("sinks") or ()
            ),
            deadletter=str(data.get("deadletter") or ""),
            deadletter_records=int(data.get("deadletter_records") or 0),
            segments=int(data.get("segments") or 0),
        )


def read_status(spool: Path, env: Mapping[str, str] | None = None) -> SidecarStatus | None:
    """``floe-sidecar status --json`` for ``spool``; None when it cannot tell."""
    if not spool.is_dir():
        return None
    try:
        result = subprocess.run(
            [sys.executable, "-m", "floe_sidecar.cli", "status", "--spool", str(spool), "--json"],
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=STATUS_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        return SidecarStatus.from_json(json.loads(result.stdout))
    except (ValueError, KeyError, TypeError):
        return None
