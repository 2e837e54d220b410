"""Draining a backlog of many small segments: 10,000 one-event segments beside one segment of
10,000 events, through the same ``floe-sidecar --once`` to a file sink, on one core.

A backlog after a long outage is many small segments (one per adapter step or intake seal); the
goal is the same events/s as one big segment, and at least 20,000 events/s. A drain is the whole
``--once`` process (read, translate, deliver, commit the cursor, retire every segment), less the
process start measured the same way on an empty spool. Both the wall time and the process's own
CPU time (user + system) are reported: the wall time is what a user waits, the CPU time barely
moves when another process shares the core (the two are close on a quiet machine). From the
sidecar's own status file: the time from its engine's start to the last delivery (the backlog
is delivered; process start and imports excluded) and what retiring the segments took after it.

The last lines are the floors, measured in the bench's own process on the same CPU: the CPU time
of the five system calls a reader cannot do without for each segment (open, shared lock, fstat,
pread, close), and the wall time of retiring each one (lstat, unlink, one directory fsync). One
segment's drain plus them is the best the many segments can do, delivered and wall.

    .venv/bin/python bench/sidecar_many_segments.py [--segments 10000] [--repeat 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sidecar_common import SIDECAR, lines, run_pinned, sidecar_env

from floe_core.layout import SpoolLayout
from floe_core.spool import SpoolWriter, list_segment_names, list_segments
from floe_sidecar.engine.status import read_health

GOAL = 20_000


def write_many(spool: Path, count: int) -> None:
    for i in range(count):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(b"".join(lines(1, i)))


def write_one(spool: Path, count: int) -> None:
    with SpoolWriter(spool, prefix="adapter") as writer:
        for first in range(0, count, 1000):
            writer.append(b"".join(lines(min(1000, count - first), first)))


@dataclass(frozen=True)
class Drain:
    wall: float  # the whole process
    cpu: float  # its user + system time
    delivered: float  # engine start -> last delivery (from the status file)
    retired: float  # last delivery -> the process's last status write (retiring the segments)


def drain(master: Path, work: Path, cpu: int, count: int) -> Drain:
    """One ``--once`` drain of a copy of ``master`` (synced to disk, as a real backlog is)."""
    spool, out = work / "spool", work / "out.ndjson"
    shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(master, spool)
    out.unlink(missing_ok=True)
    os.sync()
    cmd = [str(SIDECAR), "--spool", str(spool), "--once", "--no-default-sinks"]
    wall, _, cpu_s = run_pinned([*cmd, "--sink", f"file:{out}"], cpu, sidecar_env())
    delivered = out.read_bytes().count(b"\n")
    assert delivered == count, f"delivered {delivered} of {count}"
    assert not list_segments(spool), "segments left behind"
    health = read_health(SpoolLayout(spool).status)
    assert health is not None, "no status file"
    [sink] = health.sinks
    assert sink.last_delivery_at is not None
    return Drain(
        wall,
        cpu_s,
        sink.last_delivery_at - health.started_at,
        health.updated_at - sink.last_delivery_at,
    )


@contextmanager
def synced_copy_on(
    master: Path, work: Path, name: str, cpu: int
) -> Iterator[tuple[list[str], int]]:
    """A copy of ``master`` synced to disk, with this process on ``cpu``: its segment names and
    the copy's directory descriptor (both floors measure on it, then it goes)."""
    spool = work / name
    shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(master, spool)
    os.sync()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    dir_fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield list_segment_names(spool), dir_fd
    finally:
        os.close(dir_fd)
        os.sched_setaffinity(0, before)
        shutil.rmtree(spool, ignore_errors=True)


def syscall_floor(master: Path, work: Path, cpu: int) -> float:
    """CPU seconds of the system calls a reader cannot do without for each segment of
    ``master`` (open, shared lock, fstat, pread, close), in this process on ``cpu``: what
    draining many segments costs on top of one segment at the very least."""
    with synced_copy_on(master, work, "floor", cpu) as (names, dir_fd):
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        started = time.process_time()
        for name in names:
            fd = os.open(name, flags, dir_fd=dir_fd)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            os.pread(fd, os.fstat(fd).st_size, 0)
            os.close(fd)
        return time.process_time() - started


