"""Traces through the real ``floe-sidecar`` process: outages lose nothing, standalone stays local.

The events are written to the spool with the adapter's own writer (``SpoolWriter``); the sidecar
runs as a subprocess with compiled artifacts on disk, exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
from support import data
from support.data import executed_node_ids, run_events
from support.loopback import free_port, wait_for
from support.otlp_receivers import GrpcReceiver, HttpReceiver

from floe_core.events import encode_event
from floe_core.spool import SpoolWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDECAR = REPO_ROOT / ".venv" / "bin" / "floe-sidecar"
EXPECTED_SPANS = len(executed_node_ids()) + 2

# Installed into the sidecar process (PYTHONPATH): records every Python-level socket operation
# through the audit hook, and every gRPC channel (gRPC's C core opens its sockets itself).
SITECUSTOMIZE = """
import json, os, socket, sys

_log = open(os.environ["FLOE_TEST_NET_LOG"], "a", buffering=1)

def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.bind"):
        family = getattr(args[0], "family", None) if event != "socket.getaddrinfo" else None
        name = socket.AddressFamily(family).name if family is not None else "unknown"
        _log.write(json.dumps({"event": event, "family": name, "args": repr(args[1:])}) + "\\n")

sys.addaudithook(_hook)

import grpc

def _wrap(name):
    original = getattr(grpc, name)
    def channel(target, *args, **kwargs):
        _log.write(json.dumps({"event": "grpc." + name, "family": "grpc", "args": target}) + "\\n")
        return original(target, *args, **kwargs)
    setattr(grpc, name, channel)

for _name in ("insecure_channel", "secure_channel"):
    _wrap(_name)
"""


def _artifacts(path: Path, *, traces: bool, endpoint: str | None = None) -> Path:
    artifacts = data.artifacts(
        environment="staging",
        traces=traces,
        lineage=False,
        otlp_endpoint=endpoint,
        attributes={"tenant": "acme"},
    )
    path.write_bytes(msgspec.json.encode(artifacts))
    return path


def _spool_run(spool: Path) -> None:
    with SpoolWriter(spool, prefix="adapter") as writer:
        writer.append(b"".join(encode_event(event) for event in run_events()))


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OTEL_", "OPENLINEAGE"))
    }
    env["OPENLINEAGE_DISABLED"] = "true"  # this file is about traces
    env.update(extra)
    return env


# The sidecar's own outputs, named explicitly (whatever the engine registers as built in): the
# trace sink under test, and OpenLineage (off here through OPENLINEAGE_DISABLED).
OUTPUTS = (
    "--no-default-sinks",
    "--sink",
    "python:floe_sidecar.sinks.otel.sink:build_trace_sink",
    "--sink",
    "python:floe_sidecar.sinks.openlineage.sink:build_openlineage_sink",
)


def _sidecar(*args: str | Path) -> list[str]:
    return [str(SIDECAR), *(str(a) for a in args), *OUTPUTS]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_receiver_down_for_the_whole_run_then_up_delivers_every_span(
    tmp_path: Path, protocol: str
) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    _spool_run(spool)
    artifacts = _artifacts(
        tmp_path / "artifacts.json", traces=True, endpoint=f"http://127.0.0.1:{port}"
    )
    env = _env(OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="1000")
    common = (
        "--spool",
        spool,
        "--artifacts",
        artifacts,
        "--retry-initial",
        "0.2",
        "--retry-max",
        "0.5",
        "--log-format",
        "text",
    )

    # The endpoint is down for the whole of a --once run: nothing is lost, all is pending.
    once = subprocess.run(
        _sidecar(*common, "--once", "--timeout", "3"),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert once.returncode == 1, once.stderr.decode()
    assert "sink otel: PENDING" in once.stderr.decode()

    # A long-running sidecar keeps retrying; the receiver comes up; every span arrives.
    process = subprocess.Popen(
        _sidecar(*common), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(1.5)  # several failed attempts against the closed port
        receiver = GrpcReceiver(port) if protocol == "grpc" else HttpReceiver(port)
        with receiver:
            wait_for(lambda: receiver.span_count() >= EXPECTED_SPANS, 30, "every span", step=0.05)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr.decode()
            spans = receiver.spans()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == EXPECTED_SPANS  # at-least-once: a duplicate would carry the same id
    nodes = {s.attributes.get("dbt.unique_id") for s in by_id.values()} - {None}
    assert nodes == executed_node_ids()
    assert {s.trace_id for s in spans} == {"5b0f4f0e8a554b0a9d432c8f3c1a7e21"}


def _net_log(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_recorded(
    tmp_path: Path, artifacts: Path, *extra: str | Path, **environ: str
) -> list[dict[str, str]]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    env = _env(PYTHONPATH=str(site), FLOE_TEST_NET_LOG=str(log), **environ)
    spool = tmp_path / "spool"
    _spool_run(spool)
    result = subprocess.run(
        _sidecar("--spool", spool, "--artifacts", artifacts, "--once", "--timeout", "30", *extra),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return _net_log(log)


def _network(records: list[dict[str, str]]) -> list[dict[str, str]]:
    """Everything that is not a local Unix socket."""
    return [r for r in records if "AF_UNIX" not in r["family"]]


@pytest.mark.slow
def test_standalone_opens_no_socket(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path / "artifacts.json", traces=False)
    out = tmp_path / "events.ndjson"
    # Nothing configured at all: no OTEL_* and no OPENLINEAGE_* variable, both outputs off.
    records = _run_recorded(tmp_path, artifacts, "--sink", f"file:{out}", OPENLINEAGE_DISABLED="")
    assert len(out.read_text().splitlines()) == len(run_events())  # the run was processed
    assert _network(records) == []
    assert not (tmp_path / "traces").exists()


@pytest.mark.slow
def test_traces_without_endpoint_stay_on_this_machine(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path / "artifacts.json", traces=True)
    records = _run_recorded(tmp_path, artifacts, "--output-dir", tmp_path)
    assert _network(records) == []
    lines = (tmp_path / "traces" / "otlp-traces.jsonl").read_text().splitlines()
    spans = [
        span
        for line in lines
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    assert len(spans) == EXPECTED_SPANS


@pytest.mark.slow
def test_the_recorder_does_see_an_export(tmp_path: Path) -> None:
    """The proof above is only worth something if the recorder sees real exports."""
    with GrpcReceiver() as grpc_receiver, HttpReceiver() as http_receiver:
        artifacts = _artifacts(
            tmp_path / "artifacts.json",
            traces=True,
            endpoint=f"http://127.0.0.1:{grpc_receiver.port}",
        )
        records = _run_recorded(tmp_path, artifacts, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
        assert any(r["event"] == "grpc.insecure_channel" for r in _network(records))
        assert grpc_receiver.span_count() == EXPECTED_SPANS
        http_dir = tmp_path / "http"
        http_dir.mkdir()
        artifacts = _artifacts(
            http_dir / "artifacts.json", traces=True, endpoint=http_receiver.endpoint
        )
        records = _run_recorded(http_dir, artifacts)
        connect = {
            "event": "socket.connect",
            "family": "AF_INET",
            "args": f"(('127.0.0.1', {http_receiver.port}),)",
        }
        assert connect in records
        assert http_receiver.span_count() == EXPECTED_SPANS
