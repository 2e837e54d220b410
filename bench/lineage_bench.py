"""Lineage latency and throughput: floe's sidecar beside dbt-ol and openlineage-python.

1. Latency, on a real pipeline: the example project materialized by Dagster with floe's adapter,
   events over the sidecar's socket, the sidecar's OpenLineage sink posting to a loopback HTTP
   backend. For every node RunEvent: (arrival at the backend) - (its eventTime, which is dbt's own
   node_started_at / node_finished_at). Beside it, in the same run of this script, dbt-ol on the
   same project and profile: its default mode (emits after dbt exits) and its live mode
   (``--consume-structured-logs``, tails dbt's log). dbt-ol dates test events with the time it
   builds them, so the comparison uses model, seed and snapshot events only.

2. Throughput: N RunEvents (translated from the example project's events, many runs) delivered to
   a loopback HTTP backend by floe's sink (batches of ``max_batch``, one POST per event, or one
   POST per batch when the backend has ``/api/v1/lineage/batch``) beside openlineage-python's
   ``HttpTransport.emit`` called once per event, as dbt-ol and other integrations do.

    .venv/bin/python bench/lineage_bench.py [--events 5000] [--repeat 3] [--skip-latency]
        [--latency-repeat 3] [--skip-throughput]

The latency part prints the machine's load average before and after it: on a shared 2-core
machine the tail moves with it, so a figure is only worth as much as the load it was taken at.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
VENV_BIN = Path(sys.executable).parent
NODE_JOB_TYPES = {"MODEL", "SEED", "SNAPSHOT"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- 1. latency on a real pipeline -------------------------------------------------------------


def _event_latencies(receiver: Any, job_types: set[str] | None) -> list[float]:
    out = []
    with receiver.lock:
        requests = list(receiver.received)
    for request in requests:
        for event in request.events:
            job_type = event["job"]["facets"].get("jobType", {}).get("jobType")
            if job_types is not None and job_type not in job_types:
                continue
            if job_types is None and job_type in (None, "JOB"):
                continue
            happened = datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
            out.append((request.at - happened.timestamp()) * 1000)
    return out


def _split(receiver: Any, emitted: dict[tuple[str, str], float]) -> tuple[list[float], list[float]]:
    """Per node event: (adapter emitted - dbt's time), (backend arrival - adapter emitted), ms."""
    adapter_part, sidecar_part = [], []
    with receiver.lock:
        requests = list(receiver.received)
    for request in requests:
        for event in request.events:
            if event["job"]["facets"]["jobType"]["jobType"] == "JOB":
                continue
            when = emitted.get((event["run"]["runId"], event["eventType"]))
            if when is None:
                continue
            happened = datetime.fromisoformat(event["eventTime"]).timestamp()
            adapter_part.append((when - happened) * 1000)
            sidecar_part.append((request.at - when) * 1000)
    return adapter_part, sidecar_part


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def materialize(workdir: Path) -> None:
    """Worker process: compile, parse and materialize the project (dbt's chatter to a log)."""
    import dagster

    from floe_core.artifacts import load_artifacts
    from floe_dagster import build_definitions

    defs = build_definitions(load_artifacts(workdir / ".floe" / "compiled_artifacts.json"))
    result = dagster.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=dagster.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)


