"""The real sidecar process delivers lineage to a real HTTP backend on loopback: while the
pipeline runs (adapter -> socket -> sidecar), and in order per run through an outage (503s, then
timeouts), a crash (SIGKILL) and a restart, losing nothing. The events are those of real
materializations of the example project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.data import shop_events
from support.lineage import Receiver, assert_run_order, materialize_shop

from floe_core.events import Event, NodeFinished, decode_event, encode_event
from floe_core.spool import SpoolWriter
from floe_sidecar.engine.deadletter import read_deadletter
from floe_sidecar.sinks.openlineage import translate_event

SIDECAR = Path(sys.executable).parent / "floe-sidecar"
SINK = "python:floe_sidecar.sinks.openlineage.sink:build_openlineage_sink"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write(spool: Path, events: list[Event]) -> None:
    with SpoolWriter(spool, prefix="test") as writer:
        writer.append(b"".join(encode_event(e) for e in events))


def canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)


class Sidecar:
    def __init__(
        self, spool: Path, receiver: Receiver, cwd: Path, socket: Path | None = None
    ) -> None:
        self.spool = spool
        self.socket = socket
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(cwd),
            "OPENLINEAGE__TRANSPORT__TYPE": "http",
            "OPENLINEAGE__TRANSPORT__URL": receiver.url,
            "OPENLINEAGE__TRANSPORT__TIMEOUT": "0.5",
        }
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        socket = ["--socket", str(self.socket)] if self.socket else []
        self.process = subprocess.Popen(
            [
                str(SIDECAR),
                "--spool",
                str(self.spool),
                *socket,
                "--no-default-sinks",
                "--sink",
                SINK,
                "--retry-initial",
                "0.1",
                "--retry-max",
                "0.3",
                "--log-format",
                "text",
            ],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=open(self.cwd / "sidecar.log", "ab"),  # noqa: SIM115 - owned by the child
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def log(self) -> str:
        path = self.cwd / "sidecar.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "lineage-materialized"


def event_time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["eventTime"]).timestamp()


def test_lineage_arrives_while_the_pipeline_runs(root: Path, receiver: Receiver) -> None:
    """Adapter -> Unix socket -> sidecar -> backend, during a real materialization."""
    base = root / "realtime"
    base.mkdir(parents=True, exist_ok=True)
    sidecar = Sidecar(base / "spool", receiver, base, socket=base / "sidecar.sock")
    sidecar.start()
    try:
        wait_for(sidecar.socket.exists, "the sidecar's socket")  # type: ignore[union-attr]
        run = materialize_shop(base, "success", env={"FLOE_SOCKET": str(sidecar.socket)})
        assert run.success

        def closed() -> bool:
            return any(
                e["eventType"] == "COMPLETE" and e["job"]["name"] == "__ephemeral_asset_job__"
                for e in receiver.events()
            )

        wait_for(closed, "the Dagster run's COMPLETE")
        assert sidecar.stop() == 0
    finally:
        if sidecar.process is not None:
            sidecar.stop(signal.SIGKILL)
    got = receiver.events()
    assert_run_order(got)
    nodes = [e for e in got if e["job"]["facets"]["jobType"]["jobType"] != "JOB"]
    assert len({e["run"]["runId"] for e in nodes}) >= 24  # 3 seeds, 6 models, snapshot, 14 tests
    assert {e["eventType"] for e in nodes} == {"START", "COMPLETE"}
    # Real time: the first nodes' events reached the backend before dbt had finished.
    [dbt_done] = [
        e for e in got if e["job"]["name"] == "dbt-run-shop" and e["eventType"] != "START"
    ]
    first_node_start = min(
        r.at
        for r in receiver.received
        for e in r.events
        if e["eventType"] == "START" and e["job"]["name"].startswith("seed.")
    )
    assert first_node_start < event_time(dbt_done)


def test_outage_crash_and_restart_lose_nothing_and_keep_run_order(
    tmp_path: Path, root: Path, receiver: Receiver
) -> None:
    spool = tmp_path / ".floe" / "spool"
    first, second = materialize_shop(root, "success"), materialize_shop(root, "failing")
    assert first.events and second.events
    first, second = first.events, second.events
    expected = [item for e in first + second for item in translate_event(e)]
    half = len(first) // 2
    sidecar = Sidecar(spool, receiver, tmp_path)
    sidecar.start()
    try:
        # Healthy backend: the first half of run 1 flows through.
        write(spool, first[:half])
        delivered = [item for e in first[:half] for item in translate_event(e)]
        wait_for(lambda: len(receiver.events()) >= len(delivered), "the first half")
        assert receiver.events() == delivered

        # Outage: 503s...
        receiver.mode = "unavailable"
        write(spool, first[half:])
        wait_for(lambda: [s for _, s in receiver.requests].count(503) >= 3, "503 retries")
        # ...then a backend that accepts connections and never answers.
        receiver.hang_s = 1.0
        receiver.mode = "hang"
        wait_for(lambda: [s for _, s in receiver.requests].count(504) >= 2, "timeouts")
        assert len(receiver.events()) == len(delivered)

        # The sidecar dies mid-outage, and comes back after the backend does.
        sidecar.stop(signal.SIGKILL)
        receiver.mode = "ok"
        write(spool, second)
        sidecar.start()
        wait_for(
            lambda: {canonical(e) for e in receiver.events()} >= {canonical(e) for e in expected},
            "every event after the restart",
        )
        assert sidecar.stop() == 0
    finally:
        if sidecar.process is not None:
            sidecar.stop(signal.SIGKILL)

    got = receiver.events()
    assert {canonical(e) for e in got} == {canonical(e) for e in expected}, sidecar.log()
    assert_run_order(got)
    # Per run, the events arrive in the order the runs' states changed.
    for run_id in {e["run"]["runId"] for e in expected}:
        want = [e["eventType"] for e in expected if e["run"]["runId"] == run_id]
        seen = [e["eventType"] for e in got if e["run"]["runId"] == run_id]
        assert [s for i, s in enumerate(seen) if s not in seen[:i]] == want


def test_an_event_the_backend_refuses_goes_to_dead_letter_and_the_rest_flow(
    tmp_path: Path, receiver: Receiver
) -> None:
    def refused(e: dict[str, Any]) -> bool:
        return e["job"]["name"] == "seed.shop.raw_orders" and e["eventType"] == "COMPLETE"

    receiver.reject = refused
    spool = tmp_path / ".floe" / "spool"
    events = shop_events()
    write(spool, events)
    sidecar = Sidecar(spool, receiver, tmp_path)
    done = subprocess.run(
        [
            str(SIDECAR),
            "--spool",
            str(spool),
            "--once",
            "--timeout",
            "60",
            "--no-default-sinks",
            "--sink",
            SINK,
            "--log-format",
            "text",
        ],
        env=sidecar.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr  # delivered, but something went to dead-letter
    expected = [item for e in events for item in translate_event(e)]
    assert receiver.events() == [e for e in expected if not refused(e)]
    [record] = read_deadletter(spool / ".sidecar" / "deadletter.ndjson")
    assert record["kind"] == "rejected" and record["sink"] == "openlineage"
    assert "HTTP 400" in str(record["reason"])
    assert "invalid event: job seed.shop.raw_orders" in str(record["reason"])
    line = decode_event(str(record["line"]))
    assert isinstance(line, NodeFinished) and line.node.unique_id == "seed.shop.raw_orders"
