"""The event contract: round trips, versioning rules, and the ids both processes derive."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from support import data

from floe_core import events, ids
from floe_core.events import (
    SCHEMA_VERSION,
    Column,
    Connection,
    EventError,
    Invocation,
    InvocationFinished,
    Node,
    NodeFinished,
    Relation,
    UnfinishedNode,
    UnsupportedEvent,
    decode_event,
    encode_event,
)

RUN_ID = "0f7b3c0e-5d1c-4c4e-9a53-3f1d2f6b8a11"
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _invocation() -> Invocation:
    return data.invocation(
        run_id=RUN_ID,
        invocation_id="inv-1",
        job_name="__ASSET_JOB",
        run_started_at=T0,
        connection=Connection(target="duckdb", adapter_type="duckdb", path="/data/shop.duckdb"),
        attributes={"tenant": "example"},
    )


def _node() -> Node:
    return data.node(
        "model.shop.orders",
        materialized="table",
        upstream=(Relation(database="shop", schema="main", identifier="stg_orders"),),
        upstream_ids=("model.shop.stg_orders",),
        columns=(Column(name="email", data_type="varchar", classification="pii"),),
        owner="finance@example.com",
        tags=("marts",),
    )


def _finished(**changes: object) -> NodeFinished:
    fields: dict[str, object] = {
        "event_id": ids.event_id("node_finished", RUN_ID, "inv-1", "model.shop.orders"),
        "emitted_at": T0,
        "invocation": _invocation(),
        "node": _node(),
        "started_at": T0,
        "finished_at": T0,
        "status": "success",
        "rows_affected": 6,
    }
    fields.update(changes)
    return NodeFinished(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_and_microseconds() -> None:
    event = _finished()
    line = encode_event(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_event(line) == event
    assert json.loads(line)["started_at"] == "2026-01-02T03:04:05.123456Z"


def test_version_is_always_written() -> None:
    assert json.loads(encode_event(_finished()))["v"] == SCHEMA_VERSION


def test_unknown_fields_from_a_newer_minor_writer_are_ignored() -> None:
    data = json.loads(encode_event(_finished()))
    data["added_later"] = {"anything": 1}
    data["node"]["added_later_too"] = True
    assert decode_event(json.dumps(data)) == _finished()


def test_future_version_is_unsupported() -> None:
    data = json.loads(encode_event(_finished()))
    data["v"] = SCHEMA_VERSION + 1
    with pytest.raises(UnsupportedEvent, match="newer"):
        decode_event(json.dumps(data))


def test_unknown_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedEvent, match="unknown event type 'node_exploded'"):
        decode_event(b'{"type": "node_exploded", "v": 1}')


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "undecodable"),
        (b"", "undecodable"),
        (b'{"type": "node_finished", "v": 1}', "missing required field"),
        (b"[1, 2]", "invalid event"),
    ],
)
def test_bad_lines_say_why(line: bytes, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        decode_event(line)


def test_invocation_finished_lists_unfinished_nodes() -> None:
    event = InvocationFinished(
        event_id="e",
        emitted_at=T0,
        invocation=_invocation(),
        started_at=T0,
        finished_at=T0,
        success=False,
        error="killed",
        unfinished=(UnfinishedNode(node=_node(), started_at=T0),),
    )
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded, InvocationFinished)
    assert decoded.unfinished[0].node.unique_id == "model.shop.orders"


def test_trace_id_is_the_dagster_run_id() -> None:
    assert ids.trace_id_hex(RUN_ID) == uuid.UUID(RUN_ID).hex


def test_ids_are_deterministic_and_distinct() -> None:
    a = ids.node_span_id(RUN_ID, "inv-1", "model.shop.orders")
    assert a == ids.node_span_id(RUN_ID, "inv-1", "model.shop.orders")
    others = {
        ids.run_span_id(RUN_ID),
        ids.invocation_span_id(RUN_ID, "inv-1"),
        ids.node_span_id(RUN_ID, "inv-1", "model.shop.customers"),
        ids.node_span_id(RUN_ID, "inv-2", "model.shop.orders"),
    }
    assert a not in others and len(others) == 4
    assert 0 < a < 2**64
    assert len(ids.span_id_hex(a)) == 16


def test_non_uuid_run_id_still_gives_a_valid_trace_id() -> None:
    value = ids.trace_id("my-custom-run")
    assert 0 < value < 2**128
    assert value == ids.trace_id("my-custom-run")


def test_event_ids_are_stable_uuids() -> None:
    first = ids.event_id("node_started", RUN_ID, "inv-1", "model.shop.orders")
    assert first == ids.event_id("node_started", RUN_ID, "inv-1", "model.shop.orders")
    assert first != ids.event_id("node_finished", RUN_ID, "inv-1", "model.shop.orders")
    uuid.UUID(first)


NEWER = (
    f"event schema version {SCHEMA_VERSION + 1} is newer than this reader's {SCHEMA_VERSION}; "
    "upgrade floe"
)


def test_a_newer_version_says_so_first_whatever_its_body() -> None:
    """The dead-letter reason tells the operator what to do, for a newer line that this reader
    can decode, one it cannot (fields it does not know as required) and one of an unknown type."""
    valid = json.loads(encode_event(_finished()))
    valid["v"] = SCHEMA_VERSION + 1
    lines = [
        json.dumps(valid),
        json.dumps({"type": "node_finished", "v": SCHEMA_VERSION + 1}),
        json.dumps({"type": "node_exploded", "v": SCHEMA_VERSION + 1}),
    ]
    for line in lines:
        with pytest.raises(UnsupportedEvent) as caught:
            decode_event(line)
        assert str(caught.value) == NEWER


def test_an_unknown_type_without_a_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedEvent) as caught:
        decode_event(b'{"type": "node_exploded"}')
    assert str(caught.value) == "unknown event type 'node_exploded'"


DEEP = b'{"a":' * 50000 + b"1" + b"}" * 50000


def test_a_line_nested_too_deeply_says_so() -> None:
    with pytest.raises(EventError) as caught:
        decode_event(DEEP)
    assert str(caught.value) == "undecodable line: JSON nested too deeply"


class _FailingDecoder:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def decode(self, line: bytes | str) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RecursionError("maximum recursion depth"), "undecodable line: JSON nested too deeply"),
        (MemoryError(), "undecodable line: too large to decode in memory"),
        (ValueError("a decoder bug"), "undecodable line: ValueError: a decoder bug"),
    ],
)
def test_whatever_the_decoder_raises_is_an_event_error_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, reason: str
) -> None:
    """Nothing but EventError escapes: the reader dead-letters the line and keeps its batch."""
    monkeypatch.setattr(events, "_decoder", _FailingDecoder(error))
    with pytest.raises(EventError) as caught:
        decode_event(b"{}")
    assert type(caught.value) is EventError and str(caught.value) == reason
