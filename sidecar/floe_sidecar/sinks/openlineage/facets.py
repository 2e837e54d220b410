"""Facet builders: plain dicts, ready for JSON, each stamped with its producer and schema URL.

Standard facets use the schema versions openlineage-python 1.54 writes (a test checks these URLs
against the client's own). floe's one custom facet, ``floe_trace``, carries the OpenTelemetry trace
and span ids of the run, so a lineage run leads to its trace and back (SC-008).

Custom facet schema URLs: ``{SCHEMA_BASE_URL}/<version>/<FacetName>.json``, the file
``schemas/openlineage/<version>/<FacetName>.json`` of the floe repository on its main branch
(published schemas live apart from the code, so moving code never moves a URL); the file's
``$id`` is that URL. A published version is never edited: a change
to a facet adds a new version directory, as OpenLineage does with its own ``spec/facets``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from floe_core.classification import DBT_META, TAG_SOURCES

__all__ = [
    "FLOE_CLASSIFICATIONS_FACET",
    "FLOE_TRACE_FACET",
    "FLOE_VERSION",
    "PRODUCER",
    "RUN_EVENT_SCHEMA_URL",
    "SCHEMA_BASE_URL",
    "Facet",
    "column_lineage",
    "column_tags",
    "data_quality_assertions",
    "datasource",
    "documentation_dataset",
    "documentation_job",
    "error_message",
    "extraction_error",
    "floe_classifications",
    "floe_trace",
    "job_type",
    "output_statistics",
    "ownership_dataset",
    "ownership_job",
    "parent",
    "processing_engine",
    "schema",
    "sql",
    "tags_dataset",
    "tags_job",
    "tags_run",
]

Facet = dict[str, Any]


def _version() -> str:
    try:
        return metadata.version("floe")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


FLOE_VERSION = _version()
REPOSITORY_URL = "https://github.com/floe-dev/floe"
#: The ``producer`` of every event and facet floe writes.
PRODUCER = f"{REPOSITORY_URL}/tree/v{FLOE_VERSION}/sidecar"
SCHEMA_BASE_URL = "https://raw.githubusercontent.com/floe-dev/floe/main/schemas/openlineage"

RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_SPEC = "https://openlineage.io/spec/facets"
SCHEMA_URLS = {
    "SchemaDatasetFacet": f"{_SPEC}/1-2-0/SchemaDatasetFacet.json",
    "DatasourceDatasetFacet": f"{_SPEC}/1-0-1/DatasourceDatasetFacet.json",
    "DocumentationDatasetFacet": f"{_SPEC}/1-1-0/DocumentationDatasetFacet.json",
    "DocumentationJobFacet": f"{_SPEC}/1-1-0/DocumentationJobFacet.json",
    "OwnershipDatasetFacet": f"{_SPEC}/1-0-1/OwnershipDatasetFacet.json",
    "OwnershipJobFacet": f"{_SPEC}/1-0-1/OwnershipJobFacet.json",
    "SQLJobFacet": f"{_SPEC}/1-1-0/SQLJobFacet.json",
    "JobTypeJobFacet": f"{_SPEC}/2-0-4/JobTypeJobFacet.json",
    "ProcessingEngineRunFacet": f"{_SPEC}/1-1-1/ProcessingEngineRunFacet.json",
    "ParentRunFacet": f"{_SPEC}/1-2-0/ParentRunFacet.json",
    "ErrorMessageRunFacet": f"{_SPEC}/1-0-1/ErrorMessageRunFacet.json",
    "OutputStatisticsOutputDatasetFacet": f"{_SPEC}/1-0-2/OutputStatisticsOutputDatasetFacet.json",
    "DataQualityAssertionsDatasetFacet": f"{_SPEC}/1-1-0/DataQualityAssertionsDatasetFacet.json",
    "TagsDatasetFacet": f"{_SPEC}/1-0-0/TagsDatasetFacet.json",
    "TagsJobFacet": f"{_SPEC}/1-0-0/TagsJobFacet.json",
    "TagsRunFacet": f"{_SPEC}/1-0-0/TagsRunFacet.json",
    "ColumnLineageDatasetFacet": f"{_SPEC}/1-2-0/ColumnLineageDatasetFacet.json",
    "ExtractionErrorRunFacet": f"{_SPEC}/1-1-2/ExtractionErrorRunFacet.json",
    "FloeTraceRunFacet": f"{SCHEMA_BASE_URL}/1-0-0/FloeTraceRunFacet.json",
    "FloeClassificationsDatasetFacet": (
        f"{SCHEMA_BASE_URL}/1-0-0/FloeClassificationsDatasetFacet.json"
    ),
}
#: Key of floe's trace facet in ``run.facets``.
FLOE_TRACE_FACET = "floe_trace"
#: Key of floe's classifications facet in a dataset's ``facets``.
FLOE_CLASSIFICATIONS_FACET = "floe_classifications"


def _facet(kind: str, **fields: Any) -> Facet:
    facet: Facet = {"_producer": PRODUCER, "_schemaURL": f"{SCHEMA_URLS[kind]}#/$defs/{kind}"}
    facet.update((key, value) for key, value in fields.items() if value is not None)
    return facet


# Run facets


def parent(
    run_id: str, namespace: str, name: str, root_run_id: str, root_namespace: str, root_name: str
) -> Facet:
    return _facet(
        "ParentRunFacet",
        run={"runId": run_id},
        job={"namespace": namespace, "name": name},
        root={
            "run": {"runId": root_run_id},
            "job": {"namespace": root_namespace, "name": root_name},
        },
    )


def processing_engine(name: str, version: str | None) -> Facet:
    return _facet(
        "ProcessingEngineRunFacet",
        name=name,
        version=version or "unknown",
        openlineageAdapterVersion=FLOE_VERSION,
    )


def error_message(message: str, language: str) -> Facet:
    return _facet("ErrorMessageRunFacet", message=message, programmingLanguage=language)


def extraction_error(errors: list[str], total_tasks: int = 1) -> Facet:
    """What the column lineage of a statement could not resolve (``totalTasks``: statements)."""
    return _facet(
        "ExtractionErrorRunFacet",
        totalTasks=total_tasks,
        failedTasks=1 if errors else 0,
        errors=[{"errorMessage": message, "taskNumber": 0} for message in errors],
    )


def tags_run(tags: Mapping[str, str], source: str) -> Facet:
    return _facet(
        "TagsRunFacet",
        tags=[{"key": key, "value": value, "source": source} for key, value in tags.items()],
    )


def floe_trace(trace_id: str, span_id: str, parent_span_id: str | None) -> Facet:
    """The run's OpenTelemetry identity: its span is ``span_id`` in trace ``trace_id``."""
    return _facet(
        "FloeTraceRunFacet",
        traceId=trace_id,
        spanId=span_id,
        parentSpanId=parent_span_id,
        traceparent=f"00-{trace_id}-{span_id}-01",
    )