def floe_pipeline(workdir: Path, receiver: Any) -> tuple[float, dict[tuple[str, str], float]]:
    """Materialize with the adapter while the sidecar delivers to ``receiver``.

    Returns the wall seconds and, per delivered RunEvent (runId, eventType), the adapter's
    ``emitted_at`` of the floe event it came from (to split the latency in two).
    """
    from floe_core.events import decode_event
    from floe_dagster.manifest import dbt_executable, parse_command
    from floe_dbt.compile import compile_floe
    from floe_sidecar.sinks.openlineage import translate_event

    artifacts = compile_floe(workdir / "floe.yaml", output_dir=workdir / ".floe")
    subprocess.run(parse_command(artifacts, dbt_executable()), check=True, capture_output=True)
    compile_floe(workdir / "floe.yaml", output_dir=workdir / ".floe")
    spool, sock = workdir / ".floe" / "spool", workdir / ".floe" / "sidecar.sock"
    archive = workdir / ".floe" / "archive"
    log = open(workdir / "pipeline.log", "ab")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "FLOE_"))}
    env.update(OPENLINEAGE_URL=receiver.url, HOME=str(workdir))
    sink = "python:floe_sidecar.sinks.openlineage.sink:build_openlineage_sink"
    sidecar = subprocess.Popen(
        [
            str(VENV_BIN / "floe-sidecar"),
            "--spool",
            str(spool),
            "--socket",
            str(sock),
            "--archive",
            str(archive),
            "--no-default-sinks",
            "--sink",
            sink,
            "--log-format",
            "text",
        ],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if not _wait(sock.exists, 30):
            raise RuntimeError(f"the sidecar did not open {sock}; see {workdir}/pipeline.log")
        began = time.monotonic()
        subprocess.run(
            [sys.executable, __file__, "--materialize", str(workdir)],
            env={**env, "FLOE_SOCKET": str(sock), "FLOE_SPOOL_DIR": str(spool)},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
        wall = time.monotonic() - began

        def root_closed() -> bool:
            return any(
                e["eventType"] == "COMPLETE"
                and e["job"]["facets"]["jobType"]["integration"] == "DAGSTER"
                for e in receiver.events()
            )

        if not _wait(root_closed, 30):
            raise RuntimeError("the sidecar did not deliver the run's events")
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=30)
        log.close()
    emitted: dict[tuple[str, str], float] = {}
    for segment in sorted(archive.rglob("*.ndjson")):
        for line in segment.read_bytes().splitlines():
            event = decode_event(line)
            for item in translate_event(event):
                key = (item["run"]["runId"], item["eventType"])
                emitted.setdefault(key, event.emitted_at.timestamp())
    return wall, emitted


def dbt_ol(workdir: Path, receiver: Any, live: bool) -> float:
    artifacts = json.loads((workdir / ".floe" / "compiled_artifacts.json").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "FLOE_"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", OPENLINEAGE_URL=receiver.url)
    args = [str(VENV_BIN / "dbt-ol"), "build"] + (["--consume-structured-logs"] if live else [])
    args += [
        "--project-dir",
        artifacts["dbt_project_path"],
        "--profiles-dir",
        artifacts["dbt_profiles_path"],
    ]
    began = time.monotonic()
    subprocess.run(args, env=env, cwd=workdir, check=True, capture_output=True)
    return time.monotonic() - began


def latency(repeat: int) -> dict[str, list[float]]:
    from support.lineage import Receiver

    samples: dict[str, list[float]] = {}
    for round_ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="floe-lineage-bench-") as tmp:
            workdir = Path(tmp) / "shop"
            shutil.copytree(
                REPO / "examples" / "shop",
                workdir,
                ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*"),
            )
            receivers = {name: Receiver().start() for name in ("floe", "dbt-ol", "dbt-ol live")}
            try:
                floe_wall, emitted = floe_pipeline(workdir, receivers["floe"])
                walls = {
                    "floe": floe_wall,
                    "dbt-ol": dbt_ol(workdir, receivers["dbt-ol"], live=False),
                    "dbt-ol live": dbt_ol(workdir, receivers["dbt-ol live"], live=True),
                }
                for name, receiver in receivers.items():
                    samples.setdefault(name, []).extend(_event_latencies(receiver, NODE_JOB_TYPES))
                samples.setdefault("floe (all node events)", []).extend(
                    _event_latencies(receivers["floe"], None)
                )
                adapter_part, sidecar_part = _split(receivers["floe"], emitted)
                samples.setdefault("  of which dbt -> adapter emits", []).extend(adapter_part)
                samples.setdefault("  of which adapter -> backend", []).extend(sidecar_part)
                print(
                    f"round {round_ + 1}: wall "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items()),
                    flush=True,
                )
            finally:
                for receiver in receivers.values():
                    receiver.stop()
    return samples


