"""Cost of emitting one floe event from the adapter (median µs), against a raw ``os.write``.

The events are real: examples/shop is compiled and parsed (``dbt parse``) in a temporary
directory, and every NodeFinished is built from its manifest by the adapter's own builder (node
with relation, upstream, columns and classifications, compiled SQL). Measured side by side, per
event, in this one run:

- ``raw os.write``: the already-encoded line written to an open file with ``os.write``; the floor;
- ``encode``: ``encode_event`` alone (msgspec);
- ``emit, spool path``: ``EventEmitter.emit`` with no sidecar: encode + append to the segment;
- ``emit, socket path``: ``EventEmitter.emit`` to a sidecar stand-in in another process that
  acknowledges every line (``ACK <n>``), as the sidecar does after persisting;
- ``raw socket send``: the encoded line with one blocking ``send`` to the same stand-in.

    .venv/bin/python bench/emit_bench.py [--events 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from floe_core.events import DagsterRun, Event, NodeFinished, encode_event
from floe_dagster.dbt_events import DbtEventBuilder
from floe_dagster.emitter import EventEmitter
from floe_dagster.manifest import ManifestIndex, load_manifest, parse_project
from floe_dbt.compile import compile_floe
from floe_dbt.connection import connection_identity

REPO = Path(__file__).resolve().parents[1]

# A stand-in sidecar: reads lines, acknowledges each read's complete lines (protocol of
# floe_core.transport) in mode "ack", or just discards them in mode "discard" (for the raw send
# baseline, which never reads acks). Its own interpreter, so it does not share our GIL.
ACK_SERVER = r"""
import os, socket, sys
path, mode = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(4)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    pending = b""
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        pending += chunk
        count = pending.count(b"\n")
        if count and mode == "ack":
            pending = pending[pending.rfind(b"\n") + 1 :]
            conn.sendall(b"ACK %d\n" % count)
    conn.close()
"""


def build_events(root: Path, count: int) -> list[Event]:
    """``count`` NodeFinished events of the example's real nodes (cycled)."""
    project = root / "shop"
    shutil.copytree(REPO / "examples" / "shop", project)
    artifacts = compile_floe(project / "floe.yaml", output_dir=project / ".floe")
    parse_project(artifacts)
    manifest = load_manifest(artifacts)
    index = ManifestIndex.for_artifacts(artifacts, manifest)
    builder = DbtEventBuilder(
        index=index,
        run=DagsterRun(run_id="8c1b0b66-0d52-4f0e-9b5e-0a1c2d3e4f50", job_name="__ASSET_JOB"),
        project_name="shop",
        environment="dev",
        connection=connection_identity(artifacts, os.environ),
        attributes={"tenant": "example"},
        command=("build",),
    )
    now = datetime.now(UTC).isoformat().replace("+00:00", "")
    builder.handle({"info": {"name": "MainReportVersion", "invocation_id": "inv-1", "ts": now}})
    nodes = [
        u
        for u, n in manifest["nodes"].items()
        if n["resource_type"] in {"model", "seed", "snapshot", "test"}
        and n["config"].get("materialized") != "ephemeral"
    ]
    sql = "select 1 as id\n" * 40  # a compiled model of ~600 bytes
    events: list[Event] = []
    while len(events) < count:
        for unique_id in nodes:
            node_info = {"unique_id": unique_id, "node_started_at": now, "node_finished_at": now}
            start = {"name": "LogStartLine", "invocation_id": "inv-1", "ts": now}
            builder.handle({"info": start, "data": {"node_info": node_info}})
            info = {"name": "NodeFinished", "invocation_id": "inv-1", "ts": now}
            result = {
                "status": "success",
                "message": "SELECT 6",
                "execution_time": 0.1,
                "adapter_response": {"rows_affected": 6},
            }
            built = builder.handle(
                {"info": info, "data": {"node_info": node_info, "run_result": result}}
            )
            for event in built:
                assert isinstance(event, NodeFinished)
                events.append(msgspec.structs.replace(event, compiled_sql=sql))
    return events[:count]


def per_call_us(action: object, items: list[object]) -> float:
    """Median µs of ``action(item)`` over ``items``, one timing per call."""
    call = action  # type: ignore[assignment]
    timings = []
    clock = time.perf_counter_ns
    for item in items:
        start = clock()
        call(item)  # type: ignore[operator]
        timings.append(clock() - start)
    return statistics.median(timings) / 1000


class AckServer:
    """The stand-in sidecar process, listening on a fresh socket path."""

    def __init__(self, mode: str) -> None:
        self.path = f"/tmp/floe-emit-bench-{os.getpid()}-{mode}.sock"
        self.process = subprocess.Popen(
            [sys.executable, "-c", ACK_SERVER, self.path, mode], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        os.unlink(self.path)


def socket_emit_us(root: Path, events: list[Event]) -> float:
    server = AckServer("ack")
    try:
        emitter = EventEmitter(root / "spool-socket", server.path, ack_timeout_s=10)
        assert emitter.connected
        result = per_call_us(emitter.emit, events)
        stats = emitter.close()
        assert stats.acked == len(events) and stats.spooled == 0, stats
    finally:
        server.close()
    return result


def socket_raw_us(lines: list[bytes]) -> float:
    server = AckServer("discard")
    try:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(server.path)
        result = per_call_us(raw.sendall, lines)
        raw.close()
    finally:
        server.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floe-emit-bench-") as tmp:
        root = Path(tmp)
        events = build_events(root, args.events)
        lines = [encode_event(e) for e in events]
        sizes = sorted(len(line) for line in lines)
        rows: list[tuple[str, float]] = []

        fd = os.open(root / "raw.ndjson", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        rows.append(
            ("raw os.write of the encoded line", per_call_us(lambda b: os.write(fd, b), lines))
        )
        os.close(fd)
        rows.append(("encode_event only", per_call_us(encode_event, events)))

        emitter = EventEmitter(root / "spool")
        rows.append(("emit, spool path (encode + append)", per_call_us(emitter.emit, events)))
        stats = emitter.close()
        assert stats.spooled == len(events) and stats.dropped == 0, stats

        rows.append(("emit, socket path (encode + send + acks)", socket_emit_us(root, events)))
        rows.append(("raw socket send of the encoded line", socket_raw_us(lines)))

    floor = rows[0][1]
    print(
        f"{len(events)} NodeFinished events of examples/shop, {sizes[len(sizes) // 2]} bytes "
        f"median ({sizes[0]}-{sizes[-1]}); median µs per event, one timing per call\n"
    )
    print("| path | µs / event (median) | x raw os.write |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.2f} | {value / floor:.1f} |")


if __name__ == "__main__":
    main()
