"""Property (issue 11): whatever mix of lines arrives, by the spool or the socket, with the
dead-letter file writable or not, nothing valid is lost and nothing bad passes unrecorded.

* every valid event is delivered at least once, or the sink's cursor is still before it;
* every bad line (deep nesting, over the size limit, invalid UTF-8, wrong types) and every event
  the sink cannot encode is dead-lettered with a reason, or the cursor is still before it;
* no sink is blocked by one event: with the dead-letter file writable, everything is dealt with;
* nothing is read through a symbolic link (a planted segment pointing at a secret).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.data import event_id_of, event_line

from floe_core.events import Event
from floe_core.spool import SpoolWriter, list_segments
from floe_core.transport import format_ack
from floe_sidecar.engine.deadletter import DeadLetter, read_deadletter
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.engine.wakeup import Wakeup
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sources.socket import SocketIntake

LIMIT = 16 * 1024
SECRET = b"root:hunter2-never-read"

#: (kind, line) for each hostile kind; valid events and poison come from integers.
HOSTILE = st.sampled_from(
    [
        ("deep", b"[" * 5000 + b"]" * 5000),
        ("huge", b'{"x": "' + b"y" * (LIMIT + 10) + b'"}'),
        ("utf8", b'{"type": "node_started", "v": 1, "event_id": "\xff\xfe"}'),
        ("types", b'{"type": "node_started", "v": "one"}'),
        ("types", b"[1, 2, 3]"),
        ("junk", b"{not json"),
    ]
)
ITEM = st.one_of(
    st.integers(0, 10_000).map(lambda i: ("valid", i)),
    st.integers(0, 10_000).map(lambda i: ("poison", i)),
    HOSTILE,
)


class Picky:
    """Collects ids; raises what an exporter raises on an item it cannot encode (poison)."""

    name = "picky"
    max_batch = 3

    def __init__(self, poison: set[str]) -> None:
        self.poison = poison
        self.ids: list[str] = []

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        if self.poison.intersection(batch):
            raise ValueError("Value out of range")
        self.ids.extend(batch)
        return ()

    def close(self) -> None:
        """Nothing held."""


def _lines(items: list[tuple[str, object]]) -> tuple[list[bytes], set[str], set[str]]:
    """The lines, the ids of the valid events, the ids of the poison ones (unique numbers)."""
    lines: list[bytes] = []
    valid: set[str] = set()
    poison: set[str] = set()
    for n, (kind, value) in enumerate(items):
        if kind in ("valid", "poison"):
            number = n * 10_001 + int(str(value))
            lines.append(event_line(number).rstrip(b"\n"))
            (valid if kind == "valid" else poison).add(event_id_of(number))
        else:
            assert isinstance(value, bytes)
            lines.append(value)
    return lines, valid, poison


async def _through_socket(root: Path, spool: Path, lines: list[bytes], dead: DeadLetter) -> None:
    """Send over a real socket intake; whatever was not acknowledged, the client spools itself
    (its half of the contract)."""
    sock = root / "s.sock"
    intake = SocketIntake(
        sock, spool, Undeliverable(dead, root / "intake.json", LIMIT), Wakeup(),
        max_line_bytes=LIMIT,
    )  # fmt: skip
    acked = 0
    async with anyio.create_task_group() as tg:
        await tg.start(intake.serve)
        stream = await anyio.connect_unix(sock)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream):
            async with stream:
                for line in lines:
                    await stream.send(line + b"\n")
                    with anyio.fail_after(10):
                        reply = await stream.receive()
                    assert reply == format_ack(1)
                    acked += 1
        tg.cancel_scope.cancel()
    if acked < len(lines):
        with SpoolWriter(spool, prefix="client") as writer:
            writer.append(b"".join(line + b"\n" for line in lines[acked:]))


def _drain(pipeline: SinkPipeline, rounds: int) -> None:
    """What the runner does: a batch whose delivery (or dead-lettering) failed is tried again,
    the same batch; a read that failed is read again."""
    batch = None
    for _ in range(rounds):
        try:
            if batch is None:
                batch = pipeline.prepare()
                if batch is None:
                    return
            pipeline.deliver(batch)
            batch = None
        except OSError:
            continue  # the dead-letter file cannot be written: try again, never skip


def _check(root: Path, items: list[tuple[str, object]], *, socket: bool, writable: bool) -> None:
    spool = root / "spool"
    spool.mkdir(mode=0o700)
    dead_path = root / "dead.ndjson"
    if not writable:
        dead_path.mkdir()  # every append fails
    dead = DeadLetter(dead_path, durable=False)
    lines, valid, poison = _lines(items)
    if socket:
        anyio.run(_through_socket, root, spool, lines, dead)
    else:
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(b"".join(line + b"\n" for line in lines))
    secret = root / "secret.txt"
    secret.write_bytes(SECRET + b"\n")
    (spool / "00000000T000000.000000000-planted.ndjson").symlink_to(secret)
    sink = Picky(poison)
    state = spool / ".sidecar"
    state.mkdir(mode=0o700, exist_ok=True)
    undeliverable = Undeliverable(dead, state / "reported.json", LIMIT)
    pipeline = SinkPipeline(sink, spool, state / "cursor.json", undeliverable, max_line_bytes=LIMIT)
    _drain(pipeline, rounds=40)
    pipeline.save_if_dirty()
    pipeline.reader.close()

    delivered = set(sink.ids)
    assert SECRET.decode() not in "".join(sink.ids)
    if writable:
        assert SECRET not in dead_path.read_bytes()
        records = read_deadletter(dead_path)
        assert all(r["reason"] for r in records)
        assert delivered == valid  # each valid event at least once; nothing blocked the sink
        kinds = [r["kind"] for r in records if r["kind"] != "note"]
        bad = [x for x in items if x[0] not in ("valid", "poison")]
        assert len(kinds) == len(bad) + len(poison)
        assert kinds.count("rejected") == len(poison)
        assert not pipeline.reader.read(10)  # caught up: the whole spool was dealt with
        return
    # The dead-letter file cannot be written: the cursor stays before the first line that
    # needs it, and everything before that is delivered.
    positions = pipeline.positions()
    for segment in list_segments(spool):
        if segment.is_symlink():
            continue
        data = segment.read_bytes()
        done = positions[segment.name].offset if segment.name in positions else 0
        for line in data[:done].splitlines():
            assert _is_valid_delivered(line, delivered), line[:80]


def _is_valid_delivered(line: bytes, delivered: set[str]) -> bool:
    from floe_core.events import EventError, decode_event

    try:
        return decode_event(line).event_id in delivered
    except EventError:
        return False


PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("writable", [True, False], ids=["dead-letter-ok", "dead-letter-full"])
@pytest.mark.parametrize("socket", [False, True], ids=["spool", "socket"])
@PROPERTY
@given(items=st.lists(ITEM, min_size=1, max_size=14))
def test_no_valid_event_is_lost_and_no_bad_line_passes_unrecorded(
    tmp_path_factory: pytest.TempPathFactory,
    items: list[tuple[str, object]],
    socket: bool,
    writable: bool,
) -> None:
    root = tmp_path_factory.mktemp("hostile")
    try:
        _check(root, items, socket=socket, writable=writable)
    finally:
        dead = root / "dead.ndjson"
        if dead.is_dir():
            os.rmdir(dead)
