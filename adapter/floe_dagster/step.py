"""The body of the dbt assets step: run dbt, yield Dagster events, emit floe events as they happen.

Per dbt log line, in the thread that reads dbt's stdout: the line goes to the
:class:`DbtEventBuilder` (floe events, written at once by the emitter); then, in the step's
thread, to dagster-dbt (asset materializations and check results) and to the Dagster log. At the
end of the step: the invocation is closed if dbt never closed it, ``RunFinished`` is written by
the run's last dbt step (see :func:`_close_run`), the emitter waits briefly for the sidecar's
acks, and what happened to the events (acknowledged, spooled, dropped) goes to the Dagster log and
to run tags ``floe/events_*``.

Nothing here may fail the step on behalf of observability: event building and emission errors are
logged once and counted, never raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Output

from floe_core import ids
from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Column, ColumnLineage, DagsterRun, Node, NodeFinished, NodeStarted
from floe_core.layout import ProjectPaths
from floe_core.outcome import node_outcome
from floe_core.redaction import Redactor
from floe_dagster.column_metadata import column_metadata
from floe_dagster.column_notes import NotedColumns, source_plan
from floe_dagster.compat import asset_events, warn_public_path
from floe_dagster.dbt_events import DbtEventBuilder, strip_ansi
from floe_dagster.dbt_logs import LogBudget, LogRecordForwarder, export_level
from floe_dagster.emitter import EmitStats, EventSink, emitter_from_env, spool_dir_from_env
from floe_dagster.logs import (
    LOGGER_NAME,
    TraceContextFilter,
    configure_logging,
    trace_scope,
    with_trace,
)
from floe_dagster.manifest import ManifestIndex
from floe_dagster.resource import DbtRun, FloeDbtResource, dbt_arguments
from floe_dbt.connection import connection_identity

__all__ = [
    "DBT_TRACE_ENV",
    "EVENTS_DROPPED_TAG",
    "EVENTS_EMITTED_TAG",
    "EVENTS_SPOOLED_TAG",
    "STEP_DONE_TAG_PREFIX",
    "DbtSteps",
    "StepPlan",
    "events_dropped",
    "events_enabled",
    "run_dbt_step",
]

log = logging.getLogger("floe_dagster.step")

DBT_TRACE_ENV = "DBT_ENV_CUSTOM_ENV_FLOE_TRACE_ID"  # dbt puts it in `info.extra` of every line
DBT_SPAN_ENV = "DBT_ENV_CUSTOM_ENV_FLOE_SPAN_ID"
EVENTS_EMITTED_TAG = "floe/events_emitted"
EVENTS_SPOOLED_TAG = "floe/events_spooled"
EVENTS_DROPPED_TAG = "floe/events_dropped"
# Per dbt step (``floe/events_dropped.<op>``): a run of several steps sums them (the tags above
# hold the last step's counts only).
EVENTS_DROPPED_STEP_PREFIX = EVENTS_DROPPED_TAG + "."
EVENTS_DROP_REASON_TAG = "floe/events_drop_reason"
# Run tag per finished dbt step (``floe/dbt_step.<op>``: success | failure): several dbt steps of
# one run find out from them which of them ends the run.
STEP_DONE_TAG_PREFIX = "floe/dbt_step."
_FAILURE_CHARS = 2000  # of dbt's error text, in the Dagster log when the step fails
_STEPS_LOCK = ".dbt-steps.lock"  # in the spool directory (hidden files are not segments)


def events_enabled(artifacts: CompiledArtifacts) -> bool:
    """Standalone mode (neither lineage nor traces): no events, no socket, no spool."""
    return artifacts.observability.events


@dataclass
class DbtSteps:
    """floe's dbt steps in one set of definitions (one per dbt project), and which of them run
    after which (a project whose sources are another project's models); filled once all are
    built."""

    downstream: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.downstream)


@dataclass(frozen=True)
class StepPlan:
    """What the step needs, prepared once when the definitions load."""

    artifacts: CompiledArtifacts
    index: ManifestIndex
    dbt_args: tuple[str, ...] = ("build",)
    op_name: str = ""
    steps: DbtSteps | None = None  # None: the only dbt step there is

    @property
    def default_spool_dir(self) -> Path:
        """``.floe/spool`` next to the floe.yaml the artifacts were compiled from."""
        return ProjectPaths(Path(self.artifacts.source_path)).spool


class _Observer:
    """Turns dbt lines into floe events and writes them; swallows its own failures."""

    def __init__(
        self,
        context: AssetExecutionContext,
        builder: DbtEventBuilder,
        emitter: EventSink,
        forwarder: LogRecordForwarder | None = None,
        notes: NotedColumns | None = None,
    ) -> None:
        self.context = context
        self.builder = builder
        self.emitter = emitter
        # floe's own log records of this step, as log events (None: logs are off).
        self.forwarder = forwarder
        # The dbt process's column notes (the builder's capture_columns reads them).
        self.notes = notes
        self.internal_error: str | None = None
        # Messages for the Dagster log, written by the step's thread (see drain_dagster_log):
        # on_line runs in the thread that reads dbt's output.
        self.dagster_log: deque[tuple[str, str]] = deque()
        # Columns and column lineage of finished nodes, by unique_id, for their materializations
        # (filled when the builder can ask the warehouse: see floe_dagster.columns). Made into
        # Dagster metadata by the step's thread (:meth:`column_metadata`), not the reader's:
        # building Dagster's records is no work to do before the node's event goes out.
        self.described: dict[str, tuple[Node, tuple[Column, ...], ColumnLineage | None]] = {}

    def drain_dagster_log(self) -> None:
        while self.dagster_log:
            level, message = self.dagster_log.popleft()
            getattr(self.context.log, level)(message)

    def on_line(self, line: Mapping[str, Any]) -> None:
        try:
            if self.notes is not None and self.notes.take(line):
                return
            for event in self.builder.handle(line):
                self.emitter.emit(event)
                if isinstance(event, NodeFinished | NodeStarted):
                    self._log_node(event)
            # Described at the node's result line, before dagster-dbt makes its materialization.
            for node, columns, lineage in self.builder.take_described():
                self.described[node.unique_id] = (node, columns, lineage)
            self._forward_records()
        except Exception as exc:  # a floe bug must not stop dbt
            self._internal(exc)

    def column_metadata(self, unique_id: str) -> dict[str, Any]:
        """Dagster's column schema and lineage metadata of a described node (taken once)."""
        described = self.described.pop(unique_id, None)
        if described is None:
            return {}
        node, columns, lineage = described
        try:
            return column_metadata(columns, lineage, self._asset_key_of(node))
        except Exception as exc:  # a floe bug must not cost the materialization
            self._internal(exc)
            return {}

    def _forward_records(self) -> None:
        """floe's log records queued since the last line, written by the emitter's thread."""
        if self.forwarder is not None:
            for record in self.forwarder.drain(limit=64):
                self.emitter.emit(record)

    def _asset_key_of(self, node: Node) -> Any:
        keys: dict[Any, AssetKey] = {}
        for relation, unique_id in zip(node.upstream, node.upstream_ids, strict=False):
            upstream = self.builder.index.node(unique_id)
            if upstream is not None and upstream.asset_key:
                keys[relation] = AssetKey(list(upstream.asset_key))
        return keys.get

    def _log_node(self, event: NodeStarted | NodeFinished) -> None:
        unique_id = event.node.unique_id
        span = self.builder.span_id(unique_id)
        if isinstance(event, NodeFinished) and event.error:
            self.dagster_log.append(
                (
                    "error",
                    with_trace(
                        f"dbt {event.node.resource_type} {unique_id} {event.status}: {event.error}",
                        self.builder.trace_id,
                        span,
                    ),
                )
            )
        elif isinstance(event, NodeFinished) and node_outcome(event.status) == "skipped":
            self.dagster_log.append(
                (
                    "warning",
                    with_trace(
                        f"dbt {event.node.resource_type} {unique_id} skipped "
                        "(an upstream node failed)",
                        self.builder.trace_id,
                        span,
                    ),
                )
            )
        if log.isEnabledFor(logging.DEBUG):
            with trace_scope(self.builder.trace_id, span):
                status = event.status if isinstance(event, NodeFinished) else "started"
                log.debug("dbt node %s %s", unique_id, status, extra={"unique_id": unique_id})

    def _internal(self, exc: Exception) -> None:
        if self.internal_error is None:
            self.internal_error = f"{type(exc).__name__}: {exc}"
            log.warning("floe event building failed; dbt keeps running", exc_info=True)

    def finish(
        self, *, success: bool, error: str | None, run_outcome: tuple[bool, str | None] | None
    ) -> EmitStats:
        """Close the invocation and, when this step ends the run, the run (``run_outcome``)."""
        try:
            for event in self.builder.finish(success=success, error=error):
                self.emitter.emit(event)
            if self.forwarder is not None:
                logging.getLogger(LOGGER_NAME).removeHandler(self.forwarder)
                for record in self.forwarder.drain():
                    self.emitter.emit(record)
            dropped = self.builder.dropped_log_lines()
            if dropped is not None:
                self.emitter.emit(dropped)
            if run_outcome is not None:
                run_success, run_error = run_outcome
                self.emitter.emit(self.builder.run_finished(success=run_success, error=run_error))
        except Exception as exc:
            self._internal(exc)
        return self.emitter.close()


def _run_started_at(context: AssetExecutionContext) -> datetime | None:
    try:
        record = context.instance.get_run_record_by_id(context.run.run_id)
    except Exception:
        return None
    if record is None or record.start_time is None:
        return None
    return datetime.fromtimestamp(record.start_time, UTC)


def _observer(context: AssetExecutionContext, plan: StepPlan, run_id: str) -> _Observer | None:
    """The step's event builder and emitter; None (events off for this step) if even setting
    them up fails: observability never stops dbt."""
    artifacts = plan.artifacts
    forwarder = None
    try:
        run = DagsterRun(
            run_id=run_id, job_name=context.job_name, started_at=_run_started_at(context)
        )
        log_level = export_level(artifacts.observability, os.environ)
        redactor = Redactor.from_environment(os.environ, artifacts.compute.secret_env_vars)
        budget = LogBudget()
        if log_level is not None:
            # Attached before the emitter exists, so what setting it up logs is exported too.
            forwarder = LogRecordForwarder(
                run=run,
                minimum=log_level,
                redactor=redactor,
                budget=budget,
                environment=artifacts.environment,
                attributes=artifacts.observability.attributes,
            )
            forwarder.addFilter(TraceContextFilter())
            logging.getLogger(LOGGER_NAME).addHandler(forwarder)
        notes = NotedColumns()
        builder = DbtEventBuilder(
            index=plan.index,
            run=run,
            project_name=plan.index.project_name or artifacts.name,
            environment=artifacts.environment,
            connection=connection_identity(artifacts, os.environ),
            attributes=artifacts.observability.attributes,
            command=plan.dbt_args,
            log_level=log_level,
            redactor=redactor,
            log_budget=budget,
            capture_columns=notes,
        )
        emitter = emitter_from_env(os.environ, default_spool_dir=plan.default_spool_dir)
    except Exception as exc:
        if forwarder is not None:
            logging.getLogger(LOGGER_NAME).removeHandler(forwarder)
        log.warning("floe events are off for this step: %s", exc, exc_info=True)
        context.log.warning(f"floe: events are off for this step: {exc}")
        return None
    return _Observer(context, builder, emitter, forwarder, notes)


def run_dbt_step(
    context: AssetExecutionContext, dbt: FloeDbtResource, plan: StepPlan
) -> Iterator[Any]:
    """Run dbt for the selected assets; yield dagster-dbt's events; emit floe's."""
    configure_logging()
    run_id = context.run.run_id
    trace_id = ids.trace_id_hex(run_id)
    run_span = ids.span_id_hex(ids.run_span_id(run_id))
    enabled = events_enabled(plan.artifacts)
    observer: _Observer | None = None
    with trace_scope(trace_id, run_span):
        if enabled:
            observer = _observer(context, plan, run_id)
            # A full garbage collection of everything Dagster and the manifest hold takes 100+ ms
            # and stops every thread, the one reading dbt's output included: events would be late
            # by that much. Objects alive now are frozen (never scanned again); new ones are not.
            gc.freeze()
        # Said here, not by the resource, so the warning carries the trace like floe's others.
        warn_public_path(
            lambda message: context.log.warning(with_trace(message, trace_id, run_span))
        )
        invocation = dbt.start(
            plan.dbt_args,
            context=context,
            env={DBT_TRACE_ENV: trace_id, DBT_SPAN_ENV: run_span},
            on_raw_line=observer.on_line if observer else None,
            debug_lines=observer is not None,
            # Exporting dbt's debug lines as logs needs every one of them, not the relayed few.
            every_debug_line=observer is not None and observer.builder.log_level == "debug",
            capture_columns=observer is not None,
            source_plan=source_plan(plan.index) if observer is not None else None,
        )
        if observer is not None:
            observer.builder.target_path = invocation.target_path
            args = invocation.process.args
            if isinstance(args, list | tuple):  # dbt's own arguments, selection included
                observer.builder.command = dbt_arguments(args)
        context.log.info(
            with_trace(
                f"floe: dbt {' '.join(plan.dbt_args)} started "
                f"({'events on' if enabled else 'standalone: no events'})",
                trace_id,
                run_span,
            )
        )
        log.info("dbt started", extra={"run_id": run_id, "events": enabled})
        success, error = False, None
        try:
            yield from _dagster_events(context, invocation, observer)
            success = True
        except BaseException as exc:
            error = strip_ansi(str(exc)) or type(exc).__name__
            raise
        finally:
            if observer is not None:
                observer.drain_dagster_log()
                if not success and observer.builder.errors:
                    error = "\n".join(observer.builder.errors)
                    # dagster-dbt's exception only says "the dbt CLI process failed": show
                    # dbt's own words (a DuckDB lock held by another process, a bad profile).
                    context.log.error(
                        with_trace(f"dbt failed: {error[:_FAILURE_CHARS]}", trace_id, run_span)
                    )
                stats = observer.finish(
                    success=success,
                    error=error,
                    run_outcome=_close_run(context, plan, success, error),
                )
                _report(context, stats, trace_id, run_span, observer.internal_error)


def _close_run(
    context: AssetExecutionContext, plan: StepPlan, success: bool, error: str | None
) -> tuple[bool, str | None] | None:
    """The run's outcome if this is the run's last dbt step to end, else None.

    The run's root span and lineage run close exactly once, whatever the executor: each dbt step
    records its end in a run tag, then looks at which of the run's dbt steps have not ended.
    Steps that come after a failed one are skipped by Dagster and never run, so they are not
    waited for. The tag is written and read under a lock in the spool directory, so two steps
    ending at once on one machine cannot both (or neither) close the run.
    """
    steps = plan.steps
    if steps is None or len(steps.names) < 2:
        return success, error
    try:
        planned = _planned_steps(context, steps.names)
        run_id = context.run.run_id
        with _steps_lock(spool_dir_from_env(os.environ, plan.default_spool_dir)):
            context.instance.add_run_tags(
                run_id, {STEP_DONE_TAG_PREFIX + plan.op_name: "success" if success else "failure"}
            )
            run = context.instance.get_run_by_id(run_id)
            tags = dict(run.tags) if run is not None else {}
    except Exception:
        log.warning(
            "could not tell whether other dbt steps are running; closing the run here",
            exc_info=True,
        )
        return success, error
    ended = {
        key[len(STEP_DONE_TAG_PREFIX) :]: value
        for key, value in tags.items()
        if key.startswith(STEP_DONE_TAG_PREFIX)
    }
    failed = [name for name, outcome in ended.items() if outcome != "success"]
    never_run = {after for name in failed for after in steps.downstream.get(name, ())}
    if planned - set(ended) - never_run:
        return None
    if not failed:
        return True, None
    others = [name for name in sorted(failed) if name != plan.op_name]
    parts = ([error] if not success and error else []) + [f"dbt step {n} failed" for n in others]
    return False, "\n".join(parts) or "failed"


def _planned_steps(context: AssetExecutionContext, names: frozenset[str]) -> set[str]:
    """Which of floe's dbt steps this run executes."""
    planned = {node.name for node in context.job_def.nodes} & names
    selected = context.run.step_keys_to_execute
    if selected is not None:
        planned &= set(selected)
    return planned


@contextlib.contextmanager
def _steps_lock(spool_dir: Path) -> Iterator[None]:
    """An exclusive lock shared by the dbt steps of this machine (none if it cannot be had)."""
    try:
        spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(spool_dir / _STEPS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _dagster_events(
    context: AssetExecutionContext,
    invocation: DbtRun,
    observer: _Observer | None,
) -> Iterator[Any]:
    for event in invocation.stream_raw_events():
        if observer is not None:
            observer.drain_dagster_log()
        for dagster_event in asset_events(event, invocation, context):
            if observer is not None and isinstance(dagster_event, Output):
                unique_id = dagster_event.metadata.get("unique_id")
                unique_id = getattr(unique_id, "value", unique_id)  # a TextMetadataValue
                extra = observer.column_metadata(str(unique_id))
                if extra:
                    dagster_event = dagster_event.with_metadata({**dagster_event.metadata, **extra})
            yield dagster_event


def events_dropped(tags: Mapping[str, str]) -> tuple[int, str | None]:
    """(events every dbt step of a run dropped, the last reason) from the run's tags."""
    total = 0
    for name, value in tags.items():
        if name.startswith(EVENTS_DROPPED_STEP_PREFIX) and value.isdigit():
            total += int(value)
    return total, tags.get(EVENTS_DROP_REASON_TAG)


def _report(
    context: AssetExecutionContext,
    stats: EmitStats,
    trace_id: str,
    span_id: str,
    internal_error: str | None,
) -> None:
    summary = (
        f"floe: {stats.emitted} events: {stats.acked} acknowledged by the sidecar, "
        f"{stats.spooled} spooled, {stats.dropped} dropped"
    )
    if stats.dropped:
        summary += f" ({stats.spool_error})"
    if internal_error:
        summary += f"; event building failed: {internal_error}"
    message = with_trace(summary, trace_id, span_id)
    if stats.dropped or internal_error:
        context.log.warning(message)
    else:
        context.log.info(message)
    log.info(
        summary,
        extra={
            "events_emitted": stats.emitted,
            "events_acked": stats.acked,
            "events_spooled": stats.spooled,
            "events_dropped": stats.dropped,
        },
    )
    try:
        context.instance.add_run_tags(
            context.run.run_id,
            {
                EVENTS_EMITTED_TAG: str(stats.emitted),
                EVENTS_SPOOLED_TAG: str(stats.spooled),
                EVENTS_DROPPED_TAG: str(stats.dropped),
                EVENTS_DROPPED_STEP_PREFIX + context.op_def.name: str(stats.dropped),
                **(
                    {EVENTS_DROP_REASON_TAG: stats.spool_error[:300]}
                    if stats.spool_error and stats.dropped
                    else {}
                ),
            },
        )
    except Exception:
        log.warning("could not record event counts as run tags", exc_info=True)
