"""A sink runner that crashes *while* its sink is delivering: the abandoned ``deliver`` still
finishes (and commits), the restarted runner never delivers beside it, nothing is lost, and at
most the one batch in flight is delivered twice."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from support.sidecar import write_spool

from floe_core.events import Event
from floe_core.spool import list_segments
from floe_sidecar.app import Sidecar
from floe_sidecar.config import EngineOptions
from floe_sidecar.engine.cursor import load_cursor
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.engine.runner import SinkRunner
from floe_sidecar.sinks.base import Rejection

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedSink:
    """Records what it was given; its first ``deliver`` waits for ``gate``."""

    def __init__(self, name: str, max_batch: int = 10) -> None:
        self.name = name
        self.max_batch = max_batch
        self.ids: list[str] = []
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.first_call_entered = threading.Event()
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if first:
            self.first_call_entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        self.ids.extend(batch)
        with self._lock:
            self.in_flight -= 1
        return ()

    def close(self) -> None:
        pass


async def test_a_runner_crashing_during_delivery_loses_nothing_and_repeats_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    ids = write_spool(spool, 25)
    [segment] = list_segments(spool)
    written = segment.stat().st_size
    buggy, other = GatedSink("buggy"), GatedSink("other", max_batch=50)
    other.gate.set()
    real_watch = SinkRunner._watch_stalls
    real_rewind = SinkPipeline.rewind
    crashed: list[str] = []

    async def watch_then_crash(self: SinkRunner) -> None:
        """A bug in the runner's own code, raised while its sink's deliver is running."""
        if self.name == "buggy" and not crashed:
            await anyio.to_thread.run_sync(buggy.first_call_entered.wait)
            crashed.append(self.name)
            raise RuntimeError("a bug in the runner, mid-delivery")
        await real_watch(self)

    def rewind_then_release(self: SinkPipeline) -> None:
        real_rewind(self)  # the restart reads from the cursor saved before the batch...
        if self.name == "buggy":
            buggy.gate.set()  # ...and only then does the abandoned deliver return and commit

    monkeypatch.setattr(SinkRunner, "_watch_stalls", watch_then_crash)
    monkeypatch.setattr(SinkPipeline, "rewind", rewind_then_release)
    options = EngineOptions(
        spool_dir=spool,
        once=True,
        retry=RetryPolicy(initial_delay=0.01, max_delay=0.05),
        rescan_interval=0.2,
        status_interval=0.2,
        grace=2.0,
    )
    sidecar = Sidecar(options, [buggy, other])
    with anyio.fail_after(30):
        report = await sidecar.run()

    assert crashed == ["buggy"]
    assert set(buggy.ids) == ids  # nothing lost
    assert len(buggy.ids) <= len(ids) + buggy.max_batch  # the batch in flight, at most, twice
    assert buggy.most_in_flight == 1  # the restarted runner never delivered beside the old call
    assert sorted(other.ids) == sorted(ids)  # the other sink noticed nothing
    assert not report.pending
    by_name = {r.name: r for r in sidecar.runners}
    assert "runner crashed: RuntimeError" in (by_name["buggy"].stats.last_error or "")
    cursor = load_cursor(by_name["buggy"].pipeline.cursor_path, "buggy")
    [position] = cursor.positions.values()
    assert position.offset == written  # the saved cursor is at the end...
    assert list_segments(spool) == []  # ...so the segment was retired
