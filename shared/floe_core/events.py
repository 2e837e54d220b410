"""The event contract between the adapter (writer) and the sidecar (reader).

One event is one JSON object on one line (NDJSON), on the sidecar's Unix socket or in a spool
segment. Events are self-contained: the sidecar builds OpenLineage RunEvents and OTel spans from
them alone, without the dbt manifest or the Dagster instance.

Versioning: every event carries ``v`` (the schema version it was written with). Readers accept
events with ``v <= SCHEMA_VERSION`` and ignore fields they do not know (an older reader of a newer
minor addition keeps working); an event with ``v > SCHEMA_VERSION`` or an unknown ``type`` is
rejected by :func:`decode_event` with :class:`UnsupportedEvent`, which the sidecar dead-letters.
Adding an optional field is a compatible change; removing or retyping one bumps SCHEMA_VERSION.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from floe_core.errors import EventError, UnsupportedEvent

__all__ = [
    "LOG_LEVELS",
    "MAX_LOG_MESSAGE_CHARS",
    "SCHEMA_VERSION",
    "Classification",
    "Column",
    "ColumnLineage",
    "ColumnRef",
    "Connection",
    "DagsterRun",
    "Event",
    "EventError",
    "FieldLineage",
    "InputField",
    "Invocation",
    "InvocationFinished",
    "InvocationStarted",
    "LogLine",
    "Node",
    "NodeFinished",
    "NodeStarted",
    "Relation",
    "RunFinished",
    "TestTarget",
    "Transformation",
    "UnfinishedNode",
    "UnsupportedEvent",
    "decode_event",
    "encode_event",
]

SCHEMA_VERSION = 1


class Relation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A table or view in the warehouse, as dbt names it (``database.schema.identifier``)."""

    database: str | None = None
    schema: str | None = None
    identifier: str


class ColumnRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One column of one relation: where a classification or a lineage edge comes from."""

    relation: Relation
    column: str


class Classification(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A governance classification a column carries, and why it carries it.

    ``origin`` is ``declared`` (the project's dbt meta says so), ``inherited`` (the column is
    derived through a DIRECT, unmasked edge from a classified column) or ``masked`` (derived only
    through masking edges, such as a hash, from one). ``sources`` names the columns where the
    classification was declared, followed back through the run (empty when declared here).
    """

    classification: str
    origin: str  # declared | inherited | masked
    sources: tuple[ColumnRef, ...] = msgspec.field(default=(), name="from")


