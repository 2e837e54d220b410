"""Log records: how fast the sidecar delivers them from the spool, and what they cost the pipeline.

1. **Records/s, spool -> loopback OTLP receiver** (gRPC and HTTP, tests/support/otlp_receivers.py,
   in this process). floe: ``--records`` log events in a spool, delivered by a real
   ``floe-sidecar --once`` process (only the logs sink on): records the receiver got per second
   from the sidecar's start to its exit (start-up included), and from its first to its last
   export request. Peer: what an application does with the SDK alone: the same records through
   Python ``logging`` (the same messages, floe's attributes as ``extra``) -> the SDK's
   ``LoggingHandler`` -> ``BatchLogRecordProcessor`` (defaults) -> the same exporter,
   ``force_flush`` at the end; records the receiver got per second, and how many it lost. Each
   in a fresh process; alternating; medians. The SDK path is in-process (no spool, nothing
   durable: what it drops when its queue is full is gone), so its whole-run figure has no
   start-up in it; compare the first-to-last-export column for throughput.
2. **The pipeline's wall time with logs on vs off**: examples/shop (compiled and parsed once)
   materialized through Dagster in fresh interpreters, alternating ``observability.logs`` true and
   false (traces and lineage on in both; events to the spool, no sidecar), medians and the ratio;
   with the number of log events each run wrote.

    .venv/bin/python bench/logs_bench.py [--records 20000] [--repeat 3] [--pipeline-repeat 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.data import TRACE_RUN_ID, run_log_lines  # noqa: E402  (the one test-data module)

SIDECAR = Path(sys.executable).parent / "floe-sidecar"
BIN_ON_PATH = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def log_lines(count: int) -> list[Any]:
    """``count`` log events of the trace run (dbt-like lines under their node spans)."""
    import msgspec

    from floe_core import ids

    template = run_log_lines(10)
    lines = []
    for n in range(count):
        line = template[n % len(template)]
        lines.append(
            msgspec.structs.replace(
                line,
                event_id=ids.event_id("log", TRACE_RUN_ID, "bench", str(n)),
                message=f"{n} of {count} {line.message}",
            )
        )
    return lines


# --- 1. records/s -----------------------------------------------------------------------------


def run_floe(workdir: Path, protocol: str, endpoint: str, count: int) -> dict[str, Any]:
    import msgspec
    from support import data

    from floe_core.events import encode_event
    from floe_core.spool import SpoolWriter

    spool = workdir / "spool"
    with SpoolWriter(spool, prefix="adapter") as writer:
        lines = log_lines(count)
        for first in range(0, count, 500):
            writer.append(b"".join(encode_event(e) for e in lines[first : first + 500]))
    artifacts = workdir / "artifacts.json"
    artifacts.write_bytes(msgspec.json.encode(data.artifacts(environment="bench", logs=True)))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OTEL_", "OPENLINEAGE"))
    }
    env.update(
        OPENLINEAGE_DISABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_TIMEOUT="10000",
        PYTHONWARNINGS="ignore",
    )
    started = time.time()
    done = subprocess.run(
        [str(SIDECAR), "--spool", str(spool), "--artifacts", str(artifacts), "--once"],
        env=env,
        capture_output=True,
        check=False,
    )
    finished = time.time()
    if done.returncode != 0:
        raise SystemExit(f"floe-sidecar failed:\n{done.stderr.decode()[-4000:]}")
    shutil.rmtree(spool)
    return {"started": started, "seconds": finished - started}


def run_sdk(protocol: str, endpoint: str, count: int) -> dict[str, Any]:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from floe_sidecar.settings import SidecarSettings
    from floe_sidecar.sinks.otel.config import resolve_signal_config
    from floe_sidecar.sinks.otel.logs import LogTranslator
    from floe_sidecar.sinks.otel.logs_sink import build_log_exporter

    settings = SidecarSettings(
        spool_dir=Path("unused"),
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "10000",
        },
    )
    config = resolve_signal_config(settings, "logs")
    assert config is not None
    provider = LoggerProvider(resource=Resource(dict(config.resource)))
    provider.add_log_record_processor(BatchLogRecordProcessor(build_log_exporter(config)))
    logger = logging.getLogger("bench.sdk")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    # The same records as floe's: each line's message and attributes (as logging "extra").
    translator = LogTranslator(config.resource)
    lines = [(line.message, translator.record(line).attributes) for line in log_lines(count)]
    started = time.time()
    for message, attributes in lines:
        logger.info(message, extra=attributes)
    provider.force_flush(timeout_millis=120_000)
    finished = time.time()
    provider.shutdown()
    return {"started": started, "seconds": finished - started}


def records_worker(path: str, protocol: str, endpoint: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="floe-logs-bench-") as tmp:
        if path == "floe":
            result = run_floe(Path(tmp), protocol, endpoint, count)
        else:
            result = run_sdk(protocol, endpoint, count)
    print(json.dumps(result))


def bench_records(count: int, repeat: int) -> None:
    from support.otlp_receivers import GrpcReceiver, HttpReceiver

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with GrpcReceiver() as grpc_receiver, HttpReceiver() as http_receiver:
        receivers = {"grpc": grpc_receiver, "http/protobuf": http_receiver}
        for i in range(repeat):
            for protocol, receiver in receivers.items():
                endpoint = f"http://127.0.0.1:{receiver.port}"
                order = ("floe", "sdk") if i % 2 == 0 else ("sdk", "floe")
                for path in order:
                    with receiver.lock:
                        receiver.log_requests.clear()
                        receiver.headers.clear()
                    stamps: list[float] = []
                    original = receiver._record

                    def record(
                        request: Any,
                        headers: dict[str, str],
                        _o: Any = original,
                        _stamps: list[float] = stamps,
                    ) -> None:
                        _stamps.append(time.time())
                        _o(request, headers)

                    receiver._record = record  # type: ignore[method-assign]
                    out = subprocess.run(
                        [sys.executable, __file__, "--records", str(count), "--worker", path,
                         protocol, endpoint],
                        check=True, capture_output=True, text=True,
                        env={**os.environ, "PYTHONWARNINGS": "ignore"},
                    ).stdout  # fmt: skip
                    time.sleep(0.3)  # let the receiver finish decoding the last request
                    receiver._record = original  # type: ignore[method-assign]
                    result = json.loads(out.strip().splitlines()[-1])
                    result["received"] = receiver.log_count()
                    result["first_to_last"] = (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0
                    results.setdefault((path, protocol), []).append(result)
                    print(
                        f"  run {i + 1} {protocol:13s} {path}: {result['received']}/{count} in "
                        f"{result['seconds']:.2f}s",
                        file=sys.stderr,
                    )

    print(f"\n{count} log records, median of {repeat} runs; python {sys.version.split()[0]}\n")
    print(
        "| protocol | path | delivered records/s (whole run) | records/s (first to last "
        "export) | delivered (worst run) |"
    )
    print("|---|---|---:|---:|---:|")
    rates: dict[tuple[str, str], float] = {}
    for protocol in ("grpc", "http/protobuf"):
        for path in ("floe", "sdk"):
            runs = results[(path, protocol)]
            rate = statistics.median(r["received"] / r["seconds"] for r in runs)
            steady = statistics.median(
                r["received"] / r["first_to_last"] if r["first_to_last"] else 0.0 for r in runs
            )
            rates[(path, protocol)] = rate
            label = (
                "floe-sidecar --once, spool -> receiver"
                if path == "floe"
                else "SDK LoggingHandler + BatchLogRecordProcessor"
            )
            worst = min(r["received"] for r in runs)
            print(f"| {protocol} | {label} | {rate:,.0f} | {steady:,.0f} | {worst}/{count} |")
    for protocol in ("grpc", "http/protobuf"):
        ratio = rates[("floe", protocol)] / rates[("sdk", protocol)]
        print(f"\n{protocol}: floe/SDK delivered records/s ratio (whole run) {ratio:.2f}")


# --- 2. the pipeline with logs on vs off --------------------------------------------------------


def pipeline_worker(artifacts_path: str, logs: bool) -> None:
    import msgspec
    from dagster import DagsterInstance

    from floe_core.artifacts import load_artifacts
    from floe_dagster.assets import build_definitions

    artifacts = load_artifacts(artifacts_path)
    observability = msgspec.structs.replace(artifacts.observability, logs=logs)
    artifacts = msgspec.structs.replace(artifacts, observability=observability)
    defs = build_definitions(artifacts)
    job = defs.resolve_implicit_global_asset_job_def()
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    print(json.dumps({"success": result.success, "materialize_s": time.perf_counter() - started}))


def bench_pipeline(repeat: int) -> None:
    from floe_core.spool import list_segments
    from floe_dagster.manifest import parse_project
    from floe_dbt.compile import compile_floe

    with tempfile.TemporaryDirectory(prefix="floe-logs-pipeline-bench-") as tmp:
        root = Path(tmp)
        project = root / "shop"
        shutil.copytree(
            REPO / "examples" / "shop", project, ignore=shutil.ignore_patterns(".floe", "target")
        )
        artifacts = compile_floe(project / "floe.yaml", output_dir=project / ".floe")
        parse_project(artifacts)
        artifacts_path = project / ".floe" / "compiled_artifacts.json"
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for i in range(repeat):
            for logs in (True, False) if i % 2 == 0 else (False, True):
                spool = root / f"spool-{i}-{logs}"
                env = {**os.environ, **BIN_ON_PATH, "FLOE_SPOOL_DIR": str(spool)}
                env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
                env.pop("FLOE_SOCKET", None)
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, __file__, "--pipeline-worker", str(artifacts_path),
                     "on" if logs else "off"],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                process_s = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"pipeline worker failed:\n{done.stderr[-4000:]}")
                report = json.loads(done.stdout.strip().splitlines()[-1])
                assert report["success"], report
                lines = [
                    line
                    for segment in list_segments(spool)
                    for line in segment.read_bytes().splitlines()
                ]
                report["process_s"] = process_s
                report["log_events"] = sum(1 for line in lines if b'"type":"log"' in line)
                report["events"] = len(lines)
                runs[logs].append(report)
                print(
                    f"  run {i + 1} logs {'on ' if logs else 'off'}: materialize "
                    f"{report['materialize_s']:.2f}s, process {process_s:.2f}s, "
                    f"{report['log_events']} log events of {report['events']}",
                    file=sys.stderr,
                )

    print(f"\nexamples/shop on DuckDB, {repeat} runs each, logs on and off alternating, medians\n")
    print("| measure | logs on | logs off | on / off |")
    print("|---|---:|---:|---:|")
    for key, label in (
        ("materialize_s", "materialization (execute_in_process), s"),
        ("process_s", "whole process, s"),
    ):
        on = statistics.median(r[key] for r in runs[True])
        off = statistics.median(r[key] for r in runs[False])
        print(f"| {label} | {on:.2f} | {off:.2f} | {on / off:.3f} |")
    spread = [r["materialize_s"] for r in runs[False]]
    print(
        f"| events written per run | {statistics.median(r['events'] for r in runs[True]):.0f} | "
        f"{statistics.median(r['events'] for r in runs[False]):.0f} | |"
    )
    print(
        f"\nlog events per run: {statistics.median(r['log_events'] for r in runs[True]):.0f}; "
        f"run-to-run spread with logs off: {min(spread):.2f}-{max(spread):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pipeline-repeat", type=int, default=5)
    parser.add_argument("--only", choices=["records", "pipeline"])
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "PROTOCOL", "ENDPOINT"))
    parser.add_argument("--pipeline-worker", nargs=2, metavar=("ARTIFACTS", "LOGS"))
    args = parser.parse_args()
    if args.worker:
        path, protocol, endpoint = args.worker
        records_worker(path, protocol, endpoint, args.records)
        return
    if args.pipeline_worker:
        pipeline_worker(args.pipeline_worker[0], args.pipeline_worker[1] == "on")
        return
    if args.only != "pipeline":
        bench_records(args.records, args.repeat)
    if args.only != "records":
        bench_pipeline(args.pipeline_repeat)


if __name__ == "__main__":
    main()
