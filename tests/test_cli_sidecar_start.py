"""`floe run` says "sidecar started" only for a sidecar that listens (issue 11, finding 14): a
socket left there by another sidecar is not the new child's."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from floe_cli.children import Child
from floe_cli.sidecar import socket_identity, wait_for_socket


def test_another_sidecars_socket_does_not_count_as_started(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))  # the first run's sidecar, listening
    other.listen()
    try:
        before = socket_identity(path)
        # The second sidecar: finds the spool busy and exits without binding.
        child = Child(
            "sidecar",
            [sys.executable, "-c", "import time; time.sleep(0.5)"],
            env=None,
            cwd=tmp_path,
            log_path=None,
        )
        child.start()
        try:
            assert not wait_for_socket(child, path, timeout_s=10.0, before=before)
        finally:
            child.stop(timeout=5.0)
    finally:
        other.close()


def test_the_childs_own_socket_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    path.write_text("")  # a stale file where the socket goes
    before = socket_identity(path)
    code = (
        "import os, socket, sys, time; p = sys.argv[1]; os.unlink(p); "
        "s = socket.socket(socket.AF_UNIX); s.bind(p); s.listen(); time.sleep(5)"
    )
    child = Child(
        "sidecar", [sys.executable, "-c", code, str(path)], env=None, cwd=tmp_path, log_path=None
    )
    child.start()
    try:
        assert wait_for_socket(child, path, timeout_s=10.0, before=before)
    finally:
        child.stop(timeout=5.0)
