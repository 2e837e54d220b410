"""dbt's structured log lines -> floe events, one line at a time, as dbt writes them.

dbt (``--log-format json``) writes one JSON object per event: ``{"info": {name, level, ts,
invocation_id, msg, ...}, "data": {...}}``. These carry what the sidecar needs:

- ``MainReportVersion`` (first line): the invocation id and dbt version -> InvocationStarted
- ``LogStartLine`` / ``LogHookStartLine`` (info): a node or hook starts executing -> NodeStarted
- ``NodeFinished`` (debug): the node's final status, dbt's error text, ``adapter_response``
  (rows affected) and timings -> NodeFinished; also for nodes dbt skipped (never started).
  Hooks have no ``NodeFinished``: their ``LogHookEndLine`` (info) closes them.
- ``CommandCompleted`` (debug): the command ended -> InvocationFinished
- ``LogModelResult`` / ``LogSeedResult`` / ``LogSnapshotResult`` (info, just before a built
  node's ``NodeFinished``): with a column capture, the node's real columns and column lineage are
  described here (dagster-dbt makes the asset's materialization from this line), for the
  ``NodeFinished`` event and for Dagster's column metadata (:meth:`DbtEventBuilder.take_described`)
- ``NodeExecuting`` (debug): dbt has compiled the node and starts running it; with a column
  capture, the SQL half of its column lineage is prepared then, in a thread of its own
  (:class:`~floe_dagster.columns.LineageWorker`), so that it is done when the node's columns come.

With a log level set, every line at or above it also becomes a ``LogLine`` under its span (see
``dbt_logs.py`` for the levels, the bounds and the redaction).

``NodeExecuting``, ``NodeFinished`` and ``CommandCompleted`` are debug-level events: floe's dbt
runner writes them (and floe's column notes) to stdout beside dbt's info-level lines, or, where
dbt runs as the ``dbt`` command (or every debug line is exported), dbt's stdout goes to debug;
debug lines stay out of the Dagster log either way (see ``resource.py``).
Node details (relation, upstream, columns, owner...) come from the manifest index; timestamps are
dbt's own (naive UTC in ``node_info``, made timezone-aware here).

Pure apart from reading a node's compiled SQL file and that thread: no dagster import, no I/O to
the sidecar.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floe_core import ids
from floe_core.events import (
    MAX_LOG_MESSAGE_CHARS,
    Column,
    ColumnLineage,
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
    UnfinishedNode,
)
from floe_core.outcome import failed, node_outcome
from floe_core.redaction import Redactor
from floe_dagster.columns import ColumnCapture, LineageWorker, RunColumns
from floe_dagster.dbt_logs import LogBudget, clip, dbt_level, dbt_log_fields, level_at_least
from floe_dagster.manifest import ManifestIndex

__all__ = ["MAX_COMPILED_SQL_BYTES", "DbtEventBuilder", "dbt_time", "strip_ansi"]

# Compiled SQL is for lineage's SQL facet; a huge generated query must not push an event over
# the transport's line limit, so it is cut (and marked) beyond this size.
MAX_COMPILED_SQL_BYTES = 256 * 1024
MAX_ERROR_CHARS = 16 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
log = logging.getLogger("floe_dagster.dbt_events")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def dbt_time(value: object) -> datetime | None:
    """dbt timestamps (``2024-01-01T10:00:00.123456`` naive UTC, or with ``Z``) -> aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class DbtEventBuilder:
    """Turns one dbt invocation's JSON log lines into floe events, in order.

    ``handle(line)`` returns the events that line produces (usually none); ``finish()`` closes the
    invocation if dbt died before saying so, and ``run_finished()`` builds the step's last event.
    """

    def __init__(
        self,
        *,
        index: ManifestIndex,
        run: DagsterRun,
        project_name: str,
        environment: str,
        connection: Connection,
        attributes: Mapping[str, str] | None = None,
        command: tuple[str, ...] = (),
        target_path: Path | None = None,
        clock: Callable[[], datetime] = _now,
        capture_columns: ColumnCapture | None = None,
        log_level: str | None = None,
        redactor: Redactor | None = None,
        log_budget: LogBudget | None = None,
    ) -> None:
        self.index = index
        self.run = run
        self.project_name = project_name
        self.environment = environment
        self.connection = connection
        self.attributes = dict(attributes or {})
        self.command = command
        self.target_path = target_path
        self._clock = clock
        # Asks the warehouse for a finished node's columns (see floe_dagster.columns); without
        # it, node_finished carries no output_columns and no column lineage.
        self.capture_columns = capture_columns
        self.columns = RunColumns(index, connection.adapter_type)
        self.column_errors: list[str] = []
        # Prepares each model's column lineage while it runs in the warehouse (its compiled SQL
        # and upstream columns are known when it starts executing), so that the parser's work
        # is not between dbt's node_finished and the event; warmed up while dbt starts.
        self.lineage_worker: LineageWorker | None = None
        if capture_columns is not None:
            self.lineage_worker = LineageWorker()
            self.lineage_worker.warm_up(self.columns.dialect)
        self.invocation: Invocation | None = None
        self.invocation_started_at: datetime | None = None
        self.invocation_finished = False
        self._running: dict[str, tuple[Node, datetime]] = {}
        self._errors: list[str] = []
        # dbt's lines at or above this level become LogLine events (None: no log events).
        self.log_level = log_level
        self.redactor = redactor or Redactor()
        self.log_budget = log_budget or LogBudget()
        self._log_lines = 0
        self._handlers: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Event | None]]
        self._handlers = {
            "LogStartLine": self._on_start_line,
            "LogHookStartLine": self._on_start_line,  # on-run-start/-end hooks (operations)
            "LogHookEndLine": self._on_hook_end,
            # dbt has compiled the node (its compiled SQL is written) and starts running it.
            "NodeExecuting": self._on_executing,
            "NodeFinished": self._on_node_finished,
            "CommandCompleted": self._on_command_completed,
            # A built node's result line, just before its NodeFinished: dagster-dbt makes the
            # asset's materialization from it, so its columns are described here.
            "LogModelResult": self._on_result,
            "LogSeedResult": self._on_result,
            "LogSnapshotResult": self._on_result,
        }
        # Described at the result line, for NodeFinished; and newly described nodes, for the
        # caller's Dagster metadata (see :meth:`take_described`).
        self._described: dict[str, tuple[tuple[Column, ...], ColumnLineage | None]] = {}
        self._newly_described: list[tuple[Node, tuple[Column, ...], ColumnLineage | None]] = []

    # --- ids ----------------------------------------------------------------------------------

    @property
    def trace_id(self) -> str:
        return ids.trace_id_hex(self.run.run_id)

    def span_id(self, unique_id: str | None = None) -> str:
        """The span a log line belongs to: the node's, else the invocation's, else the run's."""
        run_id = self.run.run_id
        if self.invocation is None:
            return ids.span_id_hex(ids.run_span_id(run_id))
        invocation_id = self.invocation.invocation_id
        if unique_id is None:
            return ids.span_id_hex(ids.invocation_span_id(run_id, invocation_id))
        return ids.span_id_hex(ids.node_span_id(run_id, invocation_id, unique_id))

    # --- lines --------------------------------------------------------------------------------

    def handle(self, line: Mapping[str, Any]) -> list[Event]:
        """The events one parsed dbt log line yields (most lines yield none)."""
        info = line.get("info")
        if not isinstance(info, Mapping):
            return []
        events: list[Event] = []
        if self.invocation is None:
            started = self._start_invocation(info, line.get("data") or {})
            if started is not None:
                events.append(started)
        if info.get("level") == "error":
            message = info.get("msg")
            if isinstance(message, str) and message.strip():
                self._errors.append(self.redactor.redact(strip_ansi(message).strip()))
        handler = self._handlers.get(info.get("name", ""))
        if handler is not None and self.invocation is not None:
            event = handler(info, line.get("data") or {})
            if event is not None:
                events.append(event)
        if self.log_level is not None:
            log_line = self._log_line(info, line.get("data") or {})
            if log_line is not None:
                events.append(log_line)
        return events

    def _log_line(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> LogLine | None:
        """The line as a LogLine, if it is at or above the log level and within the budget."""
        assert self.log_level is not None
        level = dbt_level(info)
        if not level_at_least(level, self.log_level):
            return None
        message = info.get("msg")
        if not isinstance(message, str) or not message.strip():
            return None
        if not self.log_budget.allow(level):
            return None
        node_info = data.get("node_info")
        node = self._node(node_info) if isinstance(node_info, Mapping) else None
        unique_id = node.unique_id if node is not None and self.invocation is not None else None
        self._log_lines += 1
        invocation_id = self.invocation.invocation_id if self.invocation is not None else None
        text = self.redactor.redact(strip_ansi(message).strip())
        return LogLine(
            event_id=ids.event_id(
                "log", self.run.run_id, invocation_id or "", "dbt", str(self._log_lines)
            ),
            emitted_at=self._clock(),
            run=self.run,
            source="dbt",
            at=dbt_time(info.get("ts")) or self._clock(),
            level=level,
            message=clip(text, MAX_LOG_MESSAGE_CHARS),
            span_id=self.span_id(unique_id),
            name=str(info.get("name") or "") or None,
            code=str(info.get("code") or "") or None,
            invocation_id=invocation_id,
            unique_id=unique_id,
            fields=dbt_log_fields(info, data, self.redactor),
            environment=self.environment,
            attributes=self.attributes,
        )

    def dropped_log_lines(self) -> LogLine | None:
        """One ``warn`` line saying how many lines the budget left out, if it left any out."""
        budget = self.log_budget
        if self.log_level is None or not budget.dropped:
            return None
        invocation_id = self.invocation.invocation_id if self.invocation is not None else None
        return LogLine(
            event_id=ids.event_id("log", self.run.run_id, invocation_id or "", "dropped"),
            emitted_at=self._clock(),
            run=self.run,
            source="floe",
            at=self._clock(),
            level="warn",
            message=(
                f"floe: {budget.dropped} log lines below warn were not exported "
                f"(at most {budget.limit} per step)"
            ),
            span_id=self.span_id(None),
            name="floe_dagster.dbt_logs",
            invocation_id=invocation_id,
            fields={"floe.dropped_log_lines": budget.dropped},
            environment=self.environment,
            attributes=self.attributes,
        )

    def _start_invocation(
        self, info: Mapping[str, Any], data: Mapping[str, Any]
    ) -> InvocationStarted | None:
        invocation_id = info.get("invocation_id")
        if not isinstance(invocation_id, str) or not invocation_id:
            return None
        version = data.get("version") if info.get("name") == "MainReportVersion" else None
        self.invocation = Invocation(
            invocation_id=invocation_id,
            run=self.run,
            project_name=self.project_name,
            environment=self.environment,
            connection=self.connection,
            command=self.command,
            attributes=self.attributes,
            dbt_version=version.lstrip("=") if isinstance(version, str) else None,
        )
        started_at = dbt_time(info.get("ts")) or self._clock()
        self.invocation_started_at = started_at
        return InvocationStarted(
            event_id=ids.event_id("invocation_started", self.run.run_id, invocation_id),
            emitted_at=self._clock(),
            invocation=self.invocation,
            started_at=started_at,
        )

    def _node(self, node_info: Mapping[str, Any]) -> Node | None:
        """The manifest's node; a node the manifest lacks (parsed after it) from ``node_info``."""
        unique_id = node_info.get("unique_id")
        if not isinstance(unique_id, str) or not unique_id:
            return None
        resource_type = str(node_info.get("resource_type") or "")
        if node_info.get("materialized") == "ephemeral":
            return None
        node = self.index.node(unique_id)
        if node is not None:
            return None if self.index.is_ephemeral(unique_id) else node
        raw = node_info.get("node_relation") or {}
        alias = raw.get("alias") if isinstance(raw, Mapping) else None
        relation = None
        if isinstance(alias, str) and alias and resource_type != "test":
            relation = Relation(
                database=raw.get("database") or None,
                schema=raw.get("schema") or None,
                identifier=alias,
            )
        return Node(
            unique_id=unique_id,
            name=str(node_info.get("node_name") or unique_id),
            resource_type=resource_type or unique_id.split(".", 1)[0],
            materialized=node_info.get("materialized") or None,
            relation=relation,
        )

    def _on_start_line(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> Event | None:
        assert self.invocation is not None
        node_info = data.get("node_info") or {}
        node = self._node(node_info)
        if node is None or node.unique_id in self._running:
            return None
        started_at = dbt_time(node_info.get("node_started_at")) or dbt_time(info.get("ts"))
        started_at = started_at or self._clock()
        self._running[node.unique_id] = (node, started_at)
        return NodeStarted(
            event_id=ids.event_id(
                "node_started", self.run.run_id, self.invocation.invocation_id, node.unique_id
            ),
            emitted_at=self._clock(),
            invocation=self.invocation,
            node=node,
            started_at=started_at,
        )

    def _on_executing(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> Event | None:
        if self.lineage_worker is None:
            return None
        node = self._node(data.get("node_info") or {})
        if (
            node is None
            or node.unique_id not in self._running
            or node.relation is None
            or not self.columns.lineage_from_sql(node)
        ):
            return None
        try:
            wanted = self.columns.lineage_input(node, self._compiled_sql(node))
            if wanted is not None:
                self.lineage_worker.submit(node.unique_id, wanted)
        except Exception:  # ahead of time is an optimisation: describe computes it anyway
            log.debug(
                "floe: cannot prepare the column lineage of %s", node.unique_id, exc_info=True
            )
        return None

    def _on_result(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> Event | None:
        node_info = data.get("node_info") or {}
        node = self._node(node_info)
        if node is None or node.unique_id not in self._running or self.capture_columns is None:
            return None
        status = str(node_info.get("node_status") or "")
        if node_outcome(status) != "success":
            return None
        described = self._describe(node, status, self._compiled_sql(node))
        self._described[node.unique_id] = described
        if described[0]:
            self._newly_described.append((node, *described))
        return None

    def take_described(self) -> list[tuple[Node, tuple[Column, ...], ColumnLineage | None]]:
        """Nodes whose columns were described since the last call (their result line came)."""
        taken, self._newly_described = self._newly_described, []
        return taken

    def _on_node_finished(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> Event | None:
        return self._finished(info, data.get("node_info") or {}, data.get("run_result") or {})

    def _on_hook_end(self, info: Mapping[str, Any], data: Mapping[str, Any]) -> Event | None:
        # Hooks have no NodeFinished; their end line carries status and duration.
        result = {"status": data.get("status"), "execution_time": data.get("execution_time")}
        return self._finished(info, data.get("node_info") or {}, result)

    def _finished(
        self, info: Mapping[str, Any], node_info: Mapping[str, Any], result: Mapping[str, Any]
    ) -> Event | None:
        assert self.invocation is not None
        node = self._node(node_info)
        if node is None:
            return None
        status = str(result.get("status") or node_info.get("node_status") or "unknown")
        running = self._running.pop(node.unique_id, None)
        # A node dbt skipped never ran: no start time, whatever dbt's node_info says.
        started_at = running[1] if running is not None else None
        finished_at = dbt_time(node_info.get("node_finished_at")) or dbt_time(info.get("ts"))
        message = result.get("message")
        message = strip_ansi(message) if isinstance(message, str) and message else None
        error = message[:MAX_ERROR_CHARS] if message and failed(node_outcome(status)) else None
        failures = result.get("num_failures") if node.resource_type == "test" else None
        execution_time = result.get("execution_time")
        compiled_sql = self._compiled_sql(node) if running is not None else None
        described = self._described.pop(node.unique_id, None)
        if described is None or not described[0] or node_outcome(status) != "success":
            described = self._describe(node, status, compiled_sql)
        output_columns, column_lineage = described
        if self.lineage_worker is not None:
            self.lineage_worker.forget(node.unique_id)
        return NodeFinished(
            event_id=ids.event_id(
                "node_finished", self.run.run_id, self.invocation.invocation_id, node.unique_id
            ),
            emitted_at=self._clock(),
            invocation=self.invocation,
            node=node,
            started_at=started_at,
            finished_at=finished_at or self._clock(),
            status=status,
            message=message,
            error=error,
            rows_affected=_rows_affected(result.get("adapter_response")),
            failures=failures if isinstance(failures, int) else None,
            compiled_sql=compiled_sql,
            execution_time_s=(
                float(execution_time) if isinstance(execution_time, int | float) else None
            ),
            output_columns=output_columns,
            column_lineage=column_lineage,
        )

    def _describe(
        self, node: Node, status: str, compiled_sql: str | None
    ) -> tuple[tuple[Column, ...], ColumnLineage | None]:
        """The node's real columns and column lineage, when the warehouse can be asked."""
        if (
            self.capture_columns is None
            or node_outcome(status) != "success"
            or node.relation is None
        ):
            return (), None
        try:
            captured = self.capture_columns(node)
            if captured is None or not captured.output:
                return (), None
            worker = self.lineage_worker
            prepared_for = worker.prepared_for(node.unique_id) if worker is not None else None
            return self.columns.describe(node, compiled_sql, captured, prepared_for)
        except Exception as exc:  # lineage must never cost the node's event
            if not self.column_errors:
                log.warning(
                    "floe could not describe the columns of %s", node.unique_id, exc_info=True
                )
            self.column_errors.append(f"{node.unique_id}: {type(exc).__name__}: {exc}")
            return (), None

    def _on_command_completed(
        self, info: Mapping[str, Any], data: Mapping[str, Any]
    ) -> Event | None:
        finished_at = dbt_time(data.get("completed_at")) or dbt_time(info.get("ts"))
        return self._invocation_finished(
            success=bool(data.get("success")), finished_at=finished_at or self._clock()
        )

    def _invocation_finished(
        self, *, success: bool, finished_at: datetime, error: str | None = None
    ) -> InvocationFinished | None:
        if self.invocation is None or self.invocation_finished:
            return None
        self.invocation_finished = True
        if self.lineage_worker is not None:
            self.lineage_worker.close()
        if not success and error is None and self._errors:
            error = "\n".join(self._errors)[:MAX_ERROR_CHARS]
        unfinished = tuple(
            UnfinishedNode(node=node, started_at=started_at)
            for node, started_at in self._running.values()
        )
        self._running.clear()
        return InvocationFinished(
            event_id=ids.event_id(
                "invocation_finished", self.run.run_id, self.invocation.invocation_id
            ),
            emitted_at=self._clock(),
            invocation=self.invocation,
            started_at=self.invocation_started_at or finished_at,
            finished_at=finished_at,
            success=success,
            error=error if not success else None,
            unfinished=unfinished,
        )

    # --- the end ------------------------------------------------------------------------------

    def finish(self, *, success: bool, error: str | None = None) -> list[Event]:
        """Close the invocation if dbt exited without ``CommandCompleted`` (crash, kill)."""
        event = self._invocation_finished(success=success, finished_at=self._clock(), error=error)
        return [event] if event is not None else []

    def run_finished(self, *, success: bool, error: str | None = None) -> RunFinished:
        return RunFinished(
            event_id=ids.event_id("run_finished", self.run.run_id),
            emitted_at=self._clock(),
            run=self.run,
            finished_at=self._clock(),
            success=success,
            error=error[:MAX_ERROR_CHARS] if error and not success else None,
            environment=self.environment,
            attributes=self.attributes,
        )

    @property
    def errors(self) -> list[str]:
        """dbt's error-level messages so far (ANSI colours removed)."""
        return list(self._errors)

    def _compiled_sql(self, node: Node) -> str | None:
        if self.target_path is None or node.resource_type == "seed":
            return None
        path = self.index.compiled_path(node.unique_id, self.target_path)
        if path is None:
            return None
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_COMPILED_SQL_BYTES + 1)
        except OSError:
            return None
        text = data[:MAX_COMPILED_SQL_BYTES].decode("utf-8", errors="replace")
        if len(data) > MAX_COMPILED_SQL_BYTES:
            text += "\n-- [floe: compiled SQL truncated]"
        return text


def _rows_affected(response: object) -> int | None:
    if not isinstance(response, Mapping):
        return None
    rows = response.get("rows_affected")
    if isinstance(rows, int | float) and not isinstance(rows, bool) and rows >= 0:
        return int(rows)
    return None
