"""End-to-end latency: from the adapter's write of an event to the sink's accept, p50/p99.

A real ``floe-sidecar`` runs with one sink (``bench/sidecar_bench_sinks.py``) that notes, per
event, the ``emitted_at`` stamped just before the adapter's emitter (``floe_dagster.emitter.
EventEmitter``) wrote it, and the moment ``deliver`` received it. Events go out at a steady rate,
one at a time, three ways:

- **socket**: the emitter sends over the Unix socket (the sidecar persists each line, ACKs it,
  wakes the sink);
- **spool, watched**: the emitter without a socket appends to its spool segment, as the adapter
  does when no sidecar listens; the sidecar notices through inotify (watchfiles, step 5 ms);
- **spool, polled every 200 ms** (``--no-watch --rescan-interval 0.2``): the peer design, a tailer
  that polls, like the OpenTelemetry Collector's filelog receiver at its default poll interval.

    .venv/bin/python bench/sidecar_latency.py [--events 2000] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sidecar_common import SIDECAR, event, sidecar_env

from floe_dagster.emitter import EventEmitter

GOALS_MS = {"socket": 50.0, "spool, watched": 150.0}


def start(work: Path, out: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    spool, sock = work / "spool", work / "s.sock"
    err = (work / "sidecar.err").open("wb")
    proc = subprocess.Popen(
        [
            str(SIDECAR),
            "--spool",
            str(spool),
            "--socket",
            str(sock),
            "--no-default-sinks",
            "--sink",
            "python:sidecar_bench_sinks:latency_sink",
            *extra,
        ],
        env=sidecar_env(FLOE_BENCH_LATENCY_OUT=str(out)),
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    deadline = time.monotonic() + 30
    while b'"message":"listening"' not in (work / "sidecar.err").read_bytes():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit((work / "sidecar.err").read_text())
        time.sleep(0.01)
    return proc, spool, sock


def paced(count: int, rate: float):  # type: ignore[no-untyped-def]
    interval = 1 / rate
    begin = time.perf_counter()
    for i in range(count):
        delay = begin + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def via_emitter(spool: Path, sock: Path | None, run_id: str, count: int, rate: float) -> None:
    """The adapter's own emitter: socket when given (spool fallback), else the spool."""
    emitter = EventEmitter(spool, sock)
    for i in paced(count, rate):
        emitter.emit(event(i, run_id=run_id, emitted_at=datetime.now(UTC)))
    stats = emitter.close()
    expected = "acked" if sock is not None else "spooled"
    if getattr(stats, expected) != count:
        raise SystemExit(f"the emitter did not use the path under test: {stats}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(mode: str, count: int, rate: float) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="floe-latency-"))
    out = work / "latency.txt"
    extra = ("--no-watch", "--rescan-interval", "0.2") if "polled" in mode else ()
    proc, spool, sock = start(work, out, *extra)
    run_id = f"00000000-0000-4000-8000-{abs(hash(mode)) % 10**12:012d}"
    try:
        time.sleep(0.5)  # let it settle
        via_emitter(spool, sock if mode == "socket" else None, run_id, count, rate)
        deadline = time.monotonic() + 30
        while not out.exists() or out.read_bytes().count(b"\n") < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: not everything arrived")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
    latencies = []
    for line in out.read_text().splitlines():
        _, emitted, accepted = line.split()
        latencies.append((int(accepted) - int(emitted)) / 1000)
    shutil.rmtree(work, ignore_errors=True)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200, help="events per second")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = {}
    for mode in ("socket", "spool, watched", "spool, polled every 200 ms"):
        ms = measure(mode, args.events, args.rate)
        rows[mode] = {
            "p50": statistics.median(ms),
            "p90": percentile(ms, 0.90),
            "p99": percentile(ms, 0.99),
            "max": max(ms),
        }
    print(f"{args.events:,} events per path at {args.rate:.0f} events/s, one at a time")
    print()
    print("| path | p50 ms | p90 ms | p99 ms | max ms | goal p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, r in rows.items():
        goal = GOALS_MS.get(mode)
        verdict = "-" if goal is None else f"<= {goal:.0f} {'OK' if r['p99'] <= goal else 'MISSED'}"
        print(
            f"| {mode} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
            f"{verdict} |"
        )
    print()
    polled = rows["spool, polled every 200 ms"]
    for mode in ("socket", "spool, watched"):
        print(
            f"{mode} / polled p99: {rows[mode]['p99'] / polled['p99']:.2f}   "
            f"p99 / goal: {rows[mode]['p99'] / GOALS_MS[mode]:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
