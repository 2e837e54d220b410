"""The column-lineage corpus: SQL cases with hand-written expected edges and transformation types.

Tests (``tests/test_column_lineage.py``) and the bench (``bench/column_lineage_bench.py``) both use
it. Each case is one compiled model as dbt would write it for its target, the columns of what it
reads, and the truth written by hand:

- ``fields``: output column -> its input edges, each ``"<table>.<column> <code>"``, one per
  transformation; codes: ``I`` DIRECT IDENTITY, ``T`` DIRECT TRANSFORMATION, ``A`` DIRECT
  AGGREGATION (a trailing ``M``: masking), ``COND`` INDIRECT CONDITIONAL, ``WINDOW`` INDIRECT
  WINDOW. An output column with no input (a literal, ``count(*)``) maps to ``[]``.
- ``dataset``: the dataset-wide INDIRECT inputs, ``"<table>.<column> <JOIN|FILTER|GROUP_BY|SORT>"``.

``<table>`` is the relation's identifier (unique within a case); names compare case-insensitively
(Snowflake reports unquoted names in upper case).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from floe_core.column_lineage import column_lineage
from floe_core.events import Column, ColumnLineage, Relation

__all__ = ["CASES", "Case", "Edge", "actual_edges", "expected_edges", "run_case", "upstream_of"]

#: (output column, input table, input column, code); names casefolded.
Edge = tuple[str, str, str, str]

_CODES = {
    ("DIRECT", "IDENTITY"): "I",
    ("DIRECT", "TRANSFORMATION"): "T",
    ("DIRECT", "AGGREGATION"): "A",
    ("INDIRECT", "CONDITIONAL"): "COND",
    ("INDIRECT", "WINDOW"): "WINDOW",
}


@dataclass(frozen=True)
class Case:
    name: str
    dialect: str
    sql: str
    tables: Mapping[str, str]  # "database.schema.table" -> "column column ..."
    fields: Mapping[str, list[str]]
    dataset: list[str] = field(default_factory=list)
    #: what the case shows, for the bench's table
    feature: str = ""


def upstream_of(case: Case) -> dict[Relation, tuple[Column, ...]]:
    upstream: dict[Relation, tuple[Column, ...]] = {}
    for dotted, columns in case.tables.items():
        database, schema, identifier = dotted.split(".")
        relation = Relation(database=database, schema=schema, identifier=identifier)
        upstream[relation] = tuple(Column(name=name) for name in columns.split())
    return upstream


def run_case(case: Case) -> ColumnLineage:
    return column_lineage(case.sql, dialect=case.dialect, upstream=upstream_of(case))


def expected_edges(case: Case) -> tuple[set[Edge], set[tuple[str, str, str]]]:
    """(per-field edges with codes, dataset-wide (table, column, subtype))."""
    fields = set()
    for output, edges in case.fields.items():
        for edge in edges:
            source, code = edge.split()
            table, column = source.split(".")
            fields.add((output.casefold(), table.casefold(), column.casefold(), code))
    dataset = set()
    for edge in case.dataset:
        source, subtype = edge.split()
        table, column = source.split(".")
        dataset.add((table.casefold(), column.casefold(), subtype))
    return fields, dataset


def actual_edges(lineage: ColumnLineage) -> tuple[set[Edge], set[tuple[str, str, str]]]:
    fields = set()
    for item in lineage.columns:
        for source in item.inputs:
            for t in source.transformations:
                code = _CODES.get((t.type, t.subtype), f"{t.type}:{t.subtype}")
                if t.masking:
                    code += "M"
                fields.add(
                    (
                        item.column.casefold(),
                        source.relation.identifier.casefold(),
                        source.column.casefold(),
                        code,
                    )
                )
    dataset = {
        (source.relation.identifier.casefold(), source.column.casefold(), t.subtype)
        for source in lineage.dataset
        for t in source.transformations
    }
    return fields, dataset


ORDERS = "id customer_id amount status ordered_at"
CUSTOMERS = "id first_name last_name email"
PAYMENTS = "id order_id method amount"

CASES: list[Case] = [
    # --- plain projections and aliases ------------------------------------------------------------
    Case(
        "identity_columns",
        "duckdb",
        'select id, email from "shop"."main"."customers"',
        {"shop.main.customers": CUSTOMERS},
        {"id": ["customers.id I"], "email": ["customers.email I"]},
        feature="plain columns",
    ),
    Case(
        "aliases",
        "duckdb",
        "select c.id as customer_id, c.first_name as given_name "
        'from "shop"."main"."customers" as c',
        {"shop.main.customers": CUSTOMERS},
        {"customer_id": ["customers.id I"], "given_name": ["customers.first_name I"]},
        feature="aliases",
    ),
    Case(
        "literals_and_functions_without_input",
        "duckdb",
        "select id, 'crm' as source, current_timestamp as loaded_at, 1 as version "
        'from "shop"."main"."customers"',
        {"shop.main.customers": CUSTOMERS},
        {"id": ["customers.id I"], "source": [], "loaded_at": [], "version": []},
        feature="literals",
    ),
    Case(
        "arithmetic_and_cast",
        "duckdb",
        "select id as payment_id, amount / 100.0 as amount, cast(order_id as varchar) as order_key "
        'from "shop"."main"."payments"',
        {"shop.main.payments": PAYMENTS},
        {
            "payment_id": ["payments.id I"],
            "amount": ["payments.amount T"],
            "order_key": ["payments.order_id T"],
        },
        feature="arithmetic, cast",
    ),
    # --- select * through CTEs --------------------------------------------------------------------
    Case(
        "star_one_table",
        "duckdb",
        'select * from "shop"."main"."customers"',
        {"shop.main.customers": CUSTOMERS},
        {c: [f"customers.{c} I"] for c in CUSTOMERS.split()},
        feature="select *",
    ),
    Case(
        "star_through_cte",
        "duckdb",
        'with source as (select * from "shop"."main"."customers") select * from source',
        {"shop.main.customers": CUSTOMERS},
        {c: [f"customers.{c} I"] for c in CUSTOMERS.split()},
        feature="select * through a CTE",
    ),
    Case(
        "star_through_cte_chain_renamed",
        "duckdb",
        """
        with source as (select * from "shop"."main"."payments"),
        renamed as (select id as payment_id, order_id, amount * 100 as cents from source),
        final as (select * from renamed)
        select * from final
        """,
        {"shop.main.payments": PAYMENTS},
        {
            "payment_id": ["payments.id I"],
            "order_id": ["payments.order_id I"],
            "cents": ["payments.amount T"],
        },
        feature="select * through a CTE chain",
    ),
    Case(
        "qualified_star_and_join",
        "duckdb",
        'select o.*, c.email from "shop"."main"."orders" as o '
        'join "shop"."main"."customers" as c on c.id = o.customer_id',
        {"shop.main.orders": ORDERS, "shop.main.customers": CUSTOMERS},
        {**{c: [f"orders.{c} I"] for c in ORDERS.split()}, "email": ["customers.email I"]},
        ["customers.id JOIN", "orders.customer_id JOIN"],
        feature="t.* and join keys",
    ),
    Case(
        "cte_star_joined_twice",
        "duckdb",
        """
        with c as (select * from "shop"."main"."customers")
        select a.id, b.email as referrer_email
        from c as a left join c as b on b.id = a.id + 1
        """,
        {"shop.main.customers": CUSTOMERS},
        {"id": ["customers.id I"], "referrer_email": ["customers.email I"]},
        ["customers.id JOIN"],
        feature="one CTE read twice",
    ),
    # --- joins ------------------------------------------------------------------------------------
    Case(
        "join_using_star",
        "duckdb",
        'select * from "shop"."main"."orders" join "shop"."main"."payments" using (id)',
        {"shop.main.orders": "id customer_id status", "shop.main.payments": "id method amount"},
        {
            "id": ["orders.id I", "payments.id I"],
            "customer_id": ["orders.customer_id I"],
            "status": ["orders.status I"],
            "method": ["payments.method I"],
            "amount": ["payments.amount I"],
        },
        ["orders.id JOIN", "payments.id JOIN"],
        feature="join using, select *",
    ),
    Case(
        "join_using_columns",
        "postgres",
        'select order_id, o.status, p.method from "shop"."public"."orders" o '
        'join "shop"."public"."payments" p using (order_id)',
        {"shop.public.orders": "order_id status", "shop.public.payments": "order_id method"},
        {
            "order_id": ["orders.order_id I", "payments.order_id I"],
            "status": ["orders.status I"],
            "method": ["payments.method I"],
        },
        ["orders.order_id JOIN", "payments.order_id JOIN"],
        feature="join using, named columns",
    ),
    Case(
        "left_join_coalesce",
        "duckdb",
        """
        select o.id as order_id, coalesce(p.amount, 0) as amount
        from "shop"."main"."orders" as o
        left join "shop"."main"."payments" as p on p.order_id = o.id
        """,
        {"shop.main.orders": ORDERS, "shop.main.payments": PAYMENTS},
        {"order_id": ["orders.id I"], "amount": ["payments.amount T"]},
        ["orders.id JOIN", "payments.order_id JOIN"],
        feature="left join, coalesce",
    ),
    Case(
        "three_way_join_with_filter_in_on",
        "postgres",
        """
        select c.email, o.id as order_id, p.method
        from "shop"."public"."customers" c
        join "shop"."public"."orders" o on o.customer_id = c.id and o.status <> 'returned'
        join "shop"."public"."payments" p on p.order_id = o.id
        """,
        {
            "shop.public.customers": CUSTOMERS,
            "shop.public.orders": ORDERS,
            "shop.public.payments": PAYMENTS,
        },
        {
            "email": ["customers.email I"],
            "order_id": ["orders.id I"],
            "method": ["payments.method I"],
        },
        [
            "orders.customer_id JOIN",
            "customers.id JOIN",
            "orders.status JOIN",
            "payments.order_id JOIN",
            "orders.id JOIN",
        ],
        feature="joins, condition in ON",
    ),
    # --- set operations ---------------------------------------------------------------------------
    Case(
        "union_all",
        "duckdb",
        'select id, email from "shop"."main"."customers" '
        'union all select id, email from "shop"."main"."leads"',
        {"shop.main.customers": CUSTOMERS, "shop.main.leads": "id email source"},
        {"id": ["customers.id I", "leads.id I"], "email": ["customers.email I", "leads.email I"]},
        feature="union all",
    ),
    Case(
        "union_star_through_ctes",
        "duckdb",
        """
        with a as (select * from "shop"."main"."orders_2023"),
        b as (select * from "shop"."main"."orders_2024")
        select * from a union select * from b
        """,
        {"shop.main.orders_2023": "id amount", "shop.main.orders_2024": "id amount"},
        {
            "id": ["orders_2023.id I", "orders_2024.id I"],
            "amount": ["orders_2023.amount I", "orders_2024.amount I"],
        },
        feature="union of select * CTEs",
    ),
    Case(
        "union_by_position",
        "postgres",
        'select id as key, email as contact from "shop"."public"."customers" '
        'union all select lead_id, lower(address) from "shop"."public"."leads"',
        {"shop.public.customers": CUSTOMERS, "shop.public.leads": "lead_id address"},
        {
            "key": ["customers.id I", "leads.lead_id I"],
            "contact": ["customers.email I", "leads.address T"],
        },
        feature="union by position",
    ),
    # --- subqueries -------------------------------------------------------------------------------
    Case(
        "derived_table",
        "duckdb",
        """
        select s.customer_id, s.total
        from (select customer_id, sum(amount) as total from "shop"."main"."orders"
              group by customer_id) as s
        """,
        {"shop.main.orders": ORDERS},
        {"customer_id": ["orders.customer_id I"], "total": ["orders.amount A"]},
        ["orders.customer_id GROUP_BY"],
        feature="subquery in FROM",
    ),
    Case(
        "scalar_subquery_correlated",
        "postgres",
        """
        select c.id,
               (select max(o.amount) from "shop"."public"."orders" o
                where o.customer_id = c.id) as biggest_order
        from "shop"."public"."customers" c
        """,
        {"shop.public.customers": CUSTOMERS, "shop.public.orders": ORDERS},
        {"id": ["customers.id I"], "biggest_order": ["orders.amount A"]},
        ["orders.customer_id FILTER", "customers.id FILTER"],
        feature="correlated scalar subquery",
    ),
    Case(
        "in_subquery",
        "duckdb",
        """
        select id, email from "shop"."main"."customers"
        where id in (select customer_id from "shop"."main"."orders" where amount > 100)
        """,
        {"shop.main.customers": CUSTOMERS, "shop.main.orders": ORDERS},
        {"id": ["customers.id I"], "email": ["customers.email I"]},
        ["customers.id FILTER", "orders.customer_id FILTER", "orders.amount FILTER"],
        feature="IN subquery",
    ),
    Case(
        "exists_subquery",
        "postgres",
        """
        select c.email from "shop"."public"."customers" c
        where exists (select 1 from "shop"."public"."orders" o where o.customer_id = c.id)
        """,
        {"shop.public.customers": CUSTOMERS, "shop.public.orders": ORDERS},
        {"email": ["customers.email I"]},
        ["orders.customer_id FILTER", "customers.id FILTER"],
        feature="EXISTS subquery",
    ),
    # --- aggregates, filters, sort ----------------------------------------------------------------
    Case(
        "aggregates_group_by",
        "duckdb",
        """
        select customer_id, count(*) as order_count, sum(amount) as total,
               avg(amount) as mean, min(ordered_at) as first_ordered_at
        from "shop"."main"."orders" group by customer_id
        """,
        {"shop.main.orders": ORDERS},
        {
            "customer_id": ["orders.customer_id I"],
            "order_count": [],
            "total": ["orders.amount A"],
            "mean": ["orders.amount A"],
            "first_ordered_at": ["orders.ordered_at A"],
        },
        ["orders.customer_id GROUP_BY"],
        feature="aggregates, group by",
    ),
    Case(
        "count_distinct_masks",
        "postgres",
        'select status, count(distinct customer_id) as customers from "shop"."public"."orders" '
        "group by 1",
        {"shop.public.orders": ORDERS},
        {"status": ["orders.status I"], "customers": ["orders.customer_id AM"]},
        ["orders.status GROUP_BY"],
        feature="count distinct (masking), group by ordinal",
    ),
    Case(
        "having",
        "duckdb",
        """
        select customer_id, sum(amount) as total from "shop"."main"."orders"
        group by customer_id having sum(amount) > 100
        """,
        {"shop.main.orders": ORDERS},
        {"customer_id": ["orders.customer_id I"], "total": ["orders.amount A"]},
        ["orders.customer_id GROUP_BY", "orders.amount FILTER"],
        feature="having",
    ),
    Case(
        "where_and_order_by",
        "duckdb",
        """
        select id, amount from "shop"."main"."orders"
        where status = 'completed' and ordered_at >= '2024-01-01' order by ordered_at desc
        """,
        {"shop.main.orders": ORDERS},
        {"id": ["orders.id I"], "amount": ["orders.amount I"]},
        ["orders.status FILTER", "orders.ordered_at FILTER", "orders.ordered_at SORT"],
        feature="where, order by",
    ),
    Case(
        "order_by_output_alias",
        "duckdb",
        'select id, amount * 2 as doubled from "shop"."main"."orders" order by doubled',
        {"shop.main.orders": ORDERS},
        {"id": ["orders.id I"], "doubled": ["orders.amount T"]},
        ["orders.amount SORT"],
        feature="order by an output alias",
    ),
    Case(
        "aggregate_then_transform_through_ctes",
        "duckdb",
        """
        with totals as (
            select customer_id, sum(amount) as total from "shop"."main"."orders" group by 1
        ),
        taxed as (select customer_id, round(total * 1.2, 2) as total_with_tax from totals)
        select * from taxed
        """,
        {"shop.main.orders": ORDERS},
        {"customer_id": ["orders.customer_id I"], "total_with_tax": ["orders.amount A"]},
        ["orders.customer_id GROUP_BY"],
        feature="aggregation survives a later transformation",
    ),
    Case(
        "group_by_all",
        "duckdb",
        'select status, sum(amount) as total from "shop"."main"."orders" group by all',
        {"shop.main.orders": ORDERS},
        {"status": ["orders.status I"], "total": ["orders.amount A"]},
        ["orders.status GROUP_BY"],
        feature="DuckDB group by all",
    ),
    # --- window functions -------------------------------------------------------------------------
    Case(
        "row_number_window",
        "duckdb",
        """
        select id, row_number() over (partition by customer_id order by ordered_at) as order_seq
        from "shop"."main"."orders"
        """,
        {"shop.main.orders": ORDERS},
        {
            "id": ["orders.id I"],
            "order_seq": ["orders.customer_id WINDOW", "orders.ordered_at WINDOW"],
        },
        feature="row_number() over",
    ),
    Case(
        "running_total_window",
        "postgres",
        """
        select id, sum(amount) over (partition by customer_id order by ordered_at
                                     rows between unbounded preceding and current row) as running
        from "shop"."public"."orders"
        """,
        {"shop.public.orders": ORDERS},
        {
            "id": ["orders.id I"],
            "running": [
                "orders.amount A",
                "orders.customer_id WINDOW",
                "orders.ordered_at WINDOW",
            ],
        },
        feature="window aggregate with frame",
    ),
    Case(
        "lag_window",
        "snowflake",
        """
        select id, lag(status) over (partition by customer_id order by ordered_at) as prev_status
        from analytics.dbt.orders
        """,
        {"analytics.dbt.orders": ORDERS},
        {
            "id": ["orders.id I"],
            "prev_status": [
                "orders.status T",
                "orders.customer_id WINDOW",
                "orders.ordered_at WINDOW",
            ],
        },
        feature="lag() over",
    ),
    # --- case / if --------------------------------------------------------------------------------
    Case(
        "case_when",
        "duckdb",
        """
        select id, case when status = 'returned' then 0 else amount end as net_amount
        from "shop"."main"."orders"
        """,
        {"shop.main.orders": ORDERS},
        {"id": ["orders.id I"], "net_amount": ["orders.amount T", "orders.status COND"]},
        feature="case when",
    ),
    Case(
        "simple_case",
        "postgres",
        """
        select id, case status when 'completed' then 'done' else 'open' end as state
        from "shop"."public"."orders"
        """,
        {"shop.public.orders": ORDERS},
        {"id": ["orders.id I"], "state": ["orders.status COND"]},
        feature="case <x> when",
    ),
    Case(
        "snowflake_iff",
        "snowflake",
        "select id, iff(amount > 100, 'large', 'small') as size from analytics.dbt.orders",
        {"analytics.dbt.orders": ORDERS},
        {"id": ["orders.id I"], "size": ["orders.amount COND"]},
        feature="Snowflake iff",
    ),
    # --- masking ----------------------------------------------------------------------------------
    Case(
        "md5_masks",
        "duckdb",
        'select id, md5(email) as email_hash from "shop"."main"."customers"',
        {"shop.main.customers": CUSTOMERS},
        {"id": ["customers.id I"], "email_hash": ["customers.email TM"]},
        feature="md5 (masking)",
    ),
    Case(
        "sha256_of_expression",
        "duckdb",
        """
        select sha256(lower(trim(email))) as email_key,
               first_name || ' ' || last_name as full_name
        from "shop"."main"."customers"
        """,
        {"shop.main.customers": CUSTOMERS},
        {
            "email_key": ["customers.email TM"],
            "full_name": ["customers.first_name T", "customers.last_name T"],
        },
        feature="sha256 of an expression",
    ),
    Case(
        "snowflake_sha2_and_hash",
        "snowflake",
        "select sha2(email, 256) as email_sha, hash(first_name, last_name) as name_hash "
        "from analytics.dbt.customers",
        {"analytics.dbt.customers": CUSTOMERS},
        {
            "email_sha": ["customers.email TM"],
            "name_hash": ["customers.first_name TM", "customers.last_name TM"],
        },
        feature="Snowflake sha2, hash",
    ),
    Case(
        "bigquery_farm_fingerprint",
        "bigquery",
        "select farm_fingerprint(email) as email_fp, to_hex(sha256(email)) as email_sha, "
        "safe_cast(id as string) as id_text from `proj.shop.customers`",
        {"proj.shop.customers": CUSTOMERS},
        {
            "email_fp": ["customers.email TM"],
            "email_sha": ["customers.email TM"],
            "id_text": ["customers.id T"],
        },
        feature="BigQuery farm_fingerprint, sha256, safe_cast",
    ),
    # --- struct and JSON --------------------------------------------------------------------------
    Case(
        "duckdb_struct_field",
        "duckdb",
        'select c.id, c.address.city as city, address.zip as zip from "shop"."main"."people" as c',
        {"shop.main.people": "id address"},
        {"id": ["people.id I"], "city": ["people.address T"], "zip": ["people.address T"]},
        feature="DuckDB struct fields",
    ),
    Case(
        "postgres_json_operators",
        "postgres",
        """
        select id, payload ->> 'type' as event_type,
               (payload -> 'user' ->> 'email') as user_email
        from "shop"."public"."events"
        """,
        {"shop.public.events": "id payload"},
        {
            "id": ["events.id I"],
            "event_type": ["events.payload T"],
            "user_email": ["events.payload T"],
        },
        feature="PostgreSQL ->, ->>",
    ),
    Case(
        "postgres_casts_and_distinct_on",
        "postgres",
        """
        select distinct on (customer_id) customer_id, id::text as order_key,
               ordered_at::date as ordered_on
        from "shop"."public"."orders" order by customer_id, ordered_at desc
        """,
        {"shop.public.orders": ORDERS},
        {
            "customer_id": ["orders.customer_id I"],
            "order_key": ["orders.id T"],
            "ordered_on": ["orders.ordered_at T"],
        },
        ["orders.customer_id SORT", "orders.ordered_at SORT"],
        feature="PostgreSQL ::casts, distinct on",
    ),
    Case(
        "snowflake_variant_path",
        "snowflake",
        """
        select payload:customer.id::int as customer_id, payload:event::string as event_type,
               received_at
        from raw.web.events
        """,
        {"raw.web.events": "payload received_at"},
        {
            "customer_id": ["events.payload T"],
            "event_type": ["events.payload T"],
            "received_at": ["events.received_at I"],
        },
        feature="Snowflake variant paths",
    ),
    Case(
        "snowflake_lateral_flatten",
        "snowflake",
        """
        select o.id as order_id, f.value:sku::string as sku
        from analytics.dbt.orders o, lateral flatten(input => o.items) f
        """,
        {"analytics.dbt.orders": "id items"},
        {"order_id": ["orders.id I"], "sku": ["orders.items T"]},
        feature="Snowflake lateral flatten",
    ),
    Case(
        "bigquery_struct_and_unnest",
        "bigquery",
        """
        select o.id, o.shipping.city as city, item.sku
        from `proj.shop.orders` as o, unnest(o.items) as item
        """,
        {"proj.shop.orders": "id shipping items"},
        {"id": ["orders.id I"], "city": ["orders.shipping T"], "sku": ["orders.items T"]},
        feature="BigQuery struct, unnest",
    ),
    Case(
        "bigquery_json_value",
        "bigquery",
        "select json_value(payload, '$.user.id') as user_id from `proj.shop.events`",
        {"proj.shop.events": "id payload"},
        {"user_id": ["events.payload T"]},
        feature="BigQuery json_value",
    ),
    Case(
        "bigquery_group_by_alias",
        "bigquery",
        """
        select date_trunc(ordered_at, month) as month, sum(amount) as revenue
        from `proj.shop.orders` group by month
        """,
        {"proj.shop.orders": ORDERS},
        {"month": ["orders.ordered_at T"], "revenue": ["orders.amount A"]},
        ["orders.ordered_at GROUP_BY"],
        feature="BigQuery group by an output alias",
    ),
    # --- qualify ----------------------------------------------------------------------------------
    Case(
        "duckdb_qualify",
        "duckdb",
        """
        select id, customer_id, status from "shop"."main"."orders"
        qualify row_number() over (partition by customer_id order by ordered_at desc) = 1
        """,
        {"shop.main.orders": ORDERS},
        {
            "id": ["orders.id I"],
            "customer_id": ["orders.customer_id I"],
            "status": ["orders.status I"],
        },
        ["orders.customer_id FILTER", "orders.ordered_at FILTER"],
        feature="DuckDB qualify",
    ),
    Case(
        "snowflake_qualify_star",
        "snowflake",
        """
        select * from analytics.dbt.orders
        qualify row_number() over (partition by customer_id order by ordered_at desc) = 1
        """,
        {"analytics.dbt.orders": ORDERS},
        {c: [f"orders.{c} I"] for c in ORDERS.split()},
        ["orders.customer_id FILTER", "orders.ordered_at FILTER"],
        feature="Snowflake qualify over select *",
    ),
    Case(
        "bigquery_qualify",
        "bigquery",
        """
        select id, status from `proj.shop.orders`
        where true qualify rank() over (partition by customer_id order by amount desc) <= 3
        """,
        {"proj.shop.orders": ORDERS},
        {"id": ["orders.id I"], "status": ["orders.status I"]},
        ["orders.customer_id FILTER", "orders.amount FILTER"],
        feature="BigQuery qualify",
    ),
    # --- dialect specifics of star ----------------------------------------------------------------
    Case(
        "duckdb_exclude_replace",
        "duckdb",
        "select * exclude (email) replace (upper(first_name) as first_name) "
        'from "shop"."main"."customers"',
        {"shop.main.customers": CUSTOMERS},
        {
            "id": ["customers.id I"],
            "first_name": ["customers.first_name T"],
            "last_name": ["customers.last_name I"],
        },
        feature="DuckDB * exclude / replace",
    ),
    Case(
        "bigquery_except",
        "bigquery",
        "select * except (email) from `proj.shop.customers`",
        {"proj.shop.customers": CUSTOMERS},
        {
            "id": ["customers.id I"],
            "first_name": ["customers.first_name I"],
            "last_name": ["customers.last_name I"],
        },
        feature="BigQuery * except",
    ),
    Case(
        "snowflake_unquoted_upper_case",
        "snowflake",
        "SELECT Id AS Customer_Id, EMAIL FROM ANALYTICS.DBT.CUSTOMERS",
        {"analytics.dbt.customers": "ID FIRST_NAME LAST_NAME EMAIL"},
        {"customer_id": ["customers.id I"], "email": ["customers.email I"]},
        feature="Snowflake case folding",
    ),
    Case(
        "snowflake_lateral_alias",
        "snowflake",
        "select amount * 2 as doubled, doubled + 1 as plus_one from analytics.dbt.orders",
        {"analytics.dbt.orders": ORDERS},
        {"doubled": ["orders.amount T"], "plus_one": ["orders.amount T"]},
        feature="Snowflake lateral column alias",
    ),
    Case(
        "postgres_string_agg",
        "postgres",
        """
        select order_id, string_agg(method, ', ' order by method) as methods
        from "shop"."public"."payments" group by order_id
        """,
        {"shop.public.payments": PAYMENTS},
        {"order_id": ["payments.order_id I"], "methods": ["payments.method A"]},
        ["payments.order_id GROUP_BY"],
        feature="PostgreSQL string_agg",
    ),
    # --- the example project's two marts, as dbt compiles them for DuckDB -------------------------
    Case(
        "shop_orders",
        "duckdb",
        """
        select
            o.order_id, o.customer_id, o.order_date, o.status,
            coalesce(p.amount, 0) as amount,
            coalesce(p.payment_count, 0) as payment_count
        from "shop"."main"."stg_orders" as o
        left join (
            select order_id, sum(amount) as amount, count(*) as payment_count
            from "shop"."main"."stg_payments" group by order_id
        ) as p on p.order_id = o.order_id
        """,
        {
            "shop.main.stg_orders": "order_id customer_id order_date status",
            "shop.main.stg_payments": "payment_id order_id payment_method amount",
        },
        {
            "order_id": ["stg_orders.order_id I"],
            "customer_id": ["stg_orders.customer_id I"],
            "order_date": ["stg_orders.order_date I"],
            "status": ["stg_orders.status I"],
            "amount": ["stg_payments.amount A"],
            "payment_count": [],
        },
        [
            "stg_orders.order_id JOIN",
            "stg_payments.order_id JOIN",
            "stg_payments.order_id GROUP_BY",
        ],
        feature="example: orders (ephemeral model inlined)",
    ),
    Case(
        "shop_customers",
        "duckdb",
        """
        with orders as (select * from "shop"."main"."orders"),
        per_customer as (
            select customer_id, count(*) as order_count, sum(amount) as lifetime_value,
                   min(order_date) as first_order_date
            from orders group by customer_id
        ),
        visits as (
            select customer_id, count(*) as web_event_count
            from "shop"."main"."stg_web_events" group by customer_id
        )
        select c.customer_id, c.first_name, c.email,
               coalesce(p.order_count, 0) as order_count,
               coalesce(p.lifetime_value, 0) as lifetime_value,
               p.first_order_date,
               coalesce(v.web_event_count, 0) as web_event_count
        from "shop"."main"."stg_customers" as c
        left join per_customer as p on p.customer_id = c.customer_id
        left join visits as v on v.customer_id = c.customer_id
        """,
        {
            "shop.main.orders": "order_id customer_id order_date status amount payment_count",
            "shop.main.stg_web_events": "event_id customer_id event_type occurred_at",
            "shop.main.stg_customers": "customer_id first_name last_name email",
        },
        {
            "customer_id": ["stg_customers.customer_id I"],
            "first_name": ["stg_customers.first_name I"],
            "email": ["stg_customers.email I"],
            "order_count": [],
            "lifetime_value": ["orders.amount A"],
            "first_order_date": ["orders.order_date A"],
            "web_event_count": [],
        },
        [
            "orders.customer_id GROUP_BY",
            "orders.customer_id JOIN",
            "stg_web_events.customer_id GROUP_BY",
            "stg_web_events.customer_id JOIN",
            "stg_customers.customer_id JOIN",
        ],
        feature="example: customers (CTEs over select *, aggregates, joins)",
    ),
]
