"""floe events to OpenLineage RunEvents: pure (no I/O, no clock), one event at a time.

The run hierarchy has three levels, linked by the ``parent`` facet (whose ``root`` is always the
Dagster run):

* the Dagster run: START with its first dbt invocation, COMPLETE or FAIL at ``run_finished``;
* each dbt invocation (``dbt-run-<project>``): START and COMPLETE/FAIL;
* each dbt node that executed: START when dbt starts it, COMPLETE, FAIL (with ``errorMessage``)
  or ABORT (skipped) when it ends, ABORT for nodes an invocation ended without finishing.

Event times are dbt's own timestamps for nodes and invocations, so the lineage timeline is the
warehouse's, not the sidecar's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from floe_core import ids
from floe_core.events import (
    DagsterRun,
    Event,
    Invocation,
    InvocationFinished,
    InvocationStarted,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    RunFinished,
)
from floe_core.outcome import NodeOutcome, node_outcome
from floe_sidecar.sinks.openlineage import facets
from floe_sidecar.sinks.openlineage.columns import output_columns
from floe_sidecar.sinks.openlineage.naming import (
    DEFAULT_JOB_NAMESPACE,
    dataset_name,
    dataset_namespace,
    datasource_uri,
    dbt_command,
    invocation_job_name,
    node_job_name,
    run_job_name,
)
from floe_sidecar.sinks.openlineage.run_ids import invocation_run_id, node_run_id, root_run_id

__all__ = ["RunEvent", "translate_event"]

#: An OpenLineage RunEvent as a JSON-ready dict.
RunEvent = dict[str, Any]

# Materializations whose rows_affected counts the rows written (a view writes none).
_ROW_WRITING = frozenset({"table", "incremental", "seed", "snapshot", "microbatch"})
_JOB_TYPES = {"model": "MODEL", "seed": "SEED", "snapshot": "SNAPSHOT", "test": "TEST"}
# A finished node's outcome -> its run's final state (a node dbt skipped never ran: ABORT).
_NODE_STATES: dict[NodeOutcome, str] = {
    "success": "COMPLETE",
    "failure": "FAIL",
    "error": "FAIL",
    "skipped": "ABORT",
}


def translate_event(event: Event, namespace: str = DEFAULT_JOB_NAMESPACE) -> list[RunEvent]:
    """The RunEvents one floe event stands for, parents before children, in emission order."""
    if isinstance(event, NodeStarted):
        return [_node_event(event.invocation, event.node, "START", event.started_at, namespace)]
    if isinstance(event, NodeFinished):
        return [_node_finished(event, namespace)]
    if isinstance(event, InvocationStarted):
        inv = event.invocation
        run_start = inv.run.started_at or event.started_at
        return [
            _run_event(
                "START", run_start, inv.run, namespace, _run_tags(inv.environment, inv.attributes)
            ),
            _invocation_event("START", event.started_at, inv, namespace),
        ]
    if isinstance(event, InvocationFinished):
        inv = event.invocation
        out = [
            _node_event(
                inv, unfinished.node, "ABORT", event.finished_at, namespace, unfinished.started_at
            )
            for unfinished in event.unfinished
        ]
        state = "COMPLETE" if event.success else "FAIL"
        out.append(_invocation_event(state, event.finished_at, inv, namespace, event.error))
        return out
    if isinstance(event, RunFinished):
        state = "COMPLETE" if event.success else "FAIL"
        tags = _run_tags(event.environment, event.attributes)
        return [_run_event(state, event.finished_at, event.run, namespace, tags, event.error)]
    return []


def _time(value: datetime) -> str:
    """RFC 3339 with an offset; dbt's naive timestamps are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _run_tags(environment: str | None, attributes: dict[str, str]) -> dict[str, str]:
    tags = dict(attributes)
    if environment:
        tags.setdefault("environment", environment)
    return tags