# Job facets


def job_type(integration: str, job_type: str) -> Facet:
    return _facet(
        "JobTypeJobFacet", processingType="BATCH", integration=integration, jobType=job_type
    )


def sql(query: str, dialect: str | None) -> Facet:
    return _facet("SQLJobFacet", query=query, dialect=dialect)


def documentation_job(description: str) -> Facet:
    return _facet("DocumentationJobFacet", description=description)


def ownership_job(owner: str) -> Facet:
    return _facet("OwnershipJobFacet", owners=[{"name": owner}])


def tags_job(tags: Iterable[str], source: str) -> Facet:
    return _facet(
        "TagsJobFacet", tags=[{"key": tag, "value": "true", "source": source} for tag in tags]
    )


# Dataset facets


def datasource(name: str, uri: str) -> Facet:
    return _facet("DatasourceDatasetFacet", name=name, uri=uri)


def schema(fields: list[dict[str, str]]) -> Facet:
    return _facet("SchemaDatasetFacet", fields=fields)


def documentation_dataset(description: str) -> Facet:
    return _facet("DocumentationDatasetFacet", description=description)


def ownership_dataset(owner: str) -> Facet:
    return _facet("OwnershipDatasetFacet", owners=[{"name": owner}])


def tags_dataset(tags: list[dict[str, str]]) -> Facet:
    return _facet("TagsDatasetFacet", tags=tags)


#: ``source`` of a column-level classification tag: declared in dbt meta, inherited through a
#: DIRECT column-lineage edge, or passed on masked (defined in floe_core: the run page reads it).
CLASSIFICATION_TAG_SOURCES = TAG_SOURCES


def column_tags(
    column: str, tags: Iterable[str], classification: str | None
) -> list[dict[str, str]]:
    """Column-level tags: the column's dbt tags and its declared governance classification."""
    out = [{"key": tag, "value": "true", "source": "DBT", "field": column} for tag in tags]
    if classification:
        out.append(
            {
                "key": "classification",
                "value": classification,
                "source": DBT_META,
                "field": column,
            }
        )
    return out


def column_lineage(fields: dict[str, Any], dataset: list[dict[str, Any]]) -> Facet:
    return _facet("ColumnLineageDatasetFacet", fields=fields, dataset=dataset or None)


def floe_classifications(columns: dict[str, list[dict[str, Any]]]) -> Facet:
    """Per column, every classification it carries, whether declared, inherited or masked, and
    the columns it was declared on (``from``)."""
    return _facet("FloeClassificationsDatasetFacet", columns=columns)


def output_statistics(row_count: int) -> Facet:
    return _facet("OutputStatisticsOutputDatasetFacet", rowCount=row_count)


def data_quality_assertions(assertions: list[dict[str, Any]]) -> Facet:
    return _facet("DataQualityAssertionsDatasetFacet", assertions=assertions)
