"""Classifications that follow the data: pure, from a node's column lineage.

A column classified in dbt meta (``meta.classification: pii``) carries that classification
``declared``. A column computed through a DIRECT edge from a classified column carries it too:

- ``inherited`` when some DIRECT edge passes the value on unmasked (``c.email``,
  ``lower(email)``, ``coalesce(email, '')``);
- ``masked`` when every DIRECT edge from it masks the value (``md5(email)``, ``count(email)``);
  a masked value copied on stays masked.

INDIRECT edges (join keys, filters, conditions) pass nothing on. Each inherited or masked
classification names where it was declared (``sources``), followed back through every node of
the run, so a governance lead sees ``customers.email`` is pii because ``raw_customers.email``
was declared so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from floe_core.events import (
    Classification,
    Column,
    ColumnLineage,
    ColumnRef,
    InputField,
    Relation,
)

__all__ = [
    "DBT_META",
    "DECLARED",
    "FLOE_INHERITED",
    "FLOE_MASKED",
    "INHERITED",
    "MASKED",
    "TAG_SOURCES",
    "declared",
    "propagate",
]

DECLARED, INHERITED, MASKED = "declared", "inherited", "masked"
#: ``source`` of a column-level classification tag in the OpenLineage ``tags`` dataset facet, by
#: origin: the sidecar writes it, the run page (``floe show --html``) reads it back.
DBT_META = "DBT_META"
FLOE_INHERITED = "FLOE_INHERITED"
FLOE_MASKED = "FLOE_MASKED"
TAG_SOURCES = {DECLARED: DBT_META, INHERITED: FLOE_INHERITED, MASKED: FLOE_MASKED}
_ORDER = {DECLARED: 0, INHERITED: 1, MASKED: 2}


def declared(column: Column) -> tuple[Classification, ...]:
    """The column's own classification from dbt meta, as a :class:`Classification`."""
    if not column.classification:
        return ()
    return (Classification(classification=column.classification, origin=DECLARED),)


def propagate(
    columns: Sequence[Column],
    lineage: ColumnLineage | None,
    upstream: Mapping[Relation, Sequence[Column]],
) -> tuple[Column, ...]:
    """``columns`` with ``classifications`` filled: declared, plus inherited and masked ones.

    ``upstream``: the columns of the relations the node reads, with their own
    ``classifications`` (as earlier nodes of the run computed them) or at least their declared
    ``classification``.
    """
    by_relation = {
        relation: {c.name.casefold(): c for c in cols} for relation, cols in upstream.items()
    }
    edges = {f.column.casefold(): f.inputs for f in lineage.columns} if lineage else {}
    out = []
    for column in columns:
        found: dict[tuple[str, str], set[ColumnRef]] = {}
        for item in declared(column):
            found.setdefault((item.classification, DECLARED), set())
        for field in edges.get(column.name.casefold(), ()):
            source = by_relation.get(field.relation, {}).get(field.column.casefold())
            if source is not None:
                _inherit(found, field, source)
        # A value that reaches the column unmasked makes its masked copy redundant.
        for name, origin in list(found):
            if origin == MASKED and (name, INHERITED) in found:
                found[(name, INHERITED)] |= found.pop((name, MASKED))
        classifications = tuple(
            Classification(
                classification=name,
                origin=origin,
                sources=tuple(sorted(refs, key=_ref_key)),
            )
            for (name, origin), refs in sorted(
                found.items(), key=lambda kv: (_ORDER[kv[0][1]], kv[0][0])
            )
        )
        out.append(_with(column, classifications))
    return tuple(out)


def _inherit(
    found: dict[tuple[str, str], set[ColumnRef]], field: InputField, source: Column
) -> None:
    direct = [t for t in field.transformations if t.type == "DIRECT"]
    if not direct:
        return
    unmasked = any(not t.masking for t in direct)
    here = ColumnRef(relation=field.relation, column=source.name)
    for item in source.classifications or declared(source):
        roots = {here} if item.origin == DECLARED else set(item.sources) or {here}
        origin = INHERITED if unmasked and item.origin != MASKED else MASKED
        found.setdefault((item.classification, origin), set()).update(roots)


def _classification_key(item: tuple[tuple[str, str], set[ColumnRef]]) -> tuple[int, str]:
    (name, origin), _ = item
    return (_ORDER[origin], name)


def _ref_key(ref: ColumnRef) -> tuple[str, str, str, str]:
    r = ref.relation
    return (r.database or "", r.schema or "", r.identifier, ref.column)


def _with(column: Column, classifications: tuple[Classification, ...]) -> Column:
    return Column(
        name=column.name,
        data_type=column.data_type,
        description=column.description,
        classification=column.classification,
        tags=column.tags,
        classifications=classifications,
    )
