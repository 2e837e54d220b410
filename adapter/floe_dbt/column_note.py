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
    "MARKER",
    "CapturedRelation",
    "ColumnNote",
    "decode",
    "encode",
]

#: Set to ``1`` in the dbt process's environment to make it capture columns.
CAPTURE_COLUMNS_ENV = "FLOE_CAPTURE_COLUMNS"
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


_encoder = msgspec.json.Encoder()
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
