"""Events in, span records out: pure and deterministic, and the one place attribute names live.

A Dagster run becomes one trace whose id is the run id (``floe_core.ids``), with

* a root span per Dagster run (written at ``run_finished``: run start to run end),
* a span per dbt invocation, child of the run span (written at ``invocation_finished``),
* a span per executed model, seed, snapshot and test, child of its invocation span (written at
  ``node_finished``, with dbt's own start and end times, exact to the microsecond).

Nodes an invocation started but never finished are closed at the invocation's end with an error
status, so a crashed ``dbt build`` still shows what was running. Spans are written once, when
they end, so a replayed spool produces the same spans with the same ids, never half-open ones.

Attributes follow the OpenTelemetry semantic conventions where one exists (CICD pipeline and
task spans, ``error.type``, ``db.system``/``db.system.name``, ``server.*``, ``code.file.path``);
the rest is named ``dbt.*`` (what dbt said) or ``floe.*`` (what floe adds). The tenant and
environment attributes from ``observability.attributes`` are resource attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from floe_core import ids
from floe_core.events import (
    Connection,
    DagsterRun,
    Event,
    Invocation,
    InvocationFinished,
    InvocationStarted,
    LogLine,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    RunFinished,
)
from floe_core.outcome import NodeOutcome, node_outcome

__all__ = [
    "AttributeValue",
    "SpanEvent",
    "SpanRecord",
    "SpanTranslator",
    "db_system",
    "db_system_name",
    "to_unix_nanos",
]

AttributeValue = str | bool | int | float | tuple[str, ...]
SpanKind = Literal["internal", "server"]
StatusCode = Literal["unset", "ok", "error"]

# Resource attribute for the deployment environment (semantic conventions >= 1.27).
ENVIRONMENT_ATTRIBUTE: Final = "deployment.environment.name"

# `error.type` values this translation reports (low cardinality, as the conventions ask).
ERROR_NODE: Final = "dbt_node_error"
ERROR_TEST_FAILURE: Final = "dbt_test_failure"
ERROR_NODE_ABORTED: Final = "dbt_node_aborted"
ERROR_INVOCATION: Final = "dbt_invocation_error"
ERROR_RUN: Final = "dagster_run_failure"

_STATUS_MESSAGE_MAX = 256


class SpanEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A timed event inside a span; here only the ``exception`` event carrying dbt's error."""

    name: str
    time_ns: int
    attributes: dict[str, AttributeValue] = {}


class SpanRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One finished span as plain data; the sink turns it into an SDK ``ReadableSpan``.

    Ids are lowercase hex (32 and 16 digits), as W3C trace context and logs print them.
    ``resource`` holds the complete resource attributes (service.name included).
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: SpanKind
    start_ns: int
    end_ns: int
    status: StatusCode
    status_message: str | None = None
    attributes: dict[str, AttributeValue] = {}
    events: tuple[SpanEvent, ...] = ()
    resource: dict[str, str] = {}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_unix_nanos(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (no float rounding); naive datetimes are UTC, as dbt's."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


# floe compute target -> (`db.system` (the long-standing key), `db.system.name` (its successor)).
# Well-known values where the conventions list one (postgresql, redshift / aws.redshift); the
# others have none, so they carry the product's lowercase name, as the conventions allow.
_DB_SYSTEMS: Final[dict[str, tuple[str, str]]] = {
    "duckdb": ("duckdb", "duckdb"),
    "postgres": ("postgresql", "postgresql"),
    "snowflake": ("snowflake", "snowflake"),
    "bigquery": ("bigquery", "gcp.bigquery"),
    "redshift": ("redshift", "aws.redshift"),
    "databricks": ("databricks", "databricks"),
    "spark": ("spark", "spark"),
}
_OTHER_SQL: Final = ("other_sql", "other_sql")


def _db_systems(connection: Connection) -> tuple[str, str]:
    return _DB_SYSTEMS.get(connection.target) or _DB_SYSTEMS.get(
        connection.adapter_type, _OTHER_SQL
    )


def db_system(connection: Connection) -> str:
    """The ``db.system`` value for a connection (``postgres`` target -> ``postgresql``)."""
    return _db_systems(connection)[0]


def db_system_name(connection: Connection) -> str:
    """The ``db.system.name`` value (the conventions' newer key) for a connection."""
    return _db_systems(connection)[1]


def _relation_name(relation: Relation) -> str:
    return ".".join(p for p in (relation.database, relation.schema, relation.identifier) if p)


# A finished node's outcome -> (cicd.pipeline.task.run.result, span status, error.type).
# A warning is a success; dbt.status keeps the warning.
_NODE_OUTCOMES: Final[dict[NodeOutcome, tuple[str, StatusCode, str | None]]] = {
    "success": ("success", "ok", None),
    "failure": ("failure", "error", ERROR_TEST_FAILURE),
    "error": ("error", "error", ERROR_NODE),
    "skipped": ("skip", "unset", None),  # not run because something upstream failed
}


def _node_outcome(event: NodeFinished) -> tuple[str, StatusCode, str | None]:
    return _NODE_OUTCOMES[node_outcome(event.status, event.error)]


def _status_message(text: str | None) -> str | None:
    """The first line of an error, short: span status descriptions are shown in lists."""
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:_STATUS_MESSAGE_MAX] if stripped else None


