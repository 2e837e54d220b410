"""A finished node's real columns -> the event's ``output_columns`` and ``column_lineage``.

The seam for the warehouse: whatever can ask the warehouse for a relation's columns while dbt
runs (dbt's own adapter, inside the dbt process: DuckDB's file lock allows no other connection)
hands :meth:`RunColumns.describe` the output relation's real columns and, where it has them, the
upstream relations'. Everything else is here, pure apart from the run's memory:

- the real columns get the manifest's descriptions, tags and declared classifications;
- the column lineage comes from the compiled SQL (``floe_core.column_lineage``) against the
  upstream relations' columns: as given, else as an earlier node of this run finished with them,
  else the columns the manifest documents;
- classifications follow it (``floe_core.classification``), and the result is remembered for the
  nodes downstream, so an inherited classification names where it was declared, through the run.

Computed once, here, because Dagster's metadata needs it too; the sidecar only maps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from floe_core.classification import propagate
from floe_core.column_lineage import column_lineage, sql_dialect
from floe_core.events import (
    Column,
    ColumnLineage,
    FieldLineage,
    InputField,
    Node,
    Relation,
    Transformation,
)
from floe_dagster.manifest import ManifestIndex

__all__ = ["CapturedColumns", "ColumnCapture", "RunColumns"]

# Resource types whose relation is worth describing after they run.
_DESCRIBED = frozenset({"model", "seed", "snapshot"})
_IDENTITY = (Transformation(type="DIRECT", subtype="IDENTITY"),)


@dataclass(frozen=True)
class CapturedColumns:
    """What the warehouse says after a node ran: its relation's columns (name, type), in order,
    and those of any upstream relation it was asked about."""

    output: tuple[Column, ...]
    upstream: Mapping[Relation, tuple[Column, ...]] = field(default_factory=dict)


#: Asks the warehouse about a finished node (its relation and upstream relations); None if it
#: cannot. Runs where dbt's connection is; must not raise (a raise is caught and logged once).
ColumnCapture = Callable[[Node], CapturedColumns | None]


class RunColumns:
    """The columns every node of one dbt invocation finished with, and what derives them."""

    def __init__(self, index: ManifestIndex, adapter_type: str | None) -> None:
        self.index = index
        self.dialect = sql_dialect(adapter_type)
        self._known: dict[Relation, tuple[Column, ...]] = {}

    def known(self, relation: Relation) -> tuple[Column, ...] | None:
        return self._known.get(relation)

    def upstream_columns(
        self, node: Node, given: Mapping[Relation, Sequence[Column]] | None = None
    ) -> dict[Relation, tuple[Column, ...]]:
        """Each upstream relation's columns: given > finished earlier in the run > documented."""
        given = given or {}
        out: dict[Relation, tuple[Column, ...]] = {}
        ids = node.upstream_ids if len(node.upstream_ids) == len(node.upstream) else ()
        for position, relation in enumerate(node.upstream):
            known = self._known.get(relation)
            if relation in given:
                # The warehouse's names and types; what the run derived (classifications
                # followed back to where they were declared), else what the manifest documents.
                documented = known or self._documented(ids[position] if ids else None)
                out[relation] = _merge_docs(tuple(given[relation]), documented)
            elif known is not None:
                out[relation] = known
            else:
                out[relation] = self._documented(ids[position] if ids else None)
        return out

    def describe(
        self,
        node: Node,
        compiled_sql: str | None,
        captured: CapturedColumns,
    ) -> tuple[tuple[Column, ...], ColumnLineage | None]:
        """The node's output columns (typed, documented, classified) and its column lineage."""
        columns = _merge_docs(captured.output, node.columns)
        upstream = self.upstream_columns(node, captured.upstream)
        lineage: ColumnLineage | None = None
        if node.resource_type == "seed" or node.resource_type not in _DESCRIBED:
            lineage = None
        elif compiled_sql:
            lineage = column_lineage(
                compiled_sql,
                dialect=self.dialect,
                upstream=upstream,
                output_columns=columns,
                default_relation=node.relation,
            )
        elif node.resource_type == "snapshot" and len(upstream) == 1:
            lineage = _snapshot_lineage(columns, upstream)
        described = propagate(columns, lineage, upstream)
        if node.relation is not None:
            self._known[node.relation] = described
        return described, lineage

    def _documented(self, unique_id: str | None) -> tuple[Column, ...]:
        node = self.index.node(unique_id) if unique_id else None
        return node.columns if node is not None else ()


def _merge_docs(real: tuple[Column, ...], documented: Sequence[Column]) -> tuple[Column, ...]:
    """Real columns (names and types from the warehouse) with the manifest's documentation."""
    docs = {c.name.casefold(): c for c in documented}
    out = []
    for column in real:
        doc = docs.get(column.name.casefold())
        if doc is None:
            out.append(column)
            continue
        out.append(
            Column(
                name=column.name,
                data_type=column.data_type or doc.data_type,
                description=column.description or doc.description,
                classification=column.classification or doc.classification,
                tags=column.tags or doc.tags,
                classifications=column.classifications or doc.classifications,
            )
        )
    return tuple(out)


def _snapshot_lineage(
    columns: Sequence[Column], upstream: Mapping[Relation, Sequence[Column]]
) -> ColumnLineage:
    """A YAML snapshot (no compiled SQL) copies its relation; dbt adds its ``dbt_*`` columns."""
    [(relation, source)] = upstream.items()
    names = {c.name.casefold(): c.name for c in source}
    return ColumnLineage(
        columns=tuple(
            FieldLineage(
                column=c.name,
                inputs=(
                    (InputField(relation=relation, column=names[key], transformations=_IDENTITY),)
                    if (key := c.name.casefold()) in names
                    else ()
                ),
            )
            for c in columns
        )
    )