def retire_floor(master: Path, work: Path, cpu: int) -> tuple[float, float]:
    """Wall and CPU seconds of what retiring each segment of ``master`` cannot do without
    (an lstat to check it is still the file read, an unlink; one directory fsync), in this
    process on ``cpu``. The unlink is the file system's work, mostly not this process's CPU:
    it is what the wall time of a many-segments drain pays that one segment does not."""
    with synced_copy_on(master, work, "retire-floor", cpu) as (names, dir_fd):
        wall, started = time.perf_counter(), time.process_time()
        for name in names:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            os.unlink(name, dir_fd=dir_fd)
        os.fsync(dir_fd)
        return time.perf_counter() - wall, time.process_time() - started


def rate_text(events: int, seconds: float) -> str:
    """events/s, or "-" when the process start subtracted from a short run leaves nothing."""
    return f"{events / seconds:,.0f}" if seconds > 0.005 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    n = args.segments
    try:
        many, one, empty = work / "many", work / "one", work / "empty"
        write_many(many, n)
        write_one(one, n)
        empty.mkdir(mode=0o700)
        idle = [f"file:{work / 'e.ndjson'}"]
        empty_cmd = [str(SIDECAR), "--spool", str(empty), "--once", "--no-default-sinks"]
        empty_runs = [
            run_pinned([*empty_cmd, "--sink", *idle], args.cpu, sidecar_env()) for _ in range(3)
        ]
        start_wall = statistics.median(r[0] for r in empty_runs)
        start_cpu = statistics.median(r[2] for r in empty_runs)
        runs: dict[str, list[Drain]] = {"many": [], "one": []}
        for _ in range(args.repeat):  # interleaved: both see the same load
            runs["many"].append(drain(many, work, args.cpu, n))
            runs["one"].append(drain(one, work, args.cpu, n))

        def median(key: str, field: str) -> float:
            return statistics.median(getattr(r, field) for r in runs[key])

        seconds = {
            (key, basis): value
            for key in runs
            for basis, value in (
                ("wall", median(key, "wall") - start_wall),
                ("CPU", median(key, "cpu") - start_cpu),
                ("delivered", median(key, "delivered")),
            )
        }
        floor = statistics.median(syscall_floor(many, work, args.cpu) for _ in range(3))
        retiring = [retire_floor(many, work, args.cpu) for _ in range(3)]
        retire_wall = statistics.median(r[0] for r in retiring)
        retire_cpu = statistics.median(r[1] for r in retiring)
        print(
            f"{n:,} events; process start {start_wall:.2f} s wall, {start_cpu:.2f} s CPU "
            f"(subtracted); load {os.getloadavg()[0]:.2f}"
        )
        print()
        print(
            "| backlog | wall s | CPU s | to last delivery s | retiring s "
            "| events/s (wall) | events/s (CPU) | events/s (delivered) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for key, label in (
            ("many", f"{n:,} one-event segments"),
            ("one", f"one segment of {n:,} events"),
        ):
            print(
                f"| {label} | {median(key, 'wall'):.2f} | {median(key, 'cpu'):.2f} "
                f"| {median(key, 'delivered'):.2f} | {median(key, 'retired'):.2f} "
                f"| {rate_text(n, seconds[key, 'wall'])} | {rate_text(n, seconds[key, 'CPU'])} "
                f"| {rate_text(n, seconds[key, 'delivered'])} |"
            )
        print()
        for basis in ("wall", "CPU", "delivered"):
            many_s, one_s = seconds["many", basis], seconds["one", basis]
            if min(many_s, one_s) <= 0.005:
                print(f"{basis:>9}: - (the process start left nothing to compare)")
                continue
            many_rate = n / many_s
            print(
                f"{basis:>9}: many / one {one_s / many_s:.2f}; "
                f"many / goal ({GOAL:,}/s) {many_rate / GOAL:.2f}  "
                f"{'OK' if many_rate >= GOAL else 'BELOW GOAL'}"
            )
        one_s = seconds["one", "delivered"]
        print(
            f"\nsyscall floor: open + flock + fstat + pread + close of the {n:,} segments "
            f"{floor:.3f} s CPU ({floor / n * 1e6:.1f} us each); one segment's time plus it: "
            f"{n / (one_s + floor):,.0f} events/s, many / one at best "
            f"{one_s / (one_s + floor):.2f}"
        )
        one_wall = seconds["one", "wall"]
        best_wall = one_wall + floor + retire_wall
        print(
            f"retire floor: lstat + unlink of the {n:,} segments and one directory fsync "
            f"{retire_wall:.3f} s wall, {retire_cpu:.3f} s CPU ({retire_wall / n * 1e6:.0f} us "
            f"each); one segment's wall time plus both floors: {n / best_wall:,.0f} events/s, "
            f"many / one (wall) at best {one_wall / best_wall:.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
