"""The one model of a run that the page shows: typed Structs, serialised once into the page.

Datasets and spans are lists; edges refer to datasets by their index, so a 2,000-model run stays a
few megabytes of JSON. Everything here is plain data (no behaviour): :mod:`.build` fills it from
OpenLineage RunEvents and OTLP/JSON spans, :mod:`.render` writes it into the HTML.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "OUTCOMES",
    "Check",
    "Classification",
    "Column",
    "ColumnEdge",
    "Dataset",
    "Edge",
    "FieldRef",
    "RunModel",
    "SpanEvent",
    "SpanRow",
    "Summary",
    "Transformation",
]

#: How a dataset ended in the run: written (ok), its job failed, dbt skipped it, its job started
#: and never ended, or it was only read (a source, or a table this run did not build).
OUTCOMES = ("ok", "failed", "skipped", "unfinished", "input")


class _Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class FieldRef(_Struct):
    """A column of another dataset: ``dataset`` is its index in :attr:`RunModel.datasets`."""

    dataset: int
    field: str


class Classification(_Struct):
    name: str  # e.g. "pii"
    origin: str  # "declared" | "inherited" | "masked"
    sources: list[FieldRef] = []  # where an inherited or masked classification comes from


class Column(_Struct):
    name: str
    type: str | None = None
    description: str | None = None
    classifications: list[Classification] = []


class Transformation(_Struct):
    type: str  # DIRECT | INDIRECT
    subtype: str | None = None  # IDENTITY, TRANSFORMATION, AGGREGATION; JOIN, FILTER, ...
    description: str | None = None
    masking: bool = False


class ColumnEdge(_Struct):
    """``source`` column feeds ``target`` column (from the target's ``columnLineage`` facet)."""

    source: int
    source_field: str
    target: int
    target_field: str
    transformations: list[Transformation] = []


class Check(_Struct):
    """A dbt test that read the dataset."""

    name: str
    status: str  # "passed" | "failed" | "skipped" | "unfinished"
    column: str | None = None
    message: str | None = None


class Dataset(_Struct):
    namespace: str
    name: str  # as OpenLineage names it: <database>.<schema>.<table>
    label: str  # the table part, what the graph shows
    schema: str  # the part before the table ("main", "analytics.marts", ...)
    group: str  # the dbt folder under models/ (staging, marts), like the Dagster group
    kind: str  # model | seed | snapshot | source | ...
    outcome: str  # one of OUTCOMES
    job: str | None = None  # the job that wrote it in this run
    error: str | None = None  # dbt's error text when the job failed
    started_at: str | None = None
    finished_at: str | None = None
    span_id: str | None = None  # the writer's span in the waterfall
    description: str | None = None
    sql: str | None = None
    columns: list[Column] = []
    checks: list[Check] = []
    # Dataset-wide INDIRECT dependencies (joins, filters, group by) of the column lineage.
    depends_on: list[FieldRef] = []


class Edge(_Struct):
    source: int
    target: int


class SpanEvent(_Struct):
    name: str
    time_ns: int
    attributes: dict[str, Any] = {}


class SpanRow(_Struct):
    """One waterfall row, in tree order (parents first, children by start time)."""

    span_id: str
    parent_id: str | None
    depth: int
    name: str
    start_ns: int
    end_ns: int
    status: str  # "ok" | "error" | "unset"
    message: str | None = None
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []


class Summary(_Struct):
    assets: dict[str, int] = {}  # outcome -> datasets written by this run
    checks_passed: int = 0
    checks_failed: int = 0
    checks_other: int = 0
    lineage_events: int = 0
    job_runs: int = 0
    spans: int = 0
    span_errors: int = 0


class RunModel(_Struct):
    run_id: str  # the Dagster run id
    trace_id: str  # the same 128 bits, as OTel writes them
    job_name: str | None = None
    outcome: str | None = None  # "succeeded" | "failed" | "unfinished"
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    invocations: list[str] = []  # dbt invocation ids
    datasets: list[Dataset] = []
    edges: list[Edge] = []
    column_edges: list[ColumnEdge] = []
    spans: list[SpanRow] = []
    summary: Summary = msgspec.field(default_factory=Summary)
    sources: list[str] = []  # what the page was built from, for the reader
    notes: list[str] = []  # what could not be read (the page may be incomplete)
