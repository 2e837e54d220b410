"""Spans per second to a loopback OTLP receiver, and peak RSS: floe's trace sink beside the SDK.

floe path: events -> ``TraceSink.translate`` -> ``TraceSink.deliver`` (one blocking export per
batch of ``max_batch`` spans, as the sidecar's worker thread calls it).
SDK path: the same events -> the same span records -> ``tracer.start_span(...)`` / ``span.end``
with the same ids, times, attributes and status -> ``BatchSpanProcessor`` with its defaults
(queue 2048, batch 512) -> the same exporter -> ``force_flush``.

Each (path, protocol) runs in its own subprocess, so its peak RSS (VmHWM) is its own;
the receivers (gRPC and HTTP, from tests/support/otlp_receivers.py) run in this process and
count what arrives. Runs alternate and repeat; the table shows medians and floe/SDK ratios.

    .venv/bin/python bench/traces_bench.py [--spans 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.data import span_bench_events as events  # noqa: E402  (the one test-data module)


def _settings(protocol: str, port: int) -> Any:
    from support import data

    from floe_sidecar.settings import SidecarSettings

    artifacts = data.artifacts(
        name="bench",
        environment="bench",
        traces=True,
        otlp_endpoint=f"http://127.0.0.1:{port}",
        attributes={"tenant": "bench"},
    )
    return SidecarSettings(
        spool_dir=Path("unused-spool"),
        artifacts=artifacts,
        environ={"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_TIMEOUT": "10000"},
    )


def run_floe(protocol: str, port: int, count: int) -> dict[str, Any]:
    from floe_sidecar.sinks.otel.sink import build_trace_sink

    sink = build_trace_sink(_settings(protocol, port))
    assert sink is not None
    started = time.perf_counter()
    batch: list[Any] = []
    for event in events(count):
        batch.extend(sink.translate(event))
        if len(batch) >= sink.max_batch:
            sink.deliver(batch)
            batch = []
    if batch:
        sink.deliver(batch)
    elapsed = time.perf_counter() - started
    sink.close()
    return {"seconds": elapsed, "sent": count}


def run_sdk(protocol: str, port: int, count: int) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

    from floe_sidecar.sinks.otel.config import resolve_trace_config
    from floe_sidecar.sinks.otel.exporters import build_exporter
    from floe_sidecar.sinks.otel.translate import SpanTranslator

    config = resolve_trace_config(_settings(protocol, port))
    assert config is not None
    translator = SpanTranslator(config.resource)

    class SameIds(IdGenerator):
        """Hands the SDK the span id floe's translation chose for the span being started."""

        next_span_id = 0

        def generate_span_id(self) -> int:
            return self.next_span_id

        def generate_trace_id(self) -> int:
            raise AssertionError("every span has a parent here")

    ids = SameIds()
    first = next(iter(translator.translate(next(events(1)))))
    provider = TracerProvider(resource=Resource(dict(first.resource)), id_generator=ids)
    provider.add_span_processor(BatchSpanProcessor(build_exporter(config)))
    tracer = provider.get_tracer("floe_sidecar.otel")
    kinds = {"internal": trace.SpanKind.INTERNAL, "server": trace.SpanKind.SERVER}
    codes = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
    started = time.perf_counter()
    for event in events(count):
        for record in translator.translate(event):
            parent = SpanContext(
                int(record.trace_id, 16),
                int(record.parent_span_id or "1", 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            ids.next_span_id = int(record.span_id, 16)
            span = tracer.start_span(
                record.name,
                context=trace.set_span_in_context(NonRecordingSpan(parent)),
                kind=kinds[record.kind],
                attributes=record.attributes,
                start_time=record.start_ns,
            )
            for item in record.events:
                span.add_event(item.name, item.attributes, item.time_ns)
            span.set_status(Status(codes[record.status]))
            span.end(end_time=record.end_ns)
    provider.force_flush(timeout_millis=120_000)
    elapsed = time.perf_counter() - started
    provider.shutdown()
    return {"seconds": elapsed, "sent": count}


def peak_rss_mb() -> float:
    """This process's own high-water RSS. ``ru_maxrss`` is not: Linux carries the parent's
    across fork and exec, so a worker started by a big parent would report the parent's."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # macOS: bytes


def worker(path: str, protocol: str, port: int, count: int) -> None:
    before = peak_rss_mb()
    result = (run_floe if path == "floe" else run_sdk)(protocol, port, count)
    result["peak_rss_mb"] = peak_rss_mb()
    result["import_rss_mb"] = before
    print(json.dumps(result))


def _warm_imports() -> None:
    """Import what either path uses, so "after imports" is the same baseline for both."""
    import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
    import opentelemetry.exporter.otlp.proto.http.trace_exporter
    import opentelemetry.sdk.trace.export  # noqa: F401
    import requests  # noqa: F401

    import floe_sidecar.sinks.otel.sink  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "PROTOCOL", "PORT"))
    args = parser.parse_args()
    if args.worker:
        _warm_imports()
        path, protocol, port = args.worker
        worker(path, protocol, int(port), args.spans)
        return

    from support.otlp_receivers import GrpcReceiver, HttpReceiver

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with GrpcReceiver() as grpc_receiver, HttpReceiver() as http_receiver:
        receivers = {"grpc": grpc_receiver, "http/protobuf": http_receiver}
        for _ in range(args.repeat):
            for protocol, receiver in receivers.items():
                for path in ("floe", "sdk"):
                    before = receiver.span_count()
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--spans",
                            str(args.spans),
                            "--worker",
                            path,
                            protocol,
                            str(receiver.port),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                        env={**os.environ, "PYTHONWARNINGS": "ignore"},
                    )
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    time.sleep(0.2)  # let the receiver finish decoding the last request
                    result["received"] = receiver.span_count() - before
                    results.setdefault((path, protocol), []).append(result)
                    with receiver.lock:  # keep the receiver's own memory flat
                        receiver.requests.clear()
                        receiver.headers.clear()

    def median(path: str, protocol: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(path, protocol)])

    def rate(path: str, protocol: str) -> float:
        """Spans the receiver got per second of the path's wall time (drops do not count)."""
        return statistics.median(r["received"] / r["seconds"] for r in results[(path, protocol)])

    print(f"\n{args.spans} spans, median of {args.repeat} runs; python {sys.version.split()[0]}\n")
    print("| protocol | path | delivered spans/s | delivered (worst run) | peak RSS MB |")
    print("|---|---|---:|---:|---:|")
    for protocol in ("grpc", "http/protobuf"):
        for path in ("floe", "sdk"):
            received = min(r["received"] for r in results[(path, protocol)])
            label = "floe TraceSink.deliver" if path == "floe" else "SDK BatchSpanProcessor"
            print(
                f"| {protocol} | {label} | {rate(path, protocol):,.0f} | "
                f"{received}/{args.spans} | {median(path, protocol, 'peak_rss_mb'):.1f} |"
            )
    baseline = statistics.median(r["import_rss_mb"] for rs in results.values() for r in rs)
    print(f"\n(RSS after imports, before any span: {baseline:.1f} MB)\n")
    for protocol in ("grpc", "http/protobuf"):
        speed = rate("floe", protocol) / rate("sdk", protocol)
        rss = median("floe", protocol, "peak_rss_mb") / median("sdk", protocol, "peak_rss_mb")
        print(
            f"{protocol}: floe/SDK delivered-throughput ratio {speed:.2f}, peak RSS ratio {rss:.2f}"
        )


if __name__ == "__main__":
    main()