def sidecar_hop(count: int) -> list[float]:
    """The sidecar's own share, alone: ``EventEmitter.emit`` (the adapter's call) -> socket ->
    sidecar -> OpenLineage sink -> backend, one event every 20 ms; ms per RunEvent."""
    from support.data import shop_events
    from support.lineage import Receiver

    from floe_dagster.emitter import EventEmitter
    from floe_sidecar.sinks.openlineage import translate_event

    receiver = Receiver().start()
    with tempfile.TemporaryDirectory(prefix="floe-lineage-hop-") as tmp:
        base = Path(tmp)
        sock = base / "sidecar.sock"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "OPENLINEAGE_URL": receiver.url}
        sink = "python:floe_sidecar.sinks.openlineage.sink:build_openlineage_sink"
        sidecar = subprocess.Popen(
            [
                str(VENV_BIN / "floe-sidecar"),
                "--spool",
                str(base / "spool"),
                "--socket",
                str(sock),
                "--no-default-sinks",
                "--sink",
                sink,
                "--log-format",
                "text",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sent: dict[tuple[str, str], float] = {}
        try:
            if not _wait(sock.exists, 30):
                raise RuntimeError("the sidecar did not open its socket")
            emitter = EventEmitter(base / "spool", str(sock))
            emitted = 0
            while emitted < count:
                for event in shop_events(run_id=str(uuid.uuid4())):
                    now = time.time()
                    emitter.emit(event)
                    for item in translate_event(event):
                        sent[(item["run"]["runId"], item["eventType"])] = now
                    emitted += 1
                    time.sleep(0.02)
            _wait(lambda: len(receiver.events()) >= len(sent), 30)
            emitter.close()
        finally:
            sidecar.send_signal(signal.SIGTERM)
            sidecar.wait(timeout=30)
            receiver.stop()
    return [
        (request.at - sent[(e["run"]["runId"], e["eventType"])]) * 1000
        for request in receiver.received
        for e in request.events
    ]


# --- 2. throughput to a loopback backend -------------------------------------------------------


class CountingBackend:
    """A minimal OpenLineage backend: parses each body and counts the events in it."""

    def __init__(self, batch: bool) -> None:
        self.count = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                is_batch = self.path.endswith("/batch")
                if is_batch and not batch:
                    status, n = 404, 0
                else:
                    payload = json.loads(body)
                    status, n = (200, len(payload)) if is_batch else (201, 1)
                with backend.lock:
                    backend.count += n
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_events(count: int) -> list[dict[str, Any]]:
    from support.data import shop_events

    from floe_sidecar.sinks.openlineage import translate_event

    out: list[dict[str, Any]] = []
    while len(out) < count:
        for event in shop_events(run_id=str(uuid.uuid4())):
            out.extend(translate_event(event))
    return out[:count]


def floe_sink_rate(events: list[dict[str, Any]], batch_endpoint: bool) -> float:
    from floe_sidecar.sinks.openlineage.delivery import build_delivery
    from floe_sidecar.sinks.openlineage.sink import OpenLineageSink

    backend = CountingBackend(batch=batch_endpoint)
    sink = OpenLineageSink(build_delivery({"type": "http", "url": backend.url}), "dbt")
    try:
        began = time.perf_counter()
        for start in range(0, len(events), sink.max_batch):
            rejected = sink.deliver(events[start : start + sink.max_batch])
            assert not rejected
        elapsed = time.perf_counter() - began
        assert backend.count == len(events), (backend.count, len(events))
        return len(events) / elapsed
    finally:
        sink.close()
        backend.stop()


def client_rate(events: list[dict[str, Any]]) -> float:
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    from floe_sidecar.sinks.openlineage.delivery import _client_event

    objects = [_client_event(e) for e in events]  # built before the clock: the caller's objects
    backend = CountingBackend(batch=False)
    transport = HttpTransport(HttpConfig.from_dict({"url": backend.url}))
    try:
        began = time.perf_counter()
        for event in objects:
            transport.emit(event)
        elapsed = time.perf_counter() - began
        assert backend.count == len(events)
        return len(events) / elapsed
    finally:
        transport.close()
        backend.stop()


def throughput(count: int, repeat: int) -> dict[str, list[float]]:
    events = run_events(count)
    rates: dict[str, list[float]] = {}
    for _ in range(repeat):
        rates.setdefault("floe sink, one POST per event", []).append(floe_sink_rate(events, False))
        rates.setdefault("floe sink, batch endpoint", []).append(floe_sink_rate(events, True))
        rates.setdefault("openlineage-python HttpTransport.emit", []).append(client_rate(events))
    return rates


def encoding_rates(events: list[dict[str, Any]]) -> tuple[float, float, float]:
    """RunEvents/s: floe's translation (floe event -> dict), msgspec encoding of those dicts, and
    openlineage-python's serializer (``Serde.to_json``) on the same events as client objects."""
    import msgspec
    from openlineage.client.serde import Serde
    from support.data import shop_events

    from floe_sidecar.sinks.openlineage import translate_event
    from floe_sidecar.sinks.openlineage.delivery import _client_event

    source = [e for _ in range(max(1, len(events) // 50)) for e in shop_events()]
    began = time.perf_counter()
    produced = sum(len(translate_event(e)) for e in source)
    translate = produced / (time.perf_counter() - began)
    encode = msgspec.json.Encoder().encode
    began = time.perf_counter()
    for event in events:
        encode(event)
    msgspec_rate = len(events) / (time.perf_counter() - began)
    objects = [_client_event(e) for e in events]
    began = time.perf_counter()
    for obj in objects:
        Serde.to_json(obj)
    serde_rate = len(events) / (time.perf_counter() - began)
    return translate, msgspec_rate, serde_rate


# --- report ------------------------------------------------------------------------------------


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-repeat", type=int, default=1)
    parser.add_argument("--hop-events", type=int, default=300)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--materialize", type=Path, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()
    if args.materialize:
        materialize(args.materialize)

    if not args.skip_latency:
        load_before = os.getloadavg()
        samples = latency(args.latency_repeat)
        load_after = os.getloadavg()
        print(
            "\nlatency: dbt node state change -> event at the backend (ms); load average "
            f"(1, 5, 15 min) before {_load(load_before)}, after {_load(load_after)}, "
            f"{os.cpu_count()} cores"
        )
        print(f"{'producer':32} {'events':>6} {'p50':>9} {'p99':>9} {'max':>9}")
        stats = {}
        for name, values in samples.items():
            stats[name] = (percentile(values, 50), percentile(values, 99))
            print(
                f"{name:32} {len(values):>6} {stats[name][0]:>9.1f} {stats[name][1]:>9.1f} "
                f"{max(values):>9.1f}"
            )
        for peer in ("dbt-ol", "dbt-ol live"):  # node events only, on both sides
            print(
                f"{peer} / floe: p50 x{stats[peer][0] / stats['floe'][0]:.1f}, "
                f"p99 x{stats[peer][1] / stats['floe'][1]:.1f}"
            )
        goal = "met" if stats["floe"][1] <= 100 else "NOT met"
        print(
            f"goal p99 <= 100 ms end to end: {goal}; spec (SC-004) <= 1 s: "
            f"{'met' if stats['floe'][1] <= 1000 else 'NOT met'}"
        )
        hop = sidecar_hop(args.hop_events)
        print(
            f"sidecar hop alone (adapter emit -> backend, {len(hop)} RunEvents, idle pipeline): "
            f"p50 {percentile(hop, 50):.1f} ms, p99 {percentile(hop, 99):.1f} ms"
        )

    if args.skip_throughput:
        return
    translate, msgspec_rate, serde_rate = encoding_rates(run_events(args.events))
    print(
        f"\ntranslation {translate:.0f} RunEvents/s; JSON encoding: msgspec {msgspec_rate:.0f}/s, "
        f"openlineage-python Serde.to_json {serde_rate:.0f}/s (x{msgspec_rate / serde_rate:.0f})"
    )
    rates = throughput(args.events, args.repeat)
    print(
        f"\nthroughput: {args.events} RunEvents to a loopback HTTP backend (events/s, median "
        f"of {args.repeat})"
    )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["openlineage-python HttpTransport.emit"]
    for name, value in medians.items():
        print(f"{name:40} {value:>10.0f}   x{value / base:.2f}")


if __name__ == "__main__":
    main()