def _event(
    state: str,
    when: datetime,
    run_id: str,
    run_facets: dict[str, Any],
    namespace: str,
    job_name: str,
    job_facets: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> RunEvent:
    return {
        "eventType": state,
        "eventTime": _time(when),
        "producer": facets.PRODUCER,
        "schemaURL": facets.RUN_EVENT_SCHEMA_URL,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": namespace, "name": job_name, "facets": job_facets},
        "inputs": inputs or [],
        "outputs": outputs or [],
    }


# The Dagster run


def _run_event(
    state: str,
    when: datetime,
    run: DagsterRun,
    namespace: str,
    tags: dict[str, str],
    error: str | None = None,
) -> RunEvent:
    run_facets: dict[str, Any] = {
        facets.FLOE_TRACE_FACET: facets.floe_trace(
            ids.trace_id_hex(run.run_id), ids.span_id_hex(ids.run_span_id(run.run_id)), None
        )
    }
    if tags:
        run_facets["tags"] = facets.tags_run(tags, "FLOE")
    if state == "FAIL":
        run_facets["errorMessage"] = facets.error_message(error or "Dagster run failed", "python")
    job_facets = {"jobType": facets.job_type("DAGSTER", "JOB")}
    return _event(
        state,
        when,
        root_run_id(run.run_id),
        run_facets,
        namespace,
        run_job_name(run.job_name),
        job_facets,
    )


# The dbt invocation


def _invocation_parent(inv: Invocation, namespace: str) -> dict[str, Any]:
    root_id = root_run_id(inv.run.run_id)
    root_name = run_job_name(inv.run.job_name)
    return facets.parent(root_id, namespace, root_name, root_id, namespace, root_name)


def _invocation_event(
    state: str, when: datetime, inv: Invocation, namespace: str, error: str | None = None
) -> RunEvent:
    run_id = inv.run.run_id
    run_facets: dict[str, Any] = {
        "parent": _invocation_parent(inv, namespace),
        "processing_engine": facets.processing_engine("dbt", inv.dbt_version),
        facets.FLOE_TRACE_FACET: facets.floe_trace(
            ids.trace_id_hex(run_id),
            ids.span_id_hex(ids.invocation_span_id(run_id, inv.invocation_id)),
            ids.span_id_hex(ids.run_span_id(run_id)),
        ),
    }
    tags = _run_tags(inv.environment, inv.attributes)
    if tags:
        run_facets["tags"] = facets.tags_run(tags, "FLOE")
    if state == "FAIL":
        run_facets["errorMessage"] = facets.error_message(error or "dbt invocation failed", "sql")
    return _event(
        state,
        when,
        invocation_run_id(run_id, inv.invocation_id),
        run_facets,
        namespace,
        invocation_job_name(inv),
        {"jobType": facets.job_type("DBT", "JOB")},
    )


# dbt nodes


def _node_finished(event: NodeFinished, namespace: str) -> RunEvent:
    state = _NODE_STATES[node_outcome(event.status, event.error)]
    return _node_event(
        event.invocation,
        event.node,
        state,
        event.finished_at,
        namespace,
        event.started_at,
        finished=event,
    )


def _node_event(
    inv: Invocation,
    node: Node,
    state: str,
    when: datetime,
    namespace: str,
    started: datetime | None = None,
    finished: NodeFinished | None = None,
) -> RunEvent:
    """One node's RunEvent. ``started`` is the node's start when ``when`` is not (ends, aborts)."""
    run_id = inv.run.run_id
    command = dbt_command(inv)
    ds_namespace = dataset_namespace(inv.connection)
    run_facets: dict[str, Any] = {
        "parent": facets.parent(
            invocation_run_id(run_id, inv.invocation_id),
            namespace,
            invocation_job_name(inv),
            root_run_id(run_id),
            namespace,
            run_job_name(inv.run.job_name),
        ),
        "processing_engine": facets.processing_engine("dbt", inv.dbt_version),
        facets.FLOE_TRACE_FACET: facets.floe_trace(
            ids.trace_id_hex(run_id),
            ids.span_id_hex(ids.node_span_id(run_id, inv.invocation_id, node.unique_id)),
            ids.span_id_hex(ids.invocation_span_id(run_id, inv.invocation_id)),
        ),
    }
    tags = _run_tags(inv.environment, inv.attributes)
    if tags:
        run_facets["tags"] = facets.tags_run(tags, "FLOE")
    if state == "FAIL" and finished is not None:
        message = finished.error or finished.message or f"dbt {node.resource_type} failed"
        run_facets["errorMessage"] = facets.error_message(message, "sql")

    job_facets: dict[str, Any] = {
        "jobType": facets.job_type(
            "DBT", _JOB_TYPES.get(node.resource_type, node.resource_type.upper())
        )
    }
    if finished is not None and finished.compiled_sql:
        job_facets["sql"] = facets.sql(finished.compiled_sql, inv.connection.adapter_type)
    if node.description:
        job_facets["documentation"] = facets.documentation_job(node.description)
    if node.owner:
        job_facets["ownership"] = facets.ownership_job(node.owner)
    if node.tags:
        job_facets["tags"] = facets.tags_job(node.tags, "DBT")

    inputs = _inputs(node, ds_namespace, finished)
    outputs = []
    if node.relation is not None and node.resource_type != "test":
        output, lineage_errors = _output(
            node, node.relation, ds_namespace, state, finished, [i["name"] for i in inputs]
        )
        outputs.append(output)
        if lineage_errors:
            run_facets["extractionError"] = facets.extraction_error(lineage_errors)

    return _event(
        state,
        when,
        node_run_id(run_id, inv.invocation_id, node.unique_id, started or when),
        run_facets,
        namespace,
        node_job_name(node, command),
        job_facets,
        inputs,
        outputs,
    )


def _dataset(relation: Relation, namespace: str) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": dataset_name(relation),
        "facets": {"dataSource": facets.datasource(namespace, datasource_uri(namespace))},
    }


