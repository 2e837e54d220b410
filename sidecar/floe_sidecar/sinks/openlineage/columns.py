"""A node's columns as OpenLineage facets: schema, columnLineage, classifications. Pure.

The adapter computes the column lineage and the classifications once (it needs them for Dagster's
metadata too) and ships them in ``node_finished``; this module only maps them:

- ``schema``: the output relation's real columns with their warehouse types and dbt
  descriptions (``node_finished.output_columns``); before the adapter could ask the warehouse,
  the documented columns from the manifest, as before.
- ``columnLineage`` (1-2-0): per output column its input fields, named exactly as the event's
  ``inputs`` name their datasets, and the dataset-wide INDIRECT inputs. A field the ``schema``
  facet does not list, or an input dataset the event does not list, is left out and reported in
  the ``extractionError`` run facet with whatever the adapter could not resolve (Marquez rejects
  lineage to fields a schema lacks).
- classifications: declared ones stay column-level ``tags`` with source ``DBT_META``; inherited
  and masked ones add ``FLOE_INHERITED`` / ``FLOE_MASKED`` tags; the ``floe_classifications``
  facet lists them all with the columns they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from floe_core.classification import declared
from floe_core.events import Column, ColumnLineage, InputField, Node, NodeFinished
from floe_sidecar.sinks.openlineage import facets
from floe_sidecar.sinks.openlineage.naming import dataset_name

__all__ = ["OutputColumns", "output_columns"]


class OutputColumns:
    """The column facets of one output dataset, and what column lineage had to leave out."""

    def __init__(self) -> None:
        self.facets: dict[str, Any] = {}
        self.tags: list[dict[str, str]] = []
        self.errors: list[str] = []


def output_columns(
    node: Node, finished: NodeFinished | None, namespace: str, input_names: Iterable[str]
) -> OutputColumns:
    result = OutputColumns()
    real = finished.output_columns if finished is not None else ()
    columns: Sequence[Column] = real or node.columns
    if columns:
        result.facets["schema"] = facets.schema([_field(c) for c in columns])
    # Declared classifications and dbt column tags: from the manifest, as they always were.
    for column in node.columns:
        result.tags.extend(facets.column_tags(column.name, column.tags, column.classification))
    classified: dict[str, list[dict[str, Any]]] = {}
    for column in columns:
        items = column.classifications or declared(column)
        for item in items:
            entry = {
                "classification": item.classification,
                "origin": item.origin,
                "from": [
                    {
                        "namespace": namespace,
                        "name": dataset_name(ref.relation),
                        "field": ref.column,
                    }
                    for ref in item.sources
                ],
            }
            classified.setdefault(column.name, []).append(entry)
            if item.origin != "declared":
                result.tags.append(
                    {
                        "key": "classification",
                        "value": item.classification,
                        "source": facets.CLASSIFICATION_TAG_SOURCES[item.origin],
                        "field": column.name,
                    }
                )
    if classified:
        result.facets[facets.FLOE_CLASSIFICATIONS_FACET] = facets.floe_classifications(classified)
    lineage = finished.column_lineage if finished is not None else None
    if lineage is not None:
        _lineage(result, lineage, {c.name for c in columns}, namespace, set(input_names))
    return result


def _field(column: Column) -> dict[str, str]:
    field = {"name": column.name}
    if column.data_type:
        field["type"] = column.data_type
    if column.description:
        field["description"] = column.description
    return field


def _lineage(
    result: OutputColumns,
    lineage: ColumnLineage,
    schema_fields: set[str],
    namespace: str,
    input_names: set[str],
) -> None:
    result.errors.extend(lineage.errors)
    fields: dict[str, Any] = {}
    for item in lineage.columns:
        if not item.inputs:
            continue
        if item.column not in schema_fields:
            result.errors.append(
                f"column lineage of {item.column!r} left out: the schema facet does not list it"
            )
            continue
        inputs = _input_fields(result, item.inputs, namespace, input_names)
        if inputs:
            fields[item.column] = {"inputFields": inputs}
    dataset = _input_fields(result, lineage.dataset, namespace, input_names)
    if fields or dataset:
        result.facets["columnLineage"] = facets.column_lineage(fields, dataset)


def _input_fields(
    result: OutputColumns,
    inputs: Sequence[InputField],
    namespace: str,
    input_names: set[str],
) -> list[dict[str, Any]]:
    out = []
    for item in inputs:
        name = dataset_name(item.relation)
        if name not in input_names:
            result.errors.append(f"column lineage from {name} left out: not an input of the run")
            continue
        out.append(
            {
                "namespace": namespace,
                "name": name,
                "field": item.column,
                "transformations": [
                    {"type": t.type, "subtype": t.subtype, "masking": t.masking}
                    for t in item.transformations
                ],
            }
        )
    return out