# dbt's subcommands; the invocation span is named after the one its command line holds.
_DBT_SUBCOMMANDS: Final = frozenset(
    [
        "build",
        "run",
        "test",
        "seed",
        "snapshot",
        "compile",
        "run-operation",
        "source",
        "docs",
        "parse",
        "list",
        "ls",
        "show",
        "retry",
        "clone",
        "debug",
        "deps",
        "clean",
        "init",
    ]
)


def _subcommand(command: tuple[str, ...]) -> str | None:
    """Only the subcommand: the rest of a command line (``--vars``...) may carry secrets.

    The command may start with the executable or global flags (``dbt --no-use-colors build``).
    """
    return next((arg for arg in command if arg in _DBT_SUBCOMMANDS), None)


def _node_ids(invocation: Invocation, node: Node) -> tuple[str, str, str]:
    """Trace id, span id and parent (invocation) span id of a node's span."""
    run_id, invocation_id = invocation.run.run_id, invocation.invocation_id
    return (
        ids.trace_id_hex(run_id),
        ids.span_id_hex(ids.node_span_id(run_id, invocation_id, node.unique_id)),
        ids.span_id_hex(ids.invocation_span_id(run_id, invocation_id)),
    )


def _exception(error_type: str, message: str, time_ns: int) -> SpanEvent:
    return SpanEvent(
        name="exception",
        time_ns=time_ns,
        attributes={"exception.type": error_type, "exception.message": message},
    )


