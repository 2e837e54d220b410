"""``floe dev``: the Dagster UI (webserver + daemon) and the sidecar, supervised together.

``dagster dev -m floe_dagster.definitions`` runs as one child with ``FLOE_ARTIFACTS``,
``FLOE_SOCKET`` and ``FLOE_SPOOL_DIR`` set, so every run it launches writes its events to the
sidecar. The sidecar is a second child that is restarted with backoff whenever it dies: it is
optional to the UI, which never goes down because of it (events wait in the spool meanwhile).

Ctrl-C (SIGINT), SIGTERM or SIGHUP stop Dagster first, so a run's last events still reach the
sidecar, then the sidecar, which delivers what it can within its grace period. Exit status: 0
after such a stop; Dagster's own status if it ends by itself.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from floe_cli.children import Backoff, Child, RestartingChild
from floe_cli.prepare import ensure_dagster_home, prepare
from floe_cli.sidecar import (
    read_status,
    sidecar_available,
    sidecar_child,
    socket_identity,
    socket_path,
    wait_for_socket,
)
from floe_core.artifacts import ARTIFACTS_ENV
from floe_core.layout import CONFIG_FILE, ProjectPaths
from floe_core.transport import SOCKET_ENV, SPOOL_ENV

__all__ = ["DevOptions", "floe_dev"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DAGSTER_STOP_TIMEOUT_S = 30.0
SIDECAR_STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DevOptions:
    path: Path | str = CONFIG_FILE
    env: str | None = None
    host: str = "127.0.0.1"
    port: int = 3000
    tick_s: float = 0.2


def dagster_dev_argv(options: DevOptions) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "floe_dagster.definitions",
        "-h",
        options.host,
        "-p",
        str(options.port),
    ]


def floe_dev(options: DevOptions, out: IO[str] | None = None) -> int:
    stream = out or sys.stdout

    def say(line: str) -> None:
        print(f"floe dev: {line}", file=stream, flush=True)

    prepared = prepare(options.path, options.env)
    paths, artifacts = prepared.paths, prepared.artifacts
    for action in prepared.actions:
        say(action)
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(ensure_dagster_home(paths))
    env[ARTIFACTS_ENV] = str(paths.artifacts)
    env[SPOOL_ENV] = str(paths.spool)
    env.pop(SOCKET_ENV, None)

    sidecar: RestartingChild | None = None
    if artifacts.observability.events:
        sidecar = _sidecar(paths, env, say)
    else:
        say("observability is off in floe.yaml (standalone): no sidecar")

    stop = _StopRequest()
    previous = {signum: signal.signal(signum, stop.handle) for signum in _STOP_SIGNALS}
    dagster = Child("dagster", dagster_dev_argv(options), env=env, cwd=paths.root)
    code = 0
    try:
        if sidecar is not None:
            before_start = socket_identity(Path(env[SOCKET_ENV]))
            sidecar.start()
            if wait_for_socket(
                sidecar.child, Path(env[SOCKET_ENV]), timeout_s=10.0, before=before_start
            ):
                say(
                    f"sidecar listening (pid {sidecar.child.pid}, log {paths.logs / 'sidecar.log'})"
                )
        say(f"Dagster UI on http://{options.host}:{options.port} (Ctrl-C stops everything)")
        dagster.start()
        while stop.signum is None:
            if sidecar is not None:
                sidecar.tick()
            exited = dagster.poll()
            if exited is not None:
                say(f"dagster dev exited with code {exited}")
                code = exited or 1
                break
            time.sleep(options.tick_s)
        if stop.signum is not None:
            say(f"{signal.Signals(stop.signum).name}: stopping Dagster, then the sidecar")
    finally:
        dagster.stop(signum=signal.SIGTERM, timeout=DAGSTER_STOP_TIMEOUT_S)
        if sidecar is not None:
            sidecar.stop(timeout=SIDECAR_STOP_TIMEOUT_S)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say("stopped")
    return code


class _StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum


def _sidecar(
    paths: ProjectPaths, env: dict[str, str], say: Callable[[str], None]
) -> RestartingChild | None:
    if not sidecar_available():
        say(
            "the sidecar is not installed (the `sidecar` extra): runs write their events to "
            f"{paths.spool} until a sidecar delivers them"
        )
        return None
    paths.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = read_status(paths.spool)
    socket = socket_path(paths)
    if current is not None and current.running:
        say("a sidecar already serves this project's spool; runs use it")
        if socket.is_socket():
            env[SOCKET_ENV] = str(socket)
        return None
    env[SOCKET_ENV] = str(socket)
    child = sidecar_child(paths, socket=socket, env=env, log_path=paths.logs / "sidecar.log")
    return RestartingChild(child, backoff=Backoff(), on_event=say)
