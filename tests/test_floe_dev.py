"""`floe dev` for real: the Dagster webserver and daemon plus the sidecar, as a user runs them.

One test walks the whole path: the webserver answers; Dagster's GraphQL API lists every dbt
model, seed and snapshot as an asset; a sidecar killed with SIGKILL is started again while the UI
stays up; a materialization launched through the API succeeds; the sidecar delivers that run's
lineage and spans to the local files (and `floe show` renders them); SIGINT stops everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 300  # dagster dev's first start on a busy 2-core machine
RUN_TIMEOUT_S = 300
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class Dagster:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.base}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.load(response)
        assert not payload.get("errors"), payload
        return payload["data"]


ASSETS = "{ assetNodes { assetKey { path } isMaterializable } }"
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def expected_assets(project: Path) -> set[str]:
    manifest = json.loads((project / "dbt" / "target" / "manifest.json").read_text())
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] in {"model", "seed", "snapshot"}
        and node["config"].get("materialized") != "ephemeral"
    }


def sidecar_of(floe_dev: psutil.Process) -> psutil.Process | None:
    for child in floe_dev.children():
        try:
            if "floe_sidecar.cli" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_floe_dev_serves_the_asset_graph_runs_it_and_delivers_events(
    example_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "floe-dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "floe_cli", "dev", "-p", str(port)],
            cwd=example_dir,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    supervisor = psutil.Process(proc.pid)
    dagster = Dagster(port)
    descendants: list[psutil.Process] = []
    try:
        wait_for(lambda: dagster.up() or proc.poll() is not None, START_TIMEOUT_S, "the webserver")
        assert proc.poll() is None, log_path.read_text()

        # The asset graph lists every dbt model, seed and snapshot.
        nodes = dagster.graphql(ASSETS)["assetNodes"]
        listed = {node["assetKey"]["path"][-1] for node in nodes if node["isMaterializable"]}
        assert expected_assets(example_dir) <= listed, listed
        (location,) = [
            e["name"] for e in dagster.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        ]

        # A sidecar crash is restarted and the UI stays up.
        first = wait_for(lambda: sidecar_of(supervisor), 30, "the sidecar")
        first.send_signal(signal.SIGKILL)
        second = wait_for(
            lambda: (s := sidecar_of(supervisor)) is not None and s.pid != first.pid and s,
            30,
            "the sidecar to be restarted",
        )
        assert dagster.up()
        assert "restarting sidecar" in log_path.read_text()

        # A materialization launched through the API succeeds.
        selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isMaterializable"]]
        launched = dagster.graphql(
            LAUNCH,
            params={
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": selection,
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        def finished() -> str | None:
            status = dagster.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"]
            return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

        assert wait_for(finished, RUN_TIMEOUT_S, "the run", step=1.0) == "SUCCESS"

        # The (restarted) sidecar delivered the run's events to the embedded default outputs.
        floe_dir = example_dir / ".floe"
        lineage = floe_dir / "lineage" / "openlineage.ndjson"
        traces = floe_dir / "traces" / "otlp-traces.jsonl"

        def delivered() -> bool:
            return (
                lineage.is_file()
                and traces.is_file()
                and f'"runId":"{run_id}"' in lineage.read_text().replace(" ", "")
                and f'"traceId":"{run_id.replace("-", "")}"' in traces.read_text()
            )

        wait_for(delivered, 60, "the run's lineage and spans")
        run_events = [
            json.loads(line)
            for line in lineage.read_text().splitlines()
            if run_id in line and json.loads(line)["run"]["runId"] == run_id
        ]
        assert [e["eventType"] for e in run_events] == ["START", "COMPLETE"]
        assert second.is_running()

        # `floe show` renders both from the files.
        for what, needle in (("lineage", "customers"), ("traces", "dbt build")):
            shown = subprocess.run(
                [sys.executable, "-m", "floe_cli", "show", what, "--run", run_id],
                cwd=example_dir,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert shown.returncode == 0, shown.stderr
            assert run_id in shown.stdout and needle in shown.stdout, shown.stdout

        # Ctrl-C stops Dagster (webserver, daemon, code server) and the sidecar.
        descendants = supervisor.children(recursive=True)
        assert len(descendants) >= 4, descendants  # dagster dev, webserver, daemon, sidecar
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text()
        wait_for(lambda: gone(descendants), 30, "every child to exit")
        assert not dagster.up()
    finally:
        if proc.poll() is None:
            descendants = descendants or supervisor.children(recursive=True)
            proc.kill()
            proc.wait()
        for process in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
