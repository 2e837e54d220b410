"""Issue 15's acceptance, end to end: a real materialization of examples/shop with a failing
model, its dbt log lines and metrics through the real ``floe-sidecar`` to real loopback OTLP
receivers (gRPC and HTTP).

The pipeline runs with its OTLP endpoint down and no sidecar (events go to the spool); the
receiver comes up afterwards and the sidecar delivers with ``--once``, as after an outage. The
pipeline's environment holds credentials (an OTLP header, an OpenLineage API key, a password in
a URL) and a model logs them through dbt's ``log()``: none reaches a log record or the spool.

Checked against what dbt itself wrote: its own JSON log file (every line at or above ``info``
must arrive, once, under the right span) and its ``run_results.json`` (the metrics' values).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.adapter import (
    Materialization,
    add_broken_model,
    copy_example,
    env_vars,
    materialize,
    prepare,
)
from support.loopback import free_port
from support.otlp_receivers import GrpcReceiver, HttpReceiver, ReceivedLog, ReceivedSpan
from support.sidecar import run_sidecar

from floe_core import ids
from floe_core.spool import list_segments

pytestmark = pytest.mark.slow

SENTINELS = {
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer e2e-header-sentinel",
    "OPENLINEAGE_API_KEY": "e2e-apikey-sentinel",
    "OPENLINEAGE_URL": "http://floe:e2e-url-sentinel@127.0.0.1:9/",
}
SECRET_VALUES = ("e2e-header-sentinel", "e2e-apikey-sentinel", "e2e-url-sentinel")
LEAKY_SQL = (
    "{{ log('leaking ' ~ env_var('OPENLINEAGE_API_KEY') ~ ' and '"
    " ~ env_var('OTEL_EXPORTER_OTLP_HEADERS') ~ ' and ' ~ env_var('OPENLINEAGE_URL'),"
    " info=True) }}\nselect 1 as id\n"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Run:
    project: Path
    result: Materialization
    spool_copies: dict[str, Path]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = copy_example(tmp_path_factory.mktemp("logs-e2e") / "shop")
    add_broken_model(project)
    (project / "dbt" / "models" / "marts" / "leaky.sql").write_text(LEAKY_SQL)
    spool = project / ".floe" / "spool"
    dead = free_port()
    env = {
        "FLOE_SPOOL_DIR": str(spool),
        "FLOE_SOCKET": str(project / ".floe" / "sidecar.sock"),  # configured, nobody listening
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",  # down for the whole run
        **SENTINELS,
    }
    with env_vars(SENTINELS):  # dbt parse reads the env_var() calls too
        artifacts = prepare(project)
    result = materialize(artifacts, env)
    assert not result.success  # the broken model failed its step
    copies = {}
    for name in ("grpc", "http", "local"):
        copies[name] = project / ".floe" / f"spool-{name}"
        shutil.copytree(spool, copies[name])
    return Run(project, result, copies)


def _deliver(run: Run, name: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    floe = run.project / ".floe"
    result = run_sidecar(
        "--spool", run.spool_copies[name],
        "--artifacts", floe / "compiled_artifacts.json",
        "--output-dir", floe / f"out-{name}",
        "--once", "--timeout", "90",
        OTEL_SDK_DISABLED="",
        OTEL_EXPORTER_OTLP_HEADERS=SENTINELS["OTEL_EXPORTER_OTLP_HEADERS"],
        **env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-4000:]
    return result


@dataclass
class Received:
    spans: list[ReceivedSpan]
    logs: list[ReceivedLog]
    points: list[Any]
    headers: list[dict[str, str]]


@pytest.fixture(scope="module", params=["grpc", "http"])
def received(run: Run, request: pytest.FixtureRequest) -> Iterator[Received]:
    port = free_port()
    if request.param == "grpc":
        receiver: GrpcReceiver | HttpReceiver = GrpcReceiver(port)
        endpoint, protocol = f"http://127.0.0.1:{port}", "grpc"
    else:
        receiver = HttpReceiver(port)
        endpoint, protocol = receiver.endpoint, "http/protobuf"
    with receiver:
        _deliver(
            run,
            request.param,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        yield Received(receiver.spans(), receiver.logs(), receiver.points(), receiver.headers)


def _dbt_lines(run: Run) -> list[dict[str, Any]]:
    """dbt's own log file of this run's invocation (JSON, every level)."""
    path = run.result.target_dir() / "dbt.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _redacted(text: str) -> str:
    """What the adapter makes of a text holding the sentinels: each value it knows is secret,
    longest first (a header's whole value, a URL's user:password), replaced."""
    text = text.replace("Bearer e2e-header-sentinel", "[redacted]")
    for value in SECRET_VALUES:
        text = text.replace(value, "[redacted]")
    return text.replace("floe:[redacted]", "[redacted]")  # the URL's user:password


def test_every_dbt_line_at_or_above_info_arrives_once_under_its_span(
    run: Run, received: Received
) -> None:
    run_id = received.spans[0].attributes["cicd.pipeline.run.id"]
    trace = ids.trace_id_hex(run_id)
    dbt_records = [r for r in received.logs if r.attributes["floe.log.source"] == "dbt"]
    expected = Counter(
        (line["info"]["name"], _redacted(ANSI.sub("", line["info"]["msg"]).strip()))
        for line in _dbt_lines(run)
        if line["info"]["level"] in ("info", "warn", "error")
        and ANSI.sub("", line["info"]["msg"]).strip()
    )
    got = Counter((r.attributes["dbt.event.name"], r.body) for r in dbt_records)
    assert got == expected
    assert len({r.attributes["log.record.uid"] for r in received.logs}) == len(received.logs)

    node_spans = {
        s.attributes["dbt.unique_id"]: s.span_id
        for s in received.spans
        if "dbt.unique_id" in s.attributes
    }
    span_ids = {s.span_id for s in received.spans}
    invocation = next(s.span_id for s in received.spans if s.span.name == "dbt build")
    for record in received.logs:
        assert record.trace_id == trace
        assert record.span_id in span_ids  # the span exists, in the same trace
        unique_id = record.attributes.get("dbt.unique_id")
        if unique_id is not None:
            assert record.span_id == node_spans[unique_id], record.body
        elif record.attributes["floe.log.source"] == "dbt":
            assert record.span_id == invocation, record.body
        assert record.resource["tenant"] == "example"
        assert record.resource["deployment.environment.name"] == "dev"
    # The failing model's error, as an ERROR record under its span.
    errors = [
        r
        for r in dbt_records
        if r.record.severity_text == "ERROR"
        and r.attributes.get("dbt.unique_id") == "model.shop.broken"
    ]
    assert any("no_such_column" in r.body for r in errors)
    assert all(r.span_id == node_spans["model.shop.broken"] for r in errors)
    assert {r.record.severity_number for r in errors} == {17}
    # floe's own adapter records are there too, in the run's trace.
    assert any(r.attributes["floe.log.source"] == "floe" for r in received.logs)


def _latest(received: Received) -> dict[tuple[str, str | None], Any]:
    latest: dict[tuple[str, str | None], Any] = {}
    for point in received.points:
        latest[(point.metric, point.attributes.get("dbt.unique_id"))] = point
    return latest


def test_metrics_agree_with_run_results(run: Run, received: Received) -> None:
    points = _latest(received)
    results = run.result.run_results()["results"]
    assert len(results) >= 25
    for result in results:
        unique_id, status = result["unique_id"], result["status"]
        executions = points[("dbt.node.executions", unique_id)]
        assert executions.value == 1 and executions.temporality == 2 and executions.monotonic
        assert executions.attributes["dbt.status"] == status
        assert executions.attributes["floe.compute_target"] == "duckdb"
        if status == "skipped":
            assert ("dbt.node.duration", unique_id) not in points
        else:
            duration = points[("dbt.node.duration", unique_id)]
            assert duration.count == 1
            assert duration.value == pytest.approx(result["execution_time"], abs=1e-6)
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        if rows is not None:
            assert points[("dbt.node.rows_affected", unique_id)].value == rows
        if unique_id.startswith("test."):
            failing = points.get(("dbt.test.failing_rows", unique_id))
            assert (failing.value if failing else 0) == (result.get("failures") or 0)
            failed = points.get(("dbt.test.failures", unique_id))
            assert (failed is not None) == (status in ("fail", "error"))
    assert (
        points[("dbt.node.executions", "model.shop.broken")].attributes[
            "cicd.pipeline.task.run.result"
        ]
        == "error"
    )
    assert any(r.get("adapter_response", {}).get("rows_affected") for r in results)  # seeds
    runs = points[("floe.pipeline.runs", None)]
    assert runs.value == 1 and runs.attributes["cicd.pipeline.result"] == "failure"
    assert points[("cicd.pipeline.run.errors", None)].value == 1
    assert points[("cicd.pipeline.run.duration", None)].count == 1
    # The sidecar's health, when it stopped: everything delivered, nothing pending.
    health = {
        (p.metric, p.attributes.get("floe.sink")): p.value
        for p in received.points
        if p.metric.startswith("floe.sidecar.")
    }
    assert health[("floe.sidecar.pending", "otel-logs")] == 0
    assert health[("floe.sidecar.delivered", "otel-logs")] == len(received.logs)


def test_no_credential_reaches_a_log_record_or_the_spool(run: Run, received: Received) -> None:
    leaked = [r for r in received.logs if r.attributes.get("dbt.event.name") == "JinjaLogInfo"]
    assert leaked and all("[redacted]" in r.body for r in leaked)  # the model did log them
    texts = [json.dumps([r.body, r.attributes, r.resource], default=str) for r in received.logs] + [
        json.dumps([s.attributes, s.resource], default=str) for s in received.spans
    ]
    texts += [segment.read_text() for segment in list_segments(run.spool_copies["local"])]
    for text in texts:
        for value in SECRET_VALUES:
            assert value not in text
    # The OTLP header is configuration for the sidecar: it goes to the endpoint as a header.
    assert any("e2e-header-sentinel" in str(h) for h in received.headers)


def test_floe_show_logs_prints_a_nodes_lines(run: Run) -> None:
    _deliver(run, "local")  # no endpoint for the sidecar: the local OTLP/JSON files
    logs_file = run.project / ".floe" / "out-local" / "logs" / "otlp-logs.jsonl"
    assert logs_file.exists()
    out = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "logs", str(run.project),
         "--run", run.result.run_id, "--node", "broken", "--file", str(logs_file)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert f"(Dagster run {run.result.run_id})" in out
    assert "ERROR" in out and "no_such_column" in out
    assert all(" broken " in line or line.startswith(" ") for line in out.splitlines()[1:])
    whole = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "logs", str(run.project),
         "--file", str(logs_file)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Running with dbt=" in whole and "orders" in whole
