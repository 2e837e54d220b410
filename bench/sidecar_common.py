"""Shared by the sidecar benchmarks: realistic events, spool backlogs, running the sidecar."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from floe_core import ids
from floe_core.events import (
    Column,
    Connection,
    DagsterRun,
    Event,
    Invocation,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    encode_event,
)
from floe_core.spool import SpoolWriter

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SIDECAR = REPO / ".venv" / "bin" / "floe-sidecar"
T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

_INVOCATION = Invocation(
    invocation_id="bench-invocation",
    run=DagsterRun(run_id="5b0c7a1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d", job_name="bench_job"),
    project_name="shop",
    environment="bench",
    connection=Connection(target="postgres", adapter_type="postgres", host="db", port=5432),
    command=("build",),
    attributes={"tenant": "acme", "team": "data"},
    dbt_version="1.11.2",
)
_COLUMNS = tuple(
    Column(name=f"col_{c}", data_type="text", description="a documented column") for c in range(6)
)
_SQL = "select o.id, o.customer_id, sum(i.amount) as total\nfrom orders o join items i\n" * 3


def event(i: int, *, run_id: str | None = None, emitted_at: datetime | None = None) -> Event:
    """Node events like the adapter writes (about 1.3 KB of JSON for a finished model)."""
    invocation = _INVOCATION
    if run_id is not None:
        invocation = Invocation(
            invocation_id=_INVOCATION.invocation_id,
            run=DagsterRun(run_id=run_id, job_name="bench_job"),
            project_name=_INVOCATION.project_name,
            environment=_INVOCATION.environment,
            connection=_INVOCATION.connection,
        )
    uid = f"model.shop.model_{i:07d}"
    at = emitted_at or T0 + timedelta(microseconds=i)
    node = Node(
        unique_id=uid,
        name=f"model_{i:07d}",
        resource_type="model",
        materialized="table",
        relation=Relation(database="warehouse", schema="marts", identifier=f"model_{i:07d}"),
        upstream=(Relation(database="warehouse", schema="staging", identifier="stg_orders"),),
        upstream_ids=("model.shop.stg_orders",),
        columns=_COLUMNS,
        owner="team:data",
        tags=("nightly",),
    )
    kind = "node_started" if i % 2 == 0 else "node_finished"
    event_id = ids.event_id(kind, invocation.run.run_id, uid, str(i))
    if kind == "node_started":
        return NodeStarted(
            event_id=event_id, emitted_at=at, invocation=invocation, node=node, started_at=at
        )
    return NodeFinished(
        event_id=event_id,
        emitted_at=at,
        invocation=invocation,
        node=node,
        started_at=at,
        finished_at=at,
        status="success",
        rows_affected=i,
        compiled_sql=_SQL,
        execution_time_s=0.25,
    )


def lines(count: int, start: int = 0) -> Iterator[bytes]:
    for i in range(start, start + count):
        yield encode_event(event(i))


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


def run_pinned(cmd: list[str], cpu: int | None, env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``cmd`` (on one CPU if given); (wall seconds, peak RSS bytes, exit code)."""
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
    return wall, usage.ru_maxrss * 1024, proc.returncode
