"""Shared by the sidecar benchmarks: spool backlogs and running the sidecar; the realistic events
themselves come from the tests' one test-data module (``tests/support/data.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from floe_core.spool import SpoolWriter

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SIDECAR = REPO / ".venv" / "bin" / "floe-sidecar"
sys.path.insert(0, str(REPO / "tests"))
from support.data import bench_event as event  # noqa: E402  (the one test-data module)
from support.data import bench_lines as lines  # noqa: E402

__all__ = [
    "BENCH",
    "REPO",
    "SIDECAR",
    "event",
    "lines",
    "run_pinned",
    "sidecar_env",
    "write_backlog",
]


def write_backlog(spool: Path, count: int, *, per_write: int = 1000) -> int:
    """``count`` events in 64 MiB segments, as adapter steps write them; total bytes."""
    total = 0
    with SpoolWriter(spool, prefix="adapter") as writer:
        for first in range(0, count, per_write):
            chunk = b"".join(lines(min(per_write, count - first), first))
            writer.append(chunk)
            total += len(chunk)
    return total


def sidecar_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OTEL_"))}
    env["PYTHONPATH"] = str(BENCH)
    env.update(extra)
    return env


def run_pinned(cmd: list[str], cpu: int | None, env: dict[str, str]) -> tuple[float, int, float]:
    """Run ``cmd`` (on one CPU if given); (wall seconds, peak RSS bytes, CPU seconds).

    The CPU time (user + system) is what the process itself spent: unlike the wall time, it
    hardly moves when something else runs on the same core. A failed run raises SystemExit.
    """
    import time

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, preexec_fn=pin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