class Column(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    data_type: str | None = None
    description: str | None = None
    # Governance classification from dbt meta (e.g. "pii"), when the project declares one.
    classification: str | None = None
    tags: tuple[str, ...] = ()
    # Every classification the column carries, declared, inherited or masked (in node_finished's
    # output_columns; added within schema version 1).
    classifications: tuple[Classification, ...] = ()


class Transformation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How an input column shapes an output column (OpenLineage ColumnLineage 1-2-0 terms).

    ``type`` DIRECT (the value flows into the output) with ``subtype`` IDENTITY, TRANSFORMATION
    or AGGREGATION; or INDIRECT (it decides which rows or how) with JOIN, GROUP_BY, FILTER, SORT,
    WINDOW or CONDITIONAL. ``masking``: the value passes only through a hash (or a count), so the
    output does not reveal it.
    """

    type: str
    subtype: str
    masking: bool = False


class InputField(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    relation: Relation
    column: str
    transformations: tuple[Transformation, ...] = ()


class FieldLineage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One output column and the input columns it is computed from."""

    column: str
    inputs: tuple[InputField, ...] = ()


class ColumnLineage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Column-level lineage of one node's output relation, computed from its compiled SQL.

    ``columns``: per output column, its inputs. ``dataset``: INDIRECT inputs that shape every
    row (join keys, filters, group by, sort). ``errors``: what could not be resolved (a statement
    the parser cannot read, a ``*`` over a relation of unknown columns, ...); what was resolved
    is still in ``columns``.
    """

    columns: tuple[FieldLineage, ...] = ()
    dataset: tuple[InputField, ...] = ()
    errors: tuple[str, ...] = ()


class TestTarget(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a dbt data test asserts on, so lineage can attach the result to the tested dataset."""

    test_name: str  # e.g. "unique", "not_null", "relationships"
    attached_unique_id: str | None = None
    attached_relation: Relation | None = None
    column_name: str | None = None


class Node(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A dbt node as it executes: everything lineage and tracing need, taken from the manifest."""

    unique_id: str
    name: str
    resource_type: str  # model | seed | snapshot | test | source | ...
    package_name: str | None = None
    materialized: str | None = None
    relation: Relation | None = None
    # Relations this node reads (refs and sources), and the unique_ids they come from.
    upstream: tuple[Relation, ...] = ()
    upstream_ids: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    description: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    original_file_path: str | None = None
    asset_key: tuple[str, ...] = ()
    test: TestTarget | None = None


class Connection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The warehouse a dbt invocation talks to: identifying fields only, never credentials."""

    target: str  # floe compute target: duckdb | postgres | snowflake | bigquery | redshift | ...
    adapter_type: str  # dbt adapter type, e.g. "duckdb", "postgres", "spark"
    host: str | None = None
    port: int | None = None
    database: str | None = None
    schema: str | None = None
    account: str | None = None  # snowflake
    project: str | None = None  # bigquery
    path: str | None = None  # duckdb file


class DagsterRun(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    run_id: str
    job_name: str
    started_at: datetime | None = None


class Invocation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One dbt invocation inside a Dagster run; repeated in every event of that invocation.

    Carrying it in each event keeps events self-contained: any single line, replayed alone, still
    translates into a complete lineage event or span.
    """

    invocation_id: str  # dbt's invocation id
    run: DagsterRun
    project_name: str
    environment: str
    connection: Connection
    command: tuple[str, ...] = ()
    # observability.attributes from floe.yaml (tenant, team, ...): resource attributes of spans.
    attributes: dict[str, str] = {}
    dbt_version: str | None = None


class _EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    v: int = SCHEMA_VERSION  # always written, so an old line is never read as a newer version
    # Stable per logical event (derived from run, invocation, node and kind), so a re-sent or
    # replayed event is recognisable downstream.
    event_id: str
    emitted_at: datetime  # the adapter's clock when it wrote the event


class InvocationStarted(_EventBase, frozen=True, kw_only=True, tag="invocation_started"):
    invocation: Invocation
    started_at: datetime


class NodeStarted(_EventBase, frozen=True, kw_only=True, tag="node_started"):
    invocation: Invocation
    node: Node
    started_at: datetime  # dbt's own timestamp (UTC)


class NodeFinished(_EventBase, frozen=True, kw_only=True, tag="node_finished"):
    invocation: Invocation
    node: Node
    started_at: datetime | None  # dbt's own timestamps (UTC); None if dbt never started it
    finished_at: datetime
    status: str  # dbt's final node status: success, error, skipped, pass, fail, warn, ...
    message: str | None = None  # dbt's result message
    error: str | None = None  # dbt's error text on failure
    rows_affected: int | None = None
    failures: int | None = None  # failing rows of a test
    compiled_sql: str | None = None
    execution_time_s: float | None = None
    # The output relation as the warehouse has it after the node ran: every real column with its
    # type, the dbt description and its classifications (declared, inherited, masked); and the
    # column lineage from the compiled SQL. Added within schema version 1: empty when the adapter
    # could not ask the warehouse.
    output_columns: tuple[Column, ...] = ()
    column_lineage: ColumnLineage | None = None


class UnfinishedNode(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    node: Node
    started_at: datetime


class InvocationFinished(_EventBase, frozen=True, kw_only=True, tag="invocation_finished"):
    invocation: Invocation
    started_at: datetime
    finished_at: datetime
    success: bool
    error: str | None = None
    # Nodes that started but never finished (dbt crashed or was killed): closed as aborted.
    unfinished: tuple[UnfinishedNode, ...] = ()


class RunFinished(_EventBase, frozen=True, kw_only=True, tag="run_finished"):
    """The Dagster run's dbt work ended: closes the run's root span and its lineage job run.

    Written by the adapter at the end of the step that ran dbt, with the run's start time from
    the Dagster instance.
    """

    run: DagsterRun
    finished_at: datetime
    success: bool
    error: str | None = None
    # The run's environment and observability.attributes (tenant, ...), as its invocations carry
    # them: the root span gets the same resource attributes as its children. Optional (added
    # within schema version 1); readers fall back to their own compiled artifacts.
    environment: str | None = None
    attributes: dict[str, str] = {}


#: Log severities, lowest first: dbt's level names, plus ``fatal`` for a critical floe record.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error", "fatal")

LogValue = str | int | float | bool
#: A log line's message is cut (and marked) beyond this many characters.
MAX_LOG_MESSAGE_CHARS = 16 * 1024


class LogLine(_EventBase, frozen=True, kw_only=True, tag="log"):
    """One log line of a run: a line of dbt's structured log, or a record of floe's adapter.

    Written for each line at or above ``observability.log_level``; becomes an OTLP LogRecord in
    the trace of the run, under the span it belongs to (the node's, else the invocation's, else
    the run's). Self-contained like every event, but lean: the run, the ids and the resource
    attributes, not the whole invocation (a run has many more log lines than nodes). Added
    within schema version 1: an older sidecar dead-letters these lines as an unknown type, with
    the reason, and carries on (upgrade sidecars before adapters).
    """

    run: DagsterRun
    source: str  # "dbt" (dbt's own log) or "floe" (the adapter's log records)
    at: datetime  # when the line was written (dbt's ``info.ts``; the record's time)
    level: str  # one of LOG_LEVELS
    message: str  # ANSI colours removed, credentials redacted, at most MAX_LOG_MESSAGE_CHARS
    span_id: str  # 16 hex digits: the span the line belongs to (floe_core.ids)
    name: str | None = None  # dbt's event name (LogModelResult, ...) or floe's logger name
    code: str | None = None  # dbt's event code (Q012, ...)
    invocation_id: str | None = None  # dbt's invocation id, once known
    unique_id: str | None = None  # the dbt node the line is about, when it has a span
    # dbt's fields (scalars of ``data``, ``node_info``) and floe's ``extra``, flattened.
    fields: dict[str, LogValue] = {}
    # The run's environment and observability.attributes: the record's resource attributes.
    environment: str | None = None
    attributes: dict[str, str] = {}


Event = InvocationStarted | NodeStarted | NodeFinished | InvocationFinished | RunFinished | LogLine


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
_KNOWN_TYPES = frozenset(t.__struct_config__.tag for t in Event.__args__)


class _Envelope(msgspec.Struct):
    type: str | None = None
    v: int | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode_event(event: Event) -> bytes:
    """One NDJSON line, newline included."""
    return _encoder.encode(event) + b"\n"


def decode_event(line: bytes | str) -> Event:
    """Decode one line; raise :class:`EventError` (or :class:`UnsupportedEvent`) with the reason.

    Nothing else escapes, whatever the bytes: a reader that catches :class:`EventError` can
    dead-letter any hostile line (nested too deeply for the decoder's stack, too big for memory)
    instead of losing the lines read with it.
    """
    try:
        return _decode(line)
    except EventError:
        raise
    except RecursionError:
        raise EventError("undecodable line: JSON nested too deeply") from None
    except MemoryError:
        raise EventError("undecodable line: too large to decode in memory") from None
    except Exception as exc:  # a decoder bug must not become a lost batch either
        raise EventError(f"undecodable line: {type(exc).__name__}: {exc}") from exc


def _decode(line: bytes | str) -> Event:
    try:
        event = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        envelope = _peek(line)
        if envelope is not None:
            if envelope.v is not None and envelope.v > SCHEMA_VERSION:
                raise UnsupportedEvent(
                    f"event schema version {envelope.v} is newer than this reader's "
                    f"{SCHEMA_VERSION}; upgrade floe"
                ) from exc
            if envelope.type is not None and envelope.type not in _KNOWN_TYPES:
                raise UnsupportedEvent(f"unknown event type {envelope.type!r}") from exc
        raise EventError(f"invalid event: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise EventError(f"undecodable line: {exc}") from exc
    if event.v > SCHEMA_VERSION:
        raise UnsupportedEvent(
            f"event schema version {event.v} is newer than this reader's {SCHEMA_VERSION}; "
            "upgrade floe"
        )
    return event


def _peek(line: bytes | str) -> _Envelope | None:
    try:
        return _envelope_decoder.decode(line)
    except msgspec.MsgspecError:
        return None
