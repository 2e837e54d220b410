"""Logs and metrics through the real ``floe-sidecar`` process when the receiver is away: down for
the whole run, the sidecar killed (SIGKILL) twice while it waits, the receiver back, the sidecar
killed once more in the middle of delivering. Every log record and every data point arrives;
log records twice at most one batch per restart; the metrics' cumulative totals exactly what the
events add up to, however often a batch was exported.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from support import data
from support.data import run_events, run_log_lines
from support.loopback import free_port, wait_for
from support.otlp_receivers import HttpReceiver
from support.sidecar import SidecarProcess

from floe_core.events import Event, LogLine, encode_event
from floe_core.spool import SpoolWriter
from floe_sidecar.sinks.otel.metrics import MetricTranslator, Totals

pytestmark = pytest.mark.slow

BATCH = 20
RUNS = [f"2b0f4f0e-8a55-4b0a-9d43-2c8f3c1a7e{n:02d}" for n in range(6)]


def _spool(spool: Path, runs: list[str]) -> tuple[set[str], list[Event]]:
    events: list[Event] = []
    for run_id in runs:
        events += run_events(run_id=run_id)
        events += run_log_lines(4, run_id=run_id)
    with SpoolWriter(spool, prefix="adapter") as writer:
        for first in range(0, len(events), 50):
            writer.append(b"".join(encode_event(e) for e in events[first : first + 50]))
    uids = {e.event_id for e in events if isinstance(e, LogLine)}
    return uids, events


def test_receiver_away_then_back_with_restarts_loses_nothing(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    uids, events = _spool(spool, RUNS[:-1])
    artifacts = tmp_path / "artifacts.json"
    artifacts.write_bytes(
        msgspec.json.encode(
            data.artifacts(environment="staging", traces=False, logs=True, metrics=True)
        )
    )
    port = free_port()
    args = (
        "--spool", spool, "--artifacts", artifacts, "--output-dir", tmp_path,
        "--retry-initial", "0.05", "--retry-max", "0.2",
    )  # fmt: skip
    env = {
        "OTEL_SDK_DISABLED": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": str(BATCH),
    }
    restarts = 0
    for _ in range(2):  # the receiver is down: the sidecar retries, and is killed
        sidecar = SidecarProcess(tmp_path / "logs", *args, **env)
        time.sleep(1.5)
        assert sidecar.alive(), sidecar.stderr()[-2000:]
        sidecar.kill()
        restarts += 1
    receiver = HttpReceiver(port)
    receiver.delay_s = 0.1  # a slow backend: the next kill lands in the middle of delivery
    with receiver:
        sidecar = SidecarProcess(tmp_path / "logs", *args, **env)
        wait_for(lambda: receiver.log_count() >= 3 * BATCH, 60, "some log records", step=0.02)
        sidecar.kill()
        restarts += 1
        assert receiver.log_count() < len(uids)  # killed mid-way
        sidecar = SidecarProcess(tmp_path / "logs", *args, **env)
        wait_for(
            lambda: {r.attributes["log.record.uid"] for r in receiver.logs()} >= uids,
            120,
            "every log record",
            step=0.05,
        )
        # One more run after the restarts: its metrics add to the totals the cursors kept.
        more_uids, more = _spool(spool, RUNS[-1:])
        uids |= more_uids
        events += more
        wait_for(
            lambda: {r.attributes["log.record.uid"] for r in receiver.logs()} >= uids,
            120,
            "the last run's log records",
            step=0.05,
        )
        wait_for(
            lambda: (
                len(RUNS)
                in {p.value for p in receiver.points() if p.metric == "floe.pipeline.runs"}
            ),
            60,
            "the metrics of every run",
            step=0.05,
        )
        sidecar.proc.send_signal(signal.SIGTERM)
        assert sidecar.proc.wait(30) == 0, sidecar.stderr()[-2000:]
        records = receiver.logs()
        points = receiver.points()
    received = Counter(r.attributes["log.record.uid"] for r in records)
    assert set(received) == uids  # every record, nothing else
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= BATCH * restarts, duplicates  # at most one batch per restart
    # Metrics: the latest point of each series is the events' total, counted once.
    translator = MetricTranslator({"service.name": "floe"})
    expected, _ = Totals().add([s for e in events for s in translator.translate(e)])
    latest: dict[tuple[str, tuple[tuple[str, object], ...]], tuple[int, float, int]] = {}
    for point in points:
        if point.metric.startswith("floe.sidecar."):
            continue
        key = (point.metric, tuple(sorted(point.attributes.items())))
        if key not in latest or point.time_ns >= latest[key][0]:
            latest[key] = (point.time_ns, point.value, point.count)
    want = {(s.metric, s.attributes): (float(s.total), s.count) for s in expected.series.values()}
    got = {key: (float(value), count) for key, (_, value, count) in latest.items()}
    assert set(got) == set(want)
    for key, (total, count) in want.items():
        assert got[key][0] == pytest.approx(total), key  # a counter's sum, a histogram's sum
        if key[0].endswith(".duration"):  # histograms: how many measurements
            assert got[key][1] == count, key
