"""The truth for examples/shop, written by hand: every seed's, model's and the snapshot's real
columns with the types DuckDB and PostgreSQL report, their column lineage (edges and types, in the
notation of ``column_lineage_corpus``) and the classifications each column must carry.

``tests/test_column_lineage_shop.py`` checks it against real dbt builds on both warehouses; the
sidecar tests build their column-carrying events from it; ``tests/test_column_lineage_runs.py``
and ``bench/column_lineage_dbt_ol.py`` score real runs' ``columnLineage`` facets against it
(:func:`facet_edges`, :func:`truth_edges`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SHOP", "FacetEdges", "ShopNode", "facet_edges", "truth_edges"]

#: (per-field edges (output, input table, input column, code), dataset-wide (table, column,
#: subtype)), names casefolded; codes as in ``column_lineage_corpus``.
FacetEdges = tuple[set[tuple[str, str, str, str]], set[tuple[str, str, str]]]

_CODES = {
    ("DIRECT", "IDENTITY"): "I",
    ("DIRECT", "TRANSFORMATION"): "T",
    ("DIRECT", "AGGREGATION"): "A",
    ("INDIRECT", "CONDITIONAL"): "COND",
    ("INDIRECT", "WINDOW"): "WINDOW",
}


@dataclass(frozen=True)
class ShopNode:
    unique_id: str
    identifier: str
    schema_suffix: str  # "" (models), "_raw" (seeds), "_web" (the source)
    # (name, DuckDB type, PostgreSQL type), in the relation's order
    columns: list[tuple[str, str, str]]
    fields: dict[str, list[str]] = field(default_factory=dict)
    dataset: list[str] = field(default_factory=list)
    # column -> [(classification, origin, ["<table>.<column>" it was declared on])]
    classifications: dict[str, list[tuple[str, str, list[str]]]] = field(default_factory=dict)


INT = ("INTEGER", "integer")
BIGINT = ("BIGINT", "bigint")
TEXT = ("VARCHAR", "text")
DATE = ("DATE", "date")
DOUBLE = ("DOUBLE", "numeric")
TIMESTAMP = ("TIMESTAMP", "timestamp without time zone")


def cols(*spec: tuple[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(name, duckdb, postgres) for name, (duckdb, postgres) in spec]


SHOP: list[ShopNode] = [
    ShopNode(
        "seed.shop.raw_customers",
        "raw_customers",
        "_raw",
        cols(("id", INT), ("first_name", TEXT), ("last_name", TEXT), ("email", TEXT)),
        classifications={"email": [("pii", "declared", [])]},
    ),
    ShopNode(
        "seed.shop.raw_orders",
        "raw_orders",
        "_raw",
        cols(("id", INT), ("customer_id", INT), ("order_date", DATE), ("status", TEXT)),
    ),
    ShopNode(
        "seed.shop.raw_payments",
        "raw_payments",
        "_raw",
        cols(("id", INT), ("order_id", INT), ("payment_method", TEXT), ("amount_cents", INT)),
    ),
    # The source web.events is loaded by another tool (the example's on-run-start hook); its
    # columns come from the warehouse as they are (occurred_at is text there).
    ShopNode(
        "source.shop.web.events",
        "events",
        "_web",
        cols(("event_id", INT), ("customer_id", INT), ("event_type", TEXT), ("occurred_at", TEXT)),
    ),
    ShopNode(
        "model.shop.stg_customers",
        "stg_customers",
        "",
        cols(("customer_id", INT), ("first_name", TEXT), ("last_name", TEXT), ("email", TEXT)),
        fields={
            "customer_id": ["raw_customers.id I"],
            "first_name": ["raw_customers.first_name I"],
            "last_name": ["raw_customers.last_name I"],
            "email": ["raw_customers.email I"],
        },
        classifications={
            "email": [("pii", "declared", []), ("pii", "inherited", ["raw_customers.email"])]
        },
    ),
    ShopNode(
        "model.shop.stg_orders",
        "stg_orders",
        "",
        cols(("order_id", INT), ("customer_id", INT), ("order_date", DATE), ("status", TEXT)),
        fields={
            "order_id": ["raw_orders.id I"],
            "customer_id": ["raw_orders.customer_id I"],
            "order_date": ["raw_orders.order_date T"],
            "status": ["raw_orders.status I"],
        },
    ),
    ShopNode(
        "model.shop.stg_payments",
        "stg_payments",
        "",
        cols(("payment_id", INT), ("order_id", INT), ("payment_method", TEXT), ("amount", DOUBLE)),
        fields={
            "payment_id": ["raw_payments.id I"],
            "order_id": ["raw_payments.order_id I"],
            "payment_method": ["raw_payments.payment_method I"],
            "amount": ["raw_payments.amount_cents T"],
        },
    ),
    ShopNode(
        "model.shop.stg_web_events",
        "stg_web_events",
        "",
        cols(
            ("event_id", INT),
            ("customer_id", INT),
            ("event_type", TEXT),
            ("occurred_at", TIMESTAMP),
        ),
        fields={
            "event_id": ["events.event_id I"],
            "customer_id": ["events.customer_id I"],
            "event_type": ["events.event_type I"],
            "occurred_at": ["events.occurred_at T"],
        },
    ),
    ShopNode(
        "model.shop.orders",
        "orders",
        "",
        cols(
            ("order_id", INT),
            ("customer_id", INT),
            ("order_date", DATE),
            ("status", TEXT),
            ("amount", DOUBLE),
            ("payment_count", BIGINT),
        ),
        fields={
            "order_id": ["stg_orders.order_id I"],
            "customer_id": ["stg_orders.customer_id I"],
            "order_date": ["stg_orders.order_date I"],
            "status": ["stg_orders.status I"],
            "amount": ["stg_payments.amount A"],
            "payment_count": [],
        },
        dataset=[
            "stg_orders.order_id JOIN",
            "stg_payments.order_id JOIN",
            "stg_payments.order_id GROUP_BY",
        ],
    ),
    ShopNode(
        "snapshot.shop.orders_snapshot",
        "orders_snapshot",
        "",
        cols(
            ("order_id", INT),
            ("customer_id", INT),
            ("order_date", DATE),
            ("status", TEXT),
            ("dbt_scd_id", TEXT),
            ("dbt_updated_at", TIMESTAMP),
            ("dbt_valid_from", TIMESTAMP),
            ("dbt_valid_to", TIMESTAMP),
        ),
        fields={
            "order_id": ["stg_orders.order_id I"],
            "customer_id": ["stg_orders.customer_id I"],
            "order_date": ["stg_orders.order_date I"],
            "status": ["stg_orders.status I"],
            "dbt_scd_id": [],
            "dbt_updated_at": [],
            "dbt_valid_from": [],
            "dbt_valid_to": [],
        },
    ),
    ShopNode(
        "model.shop.customers",
        "customers",
        "",
        cols(
            ("customer_id", INT),
            ("first_name", TEXT),
            ("email", TEXT),
            ("order_count", BIGINT),
            ("lifetime_value", DOUBLE),
            ("first_order_date", DATE),
            ("web_event_count", BIGINT),
        ),
        fields={
            "customer_id": ["stg_customers.customer_id I"],
            "first_name": ["stg_customers.first_name I"],
            "email": ["stg_customers.email I"],
            "order_count": [],
            "lifetime_value": ["orders.amount A"],
            "first_order_date": ["orders.order_date A"],
            "web_event_count": [],
        },
        dataset=[
            "orders.customer_id GROUP_BY",
            "orders.customer_id JOIN",
            "stg_web_events.customer_id GROUP_BY",
            "stg_web_events.customer_id JOIN",
            "stg_customers.customer_id JOIN",
        ],
        classifications={
            "email": [
                ("pii", "declared", []),
                ("pii", "inherited", ["raw_customers.email", "stg_customers.email"]),
            ],
            "lifetime_value": [("confidential", "declared", [])],
        },
    ),
]


def truth_edges(node: ShopNode) -> FacetEdges:
    """The hand-written edges of one node, in :data:`FacetEdges` form."""
    fields = set()
    for output, edges in node.fields.items():
        for edge in edges:
            source, code = edge.split()
            table, column = source.split(".")
            fields.add((output.casefold(), table.casefold(), column.casefold(), code))
    dataset = set()
    for edge in node.dataset:
        source, subtype = edge.split()
        table, column = source.split(".")
        dataset.add((table.casefold(), column.casefold(), subtype))
    return fields, dataset


def facet_edges(facet: dict[str, Any]) -> FacetEdges:
    """The edges of an OpenLineage ``columnLineage`` facet, the input table being the last part
    of its dataset name. An input field without transformations (dbt-ol's) has the code ``?``."""
    fields = set()
    for output, info in (facet.get("fields") or {}).items():
        for source in info.get("inputFields") or ():
            table = str(source["name"]).rsplit(".", 1)[-1].casefold()
            column = str(source["field"]).casefold()
            for code in _codes(source) or ["?"]:
                fields.add((output.casefold(), table, column, code))
    dataset = {
        (str(s["name"]).rsplit(".", 1)[-1].casefold(), str(s["field"]).casefold(), t["subtype"])
        for s in facet.get("dataset") or ()
        for t in s.get("transformations") or ()
    }
    return fields, dataset


def _codes(source: dict[str, Any]) -> list[str]:
    out = []
    for t in source.get("transformations") or ():
        code = _CODES.get((t.get("type"), t.get("subtype")), f"{t.get('type')}:{t.get('subtype')}")
        out.append(code + ("M" if t.get("masking") else ""))
    return out
