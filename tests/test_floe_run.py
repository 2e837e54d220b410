"""`floe run` for real: dbt on DuckDB through Dagster, with a real sidecar child process.

The lineage endpoint is a loopback server that accepts connections and never answers. The run must
still end in normal time with exit status 0 (the pipeline's outcome), say what is pending and
where; then `floe-sidecar --spool .floe/spool --once`, with the endpoint back, delivers it all.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.lineage import Receiver

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 420  # a whole pipeline on a busy 2-core machine; a hang would exceed it
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any floe / OpenLineage / OTel setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}
    env.update(extra)
    return env


def floe(*args: str) -> list[str]:
    return [sys.executable, "-m", "floe_cli", *args]


def sidecar(*args: str) -> list[str]:
    return [sys.executable, "-m", "floe_sidecar.cli", *args]


class HungEndpoint:
    """Accepts TCP connections on loopback and never answers: a backend stuck for good."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for conn in self.connections:
            conn.close()


def sidecar_status(project: Path) -> dict[str, dict[str, object]]:
    out = subprocess.run(
        sidecar("status", "--spool", ".floe/spool", "--json"),
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {s["name"]: s for s in json.loads(out)["sinks"]}


def test_hung_lineage_endpoint_never_holds_the_run_and_loses_nothing(example_dir: Path) -> None:
    hung = HungEndpoint()
    try:
        started = time.monotonic()
        result = subprocess.run(
            floe("run", "--wait", "120"),
            cwd=example_dir,
            env=clean_env(OPENLINEAGE_URL=hung.url),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        elapsed = time.monotonic() - started
    finally:
        hung.close()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert hung.connections, "the sidecar never tried the lineage endpoint"
    assert "floe run succeeded" in output, output

    # It gave up on the dead endpoint quickly instead of waiting out --wait 120.
    waited = re.search(r"waited ([\d.]+)s for the sidecar: (.+)", output)
    assert waited, output
    assert waited.group(2) == "endpoints failing", output
    assert float(waited.group(1)) < 30, output
    assert elapsed < RUN_TIMEOUT_S

    # It says what is pending, and where, and how to deliver it.
    lineage_line = next(line for line in output.splitlines() if line.strip().startswith("lineage:"))
    assert "PENDING" in lineage_line and hung.url in lineage_line, lineage_line
    assert "floe-sidecar --spool .floe/spool --once" in output, output
    run_id = re.search(r"Dagster run ([0-9a-f-]{36})", output)
    assert run_id, output
    pending = sidecar_status(example_dir)["openlineage"]["pending_events"]
    assert isinstance(pending, int) and pending > 0

    # Traces (embedded default, a local file) were delivered all the same.
    traces = (example_dir / ".floe" / "traces" / "otlp-traces.jsonl").read_text()
    assert run_id.group(1).replace("-", "") in traces
    assert "spans delivered" in output

    # The endpoint is back: one --once pass delivers everything that was pending.
    receiver = Receiver().start()
    try:
        once = subprocess.run(
            sidecar("--spool", ".floe/spool", "--once", "--timeout", "120"),
            cwd=example_dir,
            env=clean_env(OPENLINEAGE_URL=receiver.url),
            capture_output=True,
            text=True,
            timeout=300,
        )
        events = receiver.events()
    finally:
        receiver.stop()
    assert once.returncode == 0, once.stderr
    after = sidecar_status(example_dir)["openlineage"]
    assert after["pending_events"] == 0
    # Everything went to the receiver, once: the hung endpoint never accepted a single event.
    assert after["delivered"] == len(events) > 0
    assert len({(e["run"]["runId"], e["eventType"]) for e in events}) == len(events)
    roots = {
        (e["run"]["facets"].get("parent") or {}).get("root", {}).get("run", {}).get("runId")
        or e["run"]["runId"]
        for e in events
    }
    assert roots == {run_id.group(1)}
    run_events = [e for e in events if e["run"]["runId"] == run_id.group(1)]
    assert [e["eventType"] for e in run_events] == ["START", "COMPLETE"]
    models = {e["job"]["name"] for e in events if e["eventType"] == "COMPLETE"}
    assert any(name.endswith(".customers.build.run") for name in models), models


# --- two runs, one project (issue 11, finding 14) ------------------------------------------------


def test_a_second_run_in_the_project_is_refused_naming_the_first(example_dir: Path) -> None:
    from floe_cli.runlock import run_lock
    from floe_core.layout import ProjectPaths

    with run_lock(ProjectPaths.find(example_dir)):  # what a first `floe run` holds
        result = subprocess.run(
            floe("run"),
            cwd=example_dir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"another `floe run` (pid {os.getpid()}) is running" in result.stderr
    assert "sidecar started" not in result.stdout
    assert not (example_dir / ".floe" / "spool").exists()  # refused before touching anything


def test_a_duckdb_file_locked_by_another_process_shows_duckdb_s_message(example_dir: Path) -> None:
    import duckdb

    (example_dir / ".floe").mkdir()
    holder = duckdb.connect(str(example_dir / ".floe" / "shop.duckdb"))  # a write lock
    try:
        result = subprocess.run(
            floe("run"),
            cwd=example_dir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        holder.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERROR  dbt failed" in result.stdout
    assert "Could not set lock on file" in result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_run_and_its_sidecar(example_dir: Path) -> None:
    """A CI job cancelled, a `kill`: the run unwinds as after Ctrl-C, its sidecar is stopped (it
    was left running, re-parented to init), the run lock released, the exit status 143."""
    run = subprocess.Popen(
        floe("run"),
        cwd=example_dir,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    output = []
    sidecar_pid = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while sidecar_pid is None and time.monotonic() < deadline:
        line = run.stdout.readline()
        if not line:
            break
        output.append(line)
        started = re.search(r"sidecar started \(pid (\d+)", line)
        if started:
            sidecar_pid = int(started.group(1))
    assert sidecar_pid is not None, "".join(output)
    run.terminate()
    rest, _ = run.communicate(timeout=120)
    assert run.returncode == 143, "".join(output) + rest

    stop_by = time.monotonic() + 30
    while _alive(sidecar_pid) and time.monotonic() < stop_by:
        time.sleep(0.2)
    assert not _alive(sidecar_pid), f"the sidecar (pid {sidecar_pid}) outlived the run"
    from floe_cli.runlock import run_lock
    from floe_core.layout import ProjectPaths

    with run_lock(ProjectPaths.find(example_dir)):  # released: a next run may start
        pass


STOPPED_AT_SIDECAR_STARTED = """
import re, signal, sys, time
from floe_cli.run import RunOptions, Stopped, _run

def say(line):
    print(line, flush=True)
    if re.search(r"sidecar started \\(pid (\\d+)", line):
        raise Stopped(signal.SIGTERM)  # the signal lands the moment the line is out

try:
    _run(RunOptions(), say, time.monotonic())
except Stopped:
    print("stopped", flush=True)
"""


def test_a_stop_right_after_the_sidecar_starts_still_stops_it(example_dir: Path) -> None:
    """CI once sent SIGTERM the moment `floe run` said "sidecar started": the sidecar outlived
    the run, because the run had not yet entered the block whose ``finally`` stops it. The stop
    raised exactly there (in-process, in a child interpreter) must still stop the sidecar."""
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_AT_SIDECAR_STARTED],
        cwd=example_dir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.stdout.rstrip().endswith("stopped"), done.stdout + done.stderr
    started = re.search(r"sidecar started \(pid (\d+)", done.stdout)
    assert started, done.stdout
    sidecar_pid = int(started.group(1))

    stop_by = time.monotonic() + 30
    while _alive(sidecar_pid) and time.monotonic() < stop_by:
        time.sleep(0.2)
    assert not _alive(sidecar_pid), f"the sidecar (pid {sidecar_pid}) outlived the run"
