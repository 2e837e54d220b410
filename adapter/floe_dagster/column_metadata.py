"""A node's columns and column lineage as Dagster metadata: pure, public Dagster API only.

``dagster/column_schema`` (a ``TableSchema`` of the relation's real columns with their warehouse
types, descriptions and classification tags) and ``dagster/column_lineage`` (a
``TableColumnLineage`` whose dependencies name upstream *asset keys*), both built from the same
structs the adapter ships to the sidecar in ``node_finished``. ``TableSchema``, ``TableColumn``
(with ``tags``), ``TableColumnLineage`` and ``TableColumnDep`` are public from dagster 1.9 on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dagster import AssetKey, TableColumn, TableColumnDep, TableColumnLineage, TableSchema

from floe_core.events import Column, ColumnLineage, Relation

__all__ = ["COLUMN_LINEAGE_KEY", "COLUMN_SCHEMA_KEY", "column_metadata"]

COLUMN_SCHEMA_KEY = "dagster/column_schema"
COLUMN_LINEAGE_KEY = "dagster/column_lineage"


def column_metadata(
    columns: Sequence[Column],
    lineage: ColumnLineage | None,
    asset_key_of: Callable[[Relation], AssetKey | None],
) -> dict[str, Any]:
    """The two metadata entries for one materialization (none when nothing is known)."""
    metadata: dict[str, Any] = {}
    if columns:
        metadata[COLUMN_SCHEMA_KEY] = TableSchema(columns=[_column(c) for c in columns])
    if lineage is not None:
        deps: dict[str, list[TableColumnDep]] = {}
        for item in lineage.columns:
            found: list[TableColumnDep] = []
            seen: set[tuple[tuple[str, ...], str]] = set()
            for source in item.inputs:
                key = asset_key_of(source.relation)
                if key is None or (tuple(key.path), source.column) in seen:
                    continue
                seen.add((tuple(key.path), source.column))
                found.append(TableColumnDep(asset_key=key, column_name=source.column))
            if found:
                deps[item.column] = found
        if deps:
            metadata[COLUMN_LINEAGE_KEY] = TableColumnLineage(deps_by_column=deps)
    return metadata


def _column(column: Column) -> TableColumn:
    tags: dict[str, str] = {}
    by_origin: dict[str, list[str]] = {}
    for item in column.classifications:
        by_origin.setdefault(item.origin, []).append(item.classification)
    if column.classification and column.classification not in by_origin.get("declared", []):
        by_origin.setdefault("declared", []).insert(0, column.classification)
    if by_origin.get("declared"):
        tags["classification"] = ",".join(dict.fromkeys(by_origin["declared"]))
    if by_origin.get("inherited"):
        tags["floe/inherited_classification"] = ",".join(dict.fromkeys(by_origin["inherited"]))
    if by_origin.get("masked"):
        tags["floe/masked_classification"] = ",".join(dict.fromkeys(by_origin["masked"]))
    return TableColumn(
        name=column.name,
        type=column.data_type or "unknown",
        description=column.description,
        tags=tags,
    )
