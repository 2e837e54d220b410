"""Peak RSS while draining a backlog, and whether it grows with the backlog (it must not).

A backlog of realistic node events (about 1.5 KB each, 64 MiB segments) is written to a spool
while no sidecar runs; then ``floe-sidecar --spool DIR --once --no-default-sinks --sink
file:/dev/null`` drains it. Peak RSS is the process's own ``ru_maxrss`` (from ``wait4``), for a
100,000 and a 1,000,000-event backlog, beside the same process on an empty spool (what the
interpreter and the imports alone cost).

    .venv/bin/python bench/sidecar_backlog_rss.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from sidecar_common import SIDECAR, run_pinned, sidecar_env, write_backlog

from floe_core.spool import list_segments

GOAL_MB = 100.0


def drain(spool: Path) -> tuple[float, float]:
    wall, rss, _ = run_pinned(
        [
            str(SIDECAR),
            "--spool",
            str(spool),
            "--once",
            "--no-default-sinks",
            "--sink",
            "file:/dev/null",
        ],
        None,
        sidecar_env(),
    )
    assert list_segments(spool) == [], "the backlog was not fully delivered"
    return wall, rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="floe-rss-"))
    rows = []
    try:
        empty = work / "empty"
        empty.mkdir(mode=0o700)
        _, base = drain(empty)
        for size in sizes:
            spool = work / f"spool-{size}"
            total = write_backlog(spool, size)
            os.sync()
            wall, peak = drain(spool)
            rows.append((size, total, wall, peak))
            shutil.rmtree(spool, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| backlog events | backlog MB | drain s | events/s | peak RSS MB | goal |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| 0 (empty spool) | 0 | - | - | {base:.1f} | |")
    for size, total, wall, peak in rows:
        ok = "OK" if peak <= GOAL_MB else "MISSED"
        print(
            f"| {size:,} | {total / 1e6:,.0f} | {wall:.1f} | {size / wall:,.0f} | {peak:.1f} | "
            f"<= {GOAL_MB:.0f} {ok} |"
        )
    if len(rows) >= 2:
        (small, _, _, small_peak), (big, _, _, big_peak) = rows[0], rows[-1]
        print()
        print(
            f"peak RSS {big:,} / {small:,} events: {big_peak / small_peak:.2f} "
            f"(backlog x{big / small:.0f}); above the empty-spool baseline: "
            f"{small_peak - base:.1f} MB vs {big_peak - base:.1f} MB"
        )


if __name__ == "__main__":
    main()
