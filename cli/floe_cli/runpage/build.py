"""OpenLineage RunEvents and spans of one run in, the page's :class:`~.model.RunModel` out.

Pure: no files, no clock. The events are those of one Dagster run (its own job run, its dbt
invocations and their nodes); delivery is at least once, so a (runId, eventType) seen twice counts
once. The graph is exactly what the events say: every dataset an event reads or writes is a node,
and every job run that reads ``I`` and writes ``O`` gives the edges ``I x O``. Column lineage,
schemas and classifications come from the standard dataset facets (``columnLineage`` 1-2-0,
``schema``, ``tags`` with a ``field``) and floe's ``floe_classifications`` facet.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from floe_cli.runpage.model import (
    Check,
    Classification,
    Column,
    ColumnEdge,
    Dataset,
    Edge,
    FieldRef,
    RunModel,
    SpanRow,
    Summary,
    Transformation,
)
from floe_core.classification import DECLARED, TAG_SOURCES

__all__ = ["build_run", "order_spans", "root_run_id"]

SQL_LIMIT = 20_000  # characters of compiled SQL kept per model
_TERMINAL = ("COMPLETE", "FAIL", "ABORT")
# The origin of a column classification by the ``source`` of its tag in the ``tags`` facet.
_CLASSIFICATION_ORIGINS = {source: origin for origin, source in TAG_SOURCES.items()}
_CHECK_STATUS = {"ok": "passed", "failed": "failed", "skipped": "skipped"}

Json = Mapping[str, Any]


def root_run_id(event: Json) -> str | None:
    """The Dagster run an event belongs to: its parent's root, its parent, or itself."""
    run = _dict(event.get("run"))
    parent = _dict(_dict(run.get("facets")).get("parent"))
    for candidate in (
        _dict(_dict(parent.get("root")).get("run")).get("runId"),
        _dict(parent.get("run")).get("runId"),
        run.get("runId"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate.lower()
    return None


_EMPTY: dict[str, Any] = {}


def _dict(value: Any) -> Json:
    # Decoded JSON holds plain dicts and lists; exact type checks are cheap, ABC checks are not.
    return value if type(value) is dict else _EMPTY


def _list(value: Any) -> Sequence[Any]:
    return value if type(value) is list or type(value) is tuple else ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class _JobRun:
    run_id: str
    name: str
    order: int
    states: list[str] = field(default_factory=list)
    times: dict[str, str] = field(default_factory=dict)
    job_type: str | None = None
    parent_run: str | None = None
    inputs: dict[tuple[str, str], None] = field(default_factory=dict)
    outputs: dict[tuple[str, str], None] = field(default_factory=dict)
    error: str | None = None
    span_id: str | None = None
    description: str | None = None
    sql: str | None = None

    @property
    def outcome(self) -> str:
        terminal = next((s for s in reversed(self.states) if s in _TERMINAL), None)
        if terminal == "COMPLETE":
            return "ok"
        if terminal == "FAIL":
            return "failed"
        if terminal == "ABORT":
            # dbt skipped it (never started) or the invocation ended while it ran.
            return "unfinished" if "START" in self.states else "skipped"
        return "unfinished"

    @property
    def finished_at(self) -> str | None:
        for state in reversed(self.states):
            if state in _TERMINAL:
                return self.times.get(state)
        return None


class _Datasets:
    """Datasets by (namespace, name), in order of first appearance, with merged facets."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str], int] = {}
        self.facets: list[dict[str, Any]] = []

    def add(self, namespace: str, name: str, facets: Json | None = None) -> int:
        key = (namespace, name)
        position = self.index.get(key)
        if position is None:
            position = self.index[key] = len(self.facets)
            self.facets.append({})
        if facets:
            self.facets[position].update({k: v for k, v in facets.items() if isinstance(v, dict)})
        return position

    def keys(self) -> list[tuple[str, str]]:
        return list(self.index)


def _unique(events: Iterable[Json]) -> list[Json]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for event in events:
        run_id = _dict(event.get("run")).get("runId")
        state = event.get("eventType")
        if not isinstance(run_id, str) or not isinstance(state, str):
            continue
        key = (run_id.lower(), state)
        if key in seen:
            continue
        seen.add(key)
        unique.append(event)
    return unique


def _job_runs(events: Sequence[Json], datasets: _Datasets) -> dict[str, _JobRun]:
    jobs: dict[str, _JobRun] = {}
    for event in events:
        run = _dict(event.get("run"))
        run_id = str(run["runId"]).lower()
        job = _dict(event.get("job"))
        entry = jobs.get(run_id)
        if entry is None:
            entry = jobs[run_id] = _JobRun(run_id, str(job.get("name") or "?"), len(jobs))
        state = str(event["eventType"])
        entry.states.append(state)
        if isinstance(event.get("eventTime"), str):
            entry.times.setdefault(state, event["eventTime"])
        run_facets = _dict(run.get("facets"))
        parent = _text(_dict(_dict(run_facets.get("parent")).get("run")).get("runId"))
        entry.parent_run = entry.parent_run or (parent.lower() if parent else None)
        entry.span_id = entry.span_id or _text(_dict(run_facets.get("floe_trace")).get("spanId"))
        error = _text(_dict(run_facets.get("errorMessage")).get("message"))
        if error:
            entry.error = error
        job_facets = _dict(job.get("facets"))
        job_type = _text(_dict(job_facets.get("jobType")).get("jobType"))
        entry.job_type = entry.job_type or job_type
        entry.description = entry.description or _text(
            _dict(job_facets.get("documentation")).get("description")
        )
        query = _text(_dict(job_facets.get("sql")).get("query"))
        if query:
            entry.sql = query[:SQL_LIMIT]
        for key, target in (("inputs", entry.inputs), ("outputs", entry.outputs)):
            for dataset in _list(event.get(key)):
                dataset = _dict(dataset)
                namespace, name = dataset.get("namespace"), dataset.get("name")
                if isinstance(namespace, str) and isinstance(name, str):
                    datasets.add(namespace, name, _dict(dataset.get("facets")))
                    target[(namespace, name)] = None
    return jobs


def _columns(
    facets: Json, lookup: Mapping[tuple[str, str], int], datasets: _Datasets
) -> list[Column]:
    columns: dict[str, Column] = {}

    def walk(fields: Sequence[Any], prefix: str) -> None:
        for raw in fields:
            raw = _dict(raw)
            name = _text(raw.get("name"))
            if name is None:
                continue
            full = f"{prefix}{name}"
            columns[full] = Column(
                name=full, type=_text(raw.get("type")), description=_text(raw.get("description"))
            )
            walk(_list(raw.get("fields")), f"{full}.")

    walk(_list(_dict(facets.get("schema")).get("fields")), "")
    classified: dict[tuple[str, str, str], Classification] = {}

    def classify(column: str, name: str, origin: str, sources: Iterable[FieldRef]) -> None:
        key = (column, name, origin)
        found = classified.get(key)
        if found is None:
            found = classified[key] = Classification(name=name, origin=origin)
        for ref in sources:
            if ref not in found.sources:
                found.sources.append(ref)

    for tag in _list(_dict(facets.get("tags")).get("tags")):
        tag = _dict(tag)
        column, value = _text(tag.get("field")), _text(tag.get("value"))
        if tag.get("key") == "classification" and column and value:
            origin = _CLASSIFICATION_ORIGINS.get(str(tag.get("source") or ""), DECLARED)
            classify(column, value, origin, ())
    for column, entries in _dict(_dict(facets.get("floe_classifications")).get("columns")).items():
        for entry in _list(entries):
            entry = _dict(entry)
            name = _text(entry.get("classification"))
            if not name:
                continue
            origin = _text(entry.get("origin")) or DECLARED
            classify(str(column), name, origin, _refs(entry.get("from"), lookup, datasets))
    for (column, _, _), classification in classified.items():
        if column not in columns:
            columns[column] = Column(name=column)
        columns[column].classifications.append(classification)
    return list(columns.values())


def _refs(raw: Any, lookup: Mapping[tuple[str, str], int], datasets: _Datasets) -> list[FieldRef]:
    refs = []
    for item in _list(raw):
        item = _dict(item)
        namespace, name, column = item.get("namespace"), item.get("name"), item.get("field")
        if isinstance(namespace, str) and isinstance(name, str) and isinstance(column, str):
            index = lookup.get((namespace, name))
            if index is None:
                index = datasets.add(namespace, name)
            refs.append(FieldRef(dataset=index, field=column))
    return refs


def _transformations(raw: Json) -> list[Transformation]:
    found = []
    for item in _list(raw.get("transformations")):
        item = _dict(item)
        kind = _text(item.get("type"))
        if kind:
            found.append(
                Transformation(
                    type=kind,
                    subtype=_text(item.get("subtype")),
                    description=_text(item.get("description")),
                    masking=item.get("masking") is True,
                )
            )
    legacy = _text(raw.get("transformationType"))  # columnLineage 1-0-x, per field
    if not found and legacy:
        found.append(
            Transformation(type=legacy, description=_text(raw.get("transformationDescription")))
        )
    return found


def _column_lineage(
    target: int, facets: Json, datasets: _Datasets
) -> tuple[list[ColumnEdge], list[FieldRef]]:
    facet = _dict(facets.get("columnLineage"))
    edges: list[ColumnEdge] = []
    for column, info in _dict(facet.get("fields")).items():
        info = _dict(info)
        for source in _list(info.get("inputFields")):
            source = _dict(source)
            namespace, name, source_field = (
                source.get("namespace"),
                source.get("name"),
                source.get("field"),
            )
            if not (
                isinstance(namespace, str)
                and isinstance(name, str)
                and isinstance(source_field, str)
            ):
                continue
            edges.append(
                ColumnEdge(
                    source=datasets.add(namespace, name),
                    source_field=source_field,
                    target=target,
                    target_field=str(column),
                    transformations=_transformations(source) or _transformations(info),
                )
            )
    depends = _refs(facet.get("dataset"), datasets.index, datasets)
    return edges, depends


def _split(name: str) -> tuple[str, str]:
    """(schema, table) of ``<database>.<schema>.<table>``."""
    head, _, table = name.rpartition(".")
    return head, table or name


def _group(attributes: Mapping[str, Any], kind: str) -> str:
    """The Dagster group floe's translator gives by default: the folder under the resource
    path (``models/staging/x.sql`` -> ``staging``), else the resource type (``seeds``)."""
    path = attributes.get("code.file.path")
    if isinstance(path, str) and path:
        parts = [p for p in posixpath.normpath(path).split("/") if p not in ("", ".")]
        if len(parts) >= 3:
            return parts[1]
    return f"{kind}s"


def order_spans(spans: Iterable[SpanRow]) -> list[SpanRow]:
    """Spans in waterfall order: each parent, then its children by start time; depth set."""
    by_id: dict[str, SpanRow] = {}
    for span in spans:
        by_id.setdefault(span.span_id, span)  # at-least-once delivery: first copy wins
    children: dict[str | None, list[SpanRow]] = {}
    for span in by_id.values():
        parent = span.parent_id if span.parent_id in by_id else None
        children.setdefault(parent, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.start_ns, s.name, s.span_id))
    ordered: list[SpanRow] = []
    stack = [(span, 0) for span in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        span.depth = depth
        ordered.append(span)
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return ordered


def build_run(
    run_id: str,
    events: Iterable[Json],
    spans: Iterable[SpanRow] = (),
    *,
    trace_id: str | None = None,
    sources: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> RunModel:
    """The page's model of Dagster run ``run_id`` from its lineage events and spans."""
    run_id = run_id.lower()
    unique = _unique(events)
    datasets = _Datasets()
    jobs = _job_runs(unique, datasets)
    rows = order_spans(spans)
    span_attributes = {row.span_id: row.attributes for row in rows}

    writers: dict[int, _JobRun] = {}
    edges: dict[tuple[int, int], None] = {}
    checks: dict[int, list[Check]] = {}
    for job in sorted(jobs.values(), key=lambda j: j.order):
        inputs = [datasets.index[key] for key in job.inputs]
        outputs = [datasets.index[key] for key in job.outputs]
        for target in outputs:
            writers[target] = job  # the last writer in the run wins
            for source in inputs:
                edges[(source, target)] = None
        if job.job_type == "TEST" or (not outputs and job.name.startswith("test.")):
            attributes = span_attributes.get(job.span_id or "", {})
            check = Check(
                name=str(attributes.get("dbt.test.name") or attributes.get("dbt.node_name") or "")
                or job.name,
                status=_CHECK_STATUS.get(job.outcome, job.outcome),
                column=_text(attributes.get("dbt.test.column_name")),
                message=job.error,
            )
            for source in inputs:
                checks.setdefault(source, []).append(check)

    model_datasets: list[Dataset] = []
    column_edges: list[ColumnEdge] = []
    # Column lineage and classifications may name datasets not seen yet: resolve them first.
    lineage: dict[int, tuple[list[ColumnEdge], list[FieldRef]]] = {}
    for position in range(len(datasets.facets)):
        lineage[position] = _column_lineage(position, datasets.facets[position], datasets)
    columns = {
        position: _columns(datasets.facets[position], datasets.index, datasets)
        for position in range(len(datasets.facets))
    }
    for position, (namespace, name) in enumerate(datasets.keys()):
        facets = datasets.facets[position]
        writer = writers.get(position)
        kind = (writer.job_type or "model").lower() if writer else "input"
        attributes = span_attributes.get(writer.span_id or "", {}) if writer else {}
        schema, table = _split(name)
        found_columns = columns.get(position, [])
        edges_in, depends = lineage.get(position, ([], []))
        column_edges.extend(edges_in)
        known = {c.name for c in found_columns}
        for edge in edges_in:  # a lineage field the schema does not list is still a column
            if edge.target_field not in known:
                found_columns.append(Column(name=edge.target_field))
                known.add(edge.target_field)
        model_datasets.append(
            Dataset(
                namespace=namespace,
                name=name,
                label=table,
                schema=schema,
                group=_group(attributes, kind) if writer else "inputs",
                kind=kind,
                outcome=writer.outcome if writer else "input",
                job=writer.name if writer else None,
                error=writer.error if writer and writer.outcome == "failed" else None,
                started_at=writer.times.get("START") if writer else None,
                finished_at=writer.finished_at if writer else None,
                span_id=writer.span_id if writer else None,
                description=_text(_dict(facets.get("documentation")).get("description"))
                or (writer.description if writer else None),
                sql=writer.sql if writer else None,
                columns=found_columns,
                checks=checks.get(position, []),
                depends_on=depends,
            )
        )
    # Source columns named only by other datasets' lineage are columns too.
    for edge in column_edges:
        upstream = model_datasets[edge.source]
        if all(c.name != edge.source_field for c in upstream.columns):
            upstream.columns.append(Column(name=edge.source_field))

    model = RunModel(
        run_id=run_id,
        trace_id=trace_id or run_id.replace("-", ""),
        datasets=model_datasets,
        edges=[Edge(source=s, target=t) for s, t in edges],
        column_edges=column_edges,
        spans=rows,
        sources=list(sources),
        notes=list(notes),
    )
    _run_facts(model, jobs, rows)
    model.summary = _summary(model, jobs, unique, rows)
    return model


def _run_facts(model: RunModel, jobs: Mapping[str, _JobRun], rows: Sequence[SpanRow]) -> None:
    root = jobs.get(model.run_id)
    root_span = next((r for r in rows if r.depth == 0), None)
    if root is not None:
        model.job_name = root.name
        model.started_at = root.times.get("START")
        model.finished_at = root.finished_at
        model.outcome = {"ok": "succeeded", "failed": "failed"}.get(root.outcome, root.outcome)
        model.error = root.error
    elif root_span is not None:
        name = root_span.attributes.get("cicd.pipeline.name")
        model.job_name = name if isinstance(name, str) else root_span.name
        model.outcome = "failed" if root_span.status == "error" else "succeeded"
        model.error = root_span.message
    model.invocations = [j.run_id for j in jobs.values() if j.parent_run == model.run_id]
    if rows:
        start = min(r.start_ns for r in rows)
        end = max(r.end_ns for r in rows)
        model.duration_s = max(end - start, 0) / 1e9
    elif model.started_at and model.finished_at:  # no spans: the run's own lineage times
        try:
            began = datetime.fromisoformat(model.started_at.replace("Z", "+00:00"))
            ended = datetime.fromisoformat(model.finished_at.replace("Z", "+00:00"))
            model.duration_s = max((ended - began).total_seconds(), 0.0)
        except (TypeError, ValueError):
            model.duration_s = None


def _summary(
    model: RunModel, jobs: Mapping[str, _JobRun], events: Sequence[Json], rows: Sequence[SpanRow]
) -> Summary:
    assets = Counter(d.outcome for d in model.datasets if d.outcome != "input")
    tests = [j for j in jobs.values() if j.job_type == "TEST"]
    passed = sum(1 for t in tests if t.outcome == "ok")
    failed = sum(1 for t in tests if t.outcome == "failed")
    return Summary(
        assets=dict(sorted(assets.items())),
        checks_passed=passed,
        checks_failed=failed,
        checks_other=len(tests) - passed - failed,
        lineage_events=len(events),
        job_runs=len(jobs),
        spans=len(rows),
        span_errors=sum(1 for r in rows if r.status == "error"),
    )
