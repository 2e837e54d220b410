"""The floe-marked dbt ``Note`` that carries a finished node's real columns to the parent.

The dbt process (:mod:`floe_dbt.runner`) asks dbt's own adapter for a finished relation's
columns and fires a dbt ``Note`` whose message is :data:`MARKER` followed by this payload as
JSON, so dbt's own logger serialises it into the same ``--log-format json`` stream as every other
line: it cannot interleave with them, and it arrives before the node's ``NodeFinished``. The
parent (``floe_dagster``) reads it back with :func:`decode`. Defined once, here, for both sides;
imports neither dbt nor dagster.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CAPTURE_COLUMNS_ENV",
    "CAPTURE_SOURCES_ENV",
    "MARKER",
    "CapturedRelation",
    "ColumnNote",
    "SourcePlan",
    "decode",
    "decode_plan",
    "encode",
    "encode_plan",
]

#: Set to ``1`` in the dbt process's environment to make it capture columns.
CAPTURE_COLUMNS_ENV = "FLOE_CAPTURE_COLUMNS"
#: Path of a JSON :class:`SourcePlan` for the dbt process: which sources each node reads.
CAPTURE_SOURCES_ENV = "FLOE_CAPTURE_SOURCES"

#: What the ``msg`` of a floe column note starts with (no dbt message starts like this).
MARKER = "floe:columns:"


class CapturedRelation(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A relation as dbt's node_info names it."""

    database: str | None
    schema: str | None
    identifier: str


class ColumnNote(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What the warehouse said about one finished node's relation (``error`` if it could not)."""

    unique_id: str
    relation: CapturedRelation
    # (name, type as the warehouse reports it), in the relation's order.
    columns: tuple[tuple[str, str | None], ...] = ()
    error: str | None = None
    seconds: float = 0.0  # how long asking took (for the bench and the logs)


class SourcePlan(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The sources the run's nodes read. No node of the run builds a source, so only the
    warehouse knows its columns: the dbt process describes each one once, on the connection of
    the first node that reads it, just before that node's own columns (so before its result)."""

    sources: dict[str, CapturedRelation] = msgspec.field(default_factory=dict)
    # node unique_id -> the unique_ids of the sources it reads
    reads: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()
_plan_decoder = msgspec.json.Decoder(SourcePlan)
_decoder = msgspec.json.Decoder(ColumnNote)


def encode(note: ColumnNote) -> str:
    """The ``Note`` message: the marker, then the payload as JSON."""
    return MARKER + _encoder.encode(note).decode()


def decode(message: object) -> ColumnNote | None:
    """The payload of a floe column note; None for any other message (or a malformed one)."""
    if not isinstance(message, str) or not message.startswith(MARKER):
        return None
    try:
        return _decoder.decode(message[len(MARKER) :])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def encode_plan(plan: SourcePlan) -> bytes:
    return _encoder.encode(plan)


def decode_plan(data: bytes) -> SourcePlan:
    """The plan the parent wrote; ``msgspec`` errors for anything else (the caller logs them)."""
    return _plan_decoder.decode(data)
