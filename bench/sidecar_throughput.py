"""Events per second from the spool to a file sink, on one core: floe-sidecar beside a naive tailer.

Both read the same backlog (realistic node events, about 1.5 KB each, in 64 MiB segments as adapter
steps write them) and write every event as one NDJSON line to a file, pinned to one CPU:

- **floe-sidecar**: ``floe-sidecar --spool DIR --once --no-default-sinks --sink file:OUT``:
  decodes and validates each line against the event contract, dead-letters bad ones, delivers in
  batches with an fsync per batch, saves its cursor (tmp + fsync + rename) after each batch and
  retires the delivered segments. Wall time includes process start.
- **naive tailer** (the floor): a Python loop, ``json.loads`` + ``json.dumps`` per line, one
  buffered write, no validation, no fsync, no cursor, no crash safety.

    .venv/bin/python bench/sidecar_throughput.py [--events 200000] [--repeat 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from sidecar_common import SIDECAR, run_pinned, sidecar_env, write_backlog

GOAL = 20_000

NAIVE = """
import json, os, sys
spool, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    for name in sorted(os.listdir(spool)):
        if name.endswith(".ndjson"):
            with open(os.path.join(spool, name)) as seg:
                for line in seg:
                    f.write(json.dumps(json.loads(line)) + "\\n")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="CPU both processes are pinned to")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        master = work / "master"
        size = write_backlog(master, args.events)
        print(
            f"backlog: {args.events:,} events, {size / 1e6:.1f} MB "
            f"({size / args.events:.0f} B/event), pinned to CPU {args.cpu}"
        )
        floe: list[float] = []
        naive: list[float] = []
        empty = work / "empty"
        empty.mkdir(mode=0o700)
        start_up, _, _ = run_pinned(
            [
                str(SIDECAR),
                "--spool",
                str(empty),
                "--once",
                "--no-default-sinks",
                "--sink",
                f"file:{work / 'empty.ndjson'}",
            ],
            args.cpu,
            sidecar_env(),
        )
        for _ in range(args.repeat):
            spool, out = work / "spool", work / "out.ndjson"
            shutil.rmtree(spool, ignore_errors=True)
            shutil.copytree(master, spool)
            out.unlink(missing_ok=True)
            os.sync()  # the copy's write-back must not compete with the run being measured
            wall, _, _ = run_pinned(
                [
                    str(SIDECAR),
                    "--spool",
                    str(spool),
                    "--once",
                    "--no-default-sinks",
                    "--sink",
                    f"file:{out}",
                ],
                args.cpu,
                sidecar_env(),
            )
            lines = out.read_bytes().count(b"\n")
            assert lines == args.events, f"floe delivered {lines} of {args.events}"
            floe.append(wall)
            wall, _, _ = run_pinned(
                [sys.executable, "-c", NAIVE, str(master), str(work / "naive.ndjson")],
                args.cpu,
                sidecar_env(),
            )
            naive.append(wall)
        f_rate = args.events / statistics.median(floe)
        n_rate = args.events / statistics.median(naive)
        print()
        print("| path | median wall s | events/s | MB/s |")
        print("|---|---:|---:|---:|")
        print(
            f"| floe-sidecar --once, file sink | {statistics.median(floe):.2f} | {f_rate:,.0f} | "
            f"{size / statistics.median(floe) / 1e6:.1f} |"
        )
        print(
            f"| naive json tailer (no checks, no fsync) | {statistics.median(naive):.2f} | "
            f"{n_rate:,.0f} | {size / statistics.median(naive) / 1e6:.1f} |"
        )
        print()
        print(f"floe / naive events/s: {f_rate / n_rate:.2f}")
        print(
            f"floe / goal ({GOAL:,}/s): {f_rate / GOAL:.2f}"
            f"  {'OK' if f_rate >= GOAL else 'BELOW GOAL'}"
        )
        print(f"(process start with an empty spool: {start_up:.2f} s, included above)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