class SpanTranslator:
    """Turns one event into the spans it closes (zero or more).

    ``base_resource`` is what the sidecar's configuration contributes to every span's resource
    (``service.name``, ``OTEL_RESOURCE_ATTRIBUTES``, the compiled artifacts' attributes and
    environment); an event's own ``attributes`` and ``environment`` are laid over it.
    """

    def __init__(self, base_resource: Mapping[str, str]) -> None:
        self._base_resource = dict(base_resource)

    @property
    def base_resource(self) -> Mapping[str, str]:
        return self._base_resource

    def translate(self, event: Event) -> tuple[SpanRecord, ...]:
        if isinstance(event, NodeFinished):
            return (self._node_span(event),)
        if isinstance(event, InvocationFinished):
            aborted = tuple(
                self._aborted_node_span(event, item.node, item.started_at)
                for item in event.unfinished
            )
            return (self._invocation_span(event), *aborted)
        if isinstance(event, RunFinished):
            return (self._run_span(event),)
        if isinstance(event, InvocationStarted | NodeStarted):
            return ()  # spans are written when they end
        if isinstance(event, LogLine):
            return ()  # the logs sink's
        raise TypeError(f"not a floe event: {type(event).__name__}")

    # -- resources and shared attributes ------------------------------------------------------

    def _resource(self, environment: str | None, attributes: Mapping[str, str]) -> dict[str, str]:
        resource = dict(self._base_resource)
        resource.update(attributes)
        if environment:
            resource[ENVIRONMENT_ATTRIBUTE] = environment
        return resource

    @staticmethod
    def _run_attributes(run: DagsterRun) -> dict[str, AttributeValue]:
        return {"cicd.pipeline.name": run.job_name, "cicd.pipeline.run.id": run.run_id}

    @staticmethod
    def _connection_attributes(connection: Connection) -> dict[str, AttributeValue]:
        systems = _db_systems(connection)
        attributes: dict[str, AttributeValue] = {
            "floe.compute_target": connection.target,
            "db.system": systems[0],
            "db.system.name": systems[1],
        }
        if connection.host:
            attributes["server.address"] = connection.host
        if connection.port is not None:
            attributes["server.port"] = connection.port
        return attributes

    def _invocation_attributes(self, invocation: Invocation) -> dict[str, AttributeValue]:
        attributes = self._run_attributes(invocation.run)
        attributes["dbt.invocation_id"] = invocation.invocation_id
        attributes["dbt.project_name"] = invocation.project_name
        attributes.update(self._connection_attributes(invocation.connection))
        return attributes

    def _node_attributes(self, invocation: Invocation, node: Node) -> dict[str, AttributeValue]:
        attributes = self._invocation_attributes(invocation)
        attributes["cicd.pipeline.task.name"] = node.unique_id
        attributes["cicd.pipeline.task.run.id"] = f"{invocation.invocation_id}/{node.unique_id}"
        attributes["cicd.pipeline.task.type"] = "test" if node.resource_type == "test" else "build"
        attributes["dbt.unique_id"] = node.unique_id
        attributes["dbt.node_name"] = node.name
        attributes["dbt.resource_type"] = node.resource_type
        if node.package_name:
            attributes["dbt.package_name"] = node.package_name
        if node.materialized:
            attributes["dbt.materialization"] = node.materialized
        if node.relation is not None:
            attributes["dbt.relation"] = _relation_name(node.relation)
            if node.relation.database:
                attributes["db.namespace"] = node.relation.database
        if node.asset_key:
            attributes["floe.asset_key"] = "/".join(node.asset_key)
        if node.tags:
            attributes["dbt.tags"] = tuple(node.tags)
        if node.original_file_path:
            attributes["code.file.path"] = node.original_file_path
        if node.test is not None:
            attributes["dbt.test.name"] = node.test.test_name
            if node.test.attached_unique_id:
                attributes["dbt.test.attached_unique_id"] = node.test.attached_unique_id
            if node.test.column_name:
                attributes["dbt.test.column_name"] = node.test.column_name
        return attributes

    # -- the three span shapes ----------------------------------------------------------------

    def _node_span(self, event: NodeFinished) -> SpanRecord:
        invocation, node = event.invocation, event.node
        trace_id, span_id, parent_id = _node_ids(invocation, node)
        end_ns = to_unix_nanos(event.finished_at)
        # A node dbt never started (skipped) is a zero-length span at its finish time.
        start_ns = to_unix_nanos(event.started_at) if event.started_at is not None else end_ns
        result, status, error_type = _node_outcome(event)
        attributes = self._node_attributes(invocation, node)
        attributes["cicd.pipeline.task.run.result"] = result
        attributes["dbt.status"] = event.status
        if error_type is not None:
            attributes["error.type"] = error_type
        if event.rows_affected is not None:
            attributes["dbt.rows_affected"] = event.rows_affected
        if event.failures is not None:
            attributes["dbt.failures"] = event.failures
        if event.message:
            attributes["dbt.message"] = event.message
        error_text = event.error or (event.message if status == "error" else None)
        events = (_exception(error_type, error_text, end_ns),) if error_type and error_text else ()
        return SpanRecord(
            name=node.unique_id,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            kind="internal",
            start_ns=start_ns,
            end_ns=max(end_ns, start_ns),
            status=status,
            status_message=_status_message(error_text) if status == "error" else None,
            attributes=attributes,
            events=events,
            resource=self._resource(invocation.environment, invocation.attributes),
        )

    def _aborted_node_span(
        self, event: InvocationFinished, node: Node, started_at: datetime
    ) -> SpanRecord:
        invocation = event.invocation
        trace_id, span_id, parent_id = _node_ids(invocation, node)
        start_ns = to_unix_nanos(started_at)
        end_ns = max(to_unix_nanos(event.finished_at), start_ns)
        message = "the dbt invocation ended before this node finished"
        if event.error:
            message = f"{message}: {event.error}"
        attributes = self._node_attributes(invocation, node)
        attributes["cicd.pipeline.task.run.result"] = "error"
        attributes["error.type"] = ERROR_NODE_ABORTED
        return SpanRecord(
            name=node.unique_id,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            kind="internal",
            start_ns=start_ns,
            end_ns=end_ns,
            status="error",
            status_message=_status_message(message),
            attributes=attributes,
            events=(_exception(ERROR_NODE_ABORTED, message, end_ns),),
            resource=self._resource(invocation.environment, invocation.attributes),
        )

    def _invocation_span(self, event: InvocationFinished) -> SpanRecord:
        invocation = event.invocation
        run_id = invocation.run.run_id
        command = _subcommand(invocation.command)
        name = f"dbt {command}" if command else "dbt"
        start_ns = to_unix_nanos(event.started_at)
        end_ns = max(to_unix_nanos(event.finished_at), start_ns)
        attributes = self._invocation_attributes(invocation)
        attributes["cicd.pipeline.task.name"] = name
        attributes["cicd.pipeline.task.run.id"] = invocation.invocation_id
        attributes["cicd.pipeline.task.type"] = "build"
        attributes["cicd.pipeline.task.run.result"] = "success" if event.success else "error"
        if command:
            attributes["dbt.command"] = command
        if invocation.dbt_version:
            attributes["dbt.version"] = invocation.dbt_version
        if event.unfinished:
            attributes["floe.unfinished_nodes"] = len(event.unfinished)
        events: tuple[SpanEvent, ...] = ()
        if not event.success:
            attributes["error.type"] = ERROR_INVOCATION
            if event.error:
                events = (_exception(ERROR_INVOCATION, event.error, end_ns),)
        return SpanRecord(
            name=name,
            trace_id=ids.trace_id_hex(run_id),
            span_id=ids.span_id_hex(ids.invocation_span_id(run_id, invocation.invocation_id)),
            parent_span_id=ids.span_id_hex(ids.run_span_id(run_id)),
            kind="internal",
            start_ns=start_ns,
            end_ns=end_ns,
            status="ok" if event.success else "error",
            status_message=None if event.success else _status_message(event.error or "failed"),
            attributes=attributes,
            events=events,
            resource=self._resource(invocation.environment, invocation.attributes),
        )

    def _run_span(self, event: RunFinished) -> SpanRecord:
        run = event.run
        end_ns = to_unix_nanos(event.finished_at)
        # Without the run's start time (not known to the writer) the span is zero-length.
        start_ns = to_unix_nanos(run.started_at) if run.started_at is not None else end_ns
        attributes = self._run_attributes(run)
        attributes["cicd.pipeline.action.name"] = "RUN"
        attributes["cicd.pipeline.result"] = "success" if event.success else "failure"
        events: tuple[SpanEvent, ...] = ()
        if not event.success:
            attributes["error.type"] = ERROR_RUN
            if event.error:
                events = (_exception(ERROR_RUN, event.error, end_ns),)
        return SpanRecord(
            name=f"RUN {run.job_name}",
            trace_id=ids.trace_id_hex(run.run_id),
            span_id=ids.span_id_hex(ids.run_span_id(run.run_id)),
            parent_span_id=None,
            kind="server",
            start_ns=start_ns,
            end_ns=max(end_ns, start_ns),
            status="ok" if event.success else "error",
            status_message=None if event.success else _status_message(event.error or "failed"),
            attributes=attributes,
            events=events,
            resource=self._resource(event.environment, event.attributes),
        )
