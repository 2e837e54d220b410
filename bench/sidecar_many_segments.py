"""Draining a backlog of many small segments: 10,000 one-event segments beside one segment of
10,000 events, through the same ``floe-sidecar --once`` to a file sink, on one core.

A backlog after a long outage is many small segments (one per adapter step or intake seal); the
goal is the same events/s as one big segment, and at least 20,000 events/s. The drain is timed
from the sidecar's first to its last delivered line minus nothing: wall time of the process,
process start (measured with an empty spool) subtracted, so the two paths compare the reading.

    .venv/bin/python bench/sidecar_many_segments.py [--segments 10000] [--repeat 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from sidecar_common import SIDECAR, lines, run_pinned, sidecar_env

from floe_core.spool import SpoolWriter, list_segments

GOAL = 20_000


def write_many(spool: Path, count: int) -> None:
    for i in range(count):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(b"".join(lines(1, i)))


def write_one(spool: Path, count: int) -> None:
    with SpoolWriter(spool, prefix="adapter") as writer:
        for first in range(0, count, 1000):
            writer.append(b"".join(lines(min(1000, count - first), first)))


def drain(master: Path, work: Path, cpu: int, count: int) -> float:
    spool, out = work / "spool", work / "out.ndjson"
    shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(master, spool)
    out.unlink(missing_ok=True)
    os.sync()
    cmd = [str(SIDECAR), "--spool", str(spool), "--once", "--no-default-sinks"]
    wall, _, _ = run_pinned([*cmd, "--sink", f"file:{out}"], cpu, sidecar_env())
    delivered = out.read_bytes().count(b"\n")
    assert delivered == count, f"delivered {delivered} of {count}"
    assert not list_segments(spool), "segments left behind"
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        many, one, empty = work / "many", work / "one", work / "empty"
        write_many(many, args.segments)
        write_one(one, args.segments)
        empty.mkdir(mode=0o700)
        start_up = statistics.median(
            run_pinned(
                [
                    str(SIDECAR),
                    "--spool",
                    str(empty),
                    "--once",
                    "--no-default-sinks",
                    "--sink",
                    f"file:{work / 'e.ndjson'}",
                ],
                args.cpu,
                sidecar_env(),
            )[0]
            for _ in range(3)
        )
        walls: dict[str, list[float]] = {"many": [], "one": []}
        for _ in range(args.repeat):  # interleaved: both see the same load
            walls["many"].append(drain(many, work, args.cpu, args.segments))
            walls["one"].append(drain(one, work, args.cpu, args.segments))
        rates = {
            k: args.segments / max(statistics.median(v) - start_up, 1e-6) for k, v in walls.items()
        }
        print(f"{args.segments:,} events; process start {start_up:.2f} s (subtracted)")
        print()
        print("| backlog | median wall s | drain events/s |")
        print("|---|---:|---:|")
        print(
            f"| {args.segments:,} one-event segments | {statistics.median(walls['many']):.2f} "
            f"| {rates['many']:,.0f} |"
        )
        print(
            f"| one segment of {args.segments:,} events | {statistics.median(walls['one']):.2f} "
            f"| {rates['one']:,.0f} |"
        )
        print()
        print(f"many / one: {rates['many'] / rates['one']:.2f}")
        print(
            f"many / goal ({GOAL:,}/s): {rates['many'] / GOAL:.2f}"
            f"  {'OK' if rates['many'] >= GOAL else 'BELOW GOAL'}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
