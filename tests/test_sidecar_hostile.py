"""Hostile and unlucky input to the sidecar (issue 11): no silent loss, no poison pill, no escape
from the spool. One regression test per finding; the property test over mixed lines is in
``test_sidecar_hostile_property.py``."""

from __future__ import annotations

import io
import os
from pathlib import Path

import anyio
import pytest
from support.data import event_id_of, event_line
from test_sidecar_engine import Collect, options, run_with, wait_until

from floe_core.events import EventError, decode_event
from floe_core.layout import SpoolLayout
from floe_core.spool import SpoolWriter, list_segments
from floe_sidecar.app import Sidecar
from floe_sidecar.engine.deadletter import read_deadletter
from floe_sidecar.replay import replay_files

pytestmark = pytest.mark.anyio

#: What msgspec (and json) cannot decode without running out of stack.
DEEP = b'{"a":' * 50000 + b"1" + b"}" * 50000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _acks(data: bytes) -> int:
    return sum(int(a.removeprefix(b"ACK ")) for a in data.splitlines() if a)


# --- finding 1: deep nesting ------------------------------------------------------------------


def test_deep_nesting_is_an_event_error() -> None:
    with pytest.raises(EventError, match="nested too deeply"):
        decode_event(DEEP)


async def test_deep_nesting_on_the_socket_loses_no_acknowledged_event(tmp_path: Path) -> None:
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    sink = Collect()
    sidecar = Sidecar(options(spool, socket_path=sock), [sink])

    async def body() -> None:
        await wait_until(sock.exists)
        async with await anyio.connect_unix(sock) as stream:
            first = b"".join(event_line(i) for i in range(10))
            await stream.send(first + DEEP + b"\n" + b"".join(event_line(i) for i in range(10, 20)))
            acked = b""
            while _acks(acked) < 21:
                acked += await stream.receive()
            await anyio.sleep(0.5)
            await stream.send(b"".join(event_line(i) for i in range(20, 30)))
            while _acks(acked) < 31:
                acked += await stream.receive()
        await wait_until(lambda: len(set(sink.ids)) == 30)

    await run_with(sidecar, body)
    assert set(sink.ids) == {event_id_of(i) for i in range(30)}
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [(r["kind"], r["length"]) for r in records] == [("bad_line", len(DEEP))]
    assert "nested too deeply" in str(records[0]["reason"])


def test_deep_nesting_in_replay_is_reported_not_a_crash(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SpoolWriter(spool) as writer:
        writer.append(event_line(0) + DEEP + b"\n" + event_line(1))
    out = io.BytesIO()
    summary = replay_files(list_segments(spool), [], out)
    assert (summary.events, summary.errors) == (2, 1)
    assert b"nested too deeply" in out.getvalue()


def test_deep_nesting_in_show_lineage_is_skipped(tmp_path: Path) -> None:
    from floe_cli.show import show_lineage

    lineage = tmp_path / "openlineage.ndjson"
    good = (
        b'{"eventType": "START", "eventTime": "2026-01-01T00:00:00Z", '
        b'"run": {"runId": "r1", "facets": {}}, "job": {"namespace": "ns", "name": "j"}, '
        b'"inputs": [], "outputs": []}\n'
    )
    lineage.write_bytes(DEEP + b"\n" + good)
    out = io.StringIO()
    show_lineage(lineage, None, out)
    assert "ns" in out.getvalue()


# --- finding 2: the dead-letter file cannot be written ----------------------------------------


async def test_an_unwritable_dead_letter_holds_the_cursor_before_the_bad_line(
    tmp_path: Path,
) -> None:
    """Disk full for the dead-letter file: the bad line and everything after it stay pending
    (never skipped); once the file can be written, they are dead-lettered and delivered."""
    spool = tmp_path / "spool"
    layout = SpoolLayout(spool)
    with SpoolWriter(spool) as writer:
        for start in (0, 5, 10):
            writer.append(b"".join(event_line(i) for i in range(start, start + 5)) + b"{bad\n")
    layout.deadletter.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.mkdir(layout.deadletter, 0o700)  # any write to the dead-letter file fails (EISDIR)
    sink = Collect(max_batch=4)
    sidecar = Sidecar(options(spool), [sink])

    async def body() -> None:
        await wait_until(lambda: sidecar.runners[0].stats.failures >= 2)
        assert set(sink.ids) <= {event_id_of(i) for i in range(5)}
        os.rmdir(layout.deadletter)
        await wait_until(lambda: len(set(sink.ids)) == 15)

    await run_with(sidecar, body)
    records = read_deadletter(layout.deadletter)
    assert [(r["kind"], r["line"]) for r in records] == [("bad_line", "{bad")] * 3