def _inputs(node: Node, namespace: str, finished: NodeFinished | None) -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = []
    seen: set[str] = set()
    tested = node.test.attached_relation if node.test is not None else None
    relations = list(node.upstream)
    if tested is not None and tested not in relations:
        relations.insert(0, tested)
    for relation in relations:
        dataset = _dataset(relation, namespace)
        if dataset["name"] in seen:
            continue
        seen.add(dataset["name"])
        if finished is not None and relation == tested:
            dataset["inputFacets"] = {
                "dataQualityAssertions": facets.data_quality_assertions(
                    [_assertion(node, finished)]
                )
            }
        inputs.append(dataset)
    return inputs


def _assertion(node: Node, finished: NodeFinished) -> dict[str, Any]:
    """One dbt data test's result, as the assertions facet has it (dbt-ol's shape)."""
    test = node.test
    assertion: dict[str, Any] = {
        "assertion": test.test_name if test is not None else node.name,
        "name": node.name,
        "success": finished.status == "pass",
    }
    if test is not None and test.column_name:
        assertion["column"] = test.column_name
    if finished.status == "warn":
        assertion["severity"] = "warn"
    elif finished.status in ("pass", "fail", "error"):
        assertion["severity"] = "error"
    if finished.failures is not None:
        assertion["actual"] = str(finished.failures)
        assertion["expected"] = "0"
    return assertion


def _output(
    node: Node,
    relation: Relation,
    namespace: str,
    state: str,
    finished: NodeFinished | None,
    input_names: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """The output dataset, and what its column lineage could not resolve."""
    dataset = _dataset(relation, namespace)
    dataset_facets = dataset["facets"]
    columns = output_columns(node, finished, namespace, input_names)
    dataset_facets.update(columns.facets)
    if node.description:
        dataset_facets["documentation"] = facets.documentation_dataset(node.description)
    if node.owner:
        dataset_facets["ownership"] = facets.ownership_dataset(node.owner)
    tags = [{"key": tag, "value": "true", "source": "DBT"} for tag in node.tags]
    tags.extend(columns.tags)
    if tags:
        dataset_facets["tags"] = facets.tags_dataset(tags)
    if (
        state == "COMPLETE"
        and finished is not None
        and finished.rows_affected is not None
        and finished.rows_affected >= 0
        and (node.materialized or node.resource_type) in _ROW_WRITING
    ):
        dataset["outputFacets"] = {
            "outputStatistics": facets.output_statistics(finished.rows_affected)
        }
    return dataset, list(dict.fromkeys(columns.errors))
