"""The column-lineage engine (floe_core.column_lineage): the corpus of hand-written truths, and
what it does with what it cannot resolve (never raising, always saying why)."""

from __future__ import annotations

import pytest
from support.column_lineage_corpus import CASES, Case, actual_edges, expected_edges, run_case

from floe_core.column_lineage import MAX_SQL_CHARS, column_lineage, sql_dialect
from floe_core.events import Column, Relation, Transformation


def rel(identifier: str, schema: str = "main", database: str | None = "shop") -> Relation:
    return Relation(database=database, schema=schema, identifier=identifier)


def cols(names: str) -> tuple[Column, ...]:
    return tuple(Column(name=n) for n in names.split())


CUSTOMERS = {rel("customers"): cols("id first_name email")}


def test_the_corpus_is_large_and_covers_the_dialects() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.dialect for c in CASES} >= {"duckdb", "postgres", "snowflake", "bigquery"}
    for dialect in ("duckdb", "postgres", "snowflake", "bigquery"):
        assert sum(c.dialect == dialect for c in CASES) >= 6, dialect


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case) -> None:
    lineage = run_case(case)
    assert lineage.errors == ()
    assert [c.column.casefold() for c in lineage.columns] == [k.casefold() for k in case.fields]
    fields, dataset = actual_edges(lineage)
    want_fields, want_dataset = expected_edges(case)
    assert sorted(fields - want_fields) == [], "edges the truth does not have"
    assert sorted(want_fields - fields) == [], "edges missing"
    assert dataset == want_dataset


def test_edges_carry_typed_transformations_and_masking() -> None:
    lineage = column_lineage(
        'select md5(email) as h, id from "shop"."main"."customers"',
        dialect="duckdb",
        upstream=CUSTOMERS,
    )
    [h, id_] = lineage.columns
    assert h.inputs[0].relation == rel("customers")
    assert h.inputs[0].transformations == (
        Transformation(type="DIRECT", subtype="TRANSFORMATION", masking=True),
    )
    assert id_.inputs[0].transformations == (Transformation(type="DIRECT", subtype="IDENTITY"),)


def test_real_output_columns_name_and_order_the_result() -> None:
    lineage = column_lineage(
        "select id as customer_id, email from analytics.dbt.customers",
        dialect="snowflake",
        upstream={rel("CUSTOMERS", "DBT", "ANALYTICS"): cols("ID EMAIL")},
        output_columns=cols("EMAIL CUSTOMER_ID DBT_LOADED_AT"),
    )
    assert [c.column for c in lineage.columns] == ["EMAIL", "CUSTOMER_ID", "DBT_LOADED_AT"]
    assert [i.column for i in lineage.columns[1].inputs] == ["ID"]
    assert lineage.columns[2].inputs == ()
    assert lineage.errors == ()


def test_without_output_columns_names_follow_the_dialects_case_rules() -> None:
    lineage = column_lineage(
        "select id as customer_id from analytics.dbt.customers",
        dialect="snowflake",
        upstream={rel("customers", "dbt", "analytics"): cols("ID")},
    )
    assert [c.column for c in lineage.columns] == ["CUSTOMER_ID"]
    # Input columns are named as the upstream schema names them.
    assert lineage.columns[0].inputs[0].column == "ID"


def test_a_sql_column_the_output_relation_lacks_is_reported() -> None:
    lineage = column_lineage(
        'select id, email from "shop"."main"."customers"',
        dialect="duckdb",
        upstream=CUSTOMERS,
        output_columns=cols("id"),
    )
    assert [c.column for c in lineage.columns] == ["id"]
    assert any("'email'" in e for e in lineage.errors)


def test_star_over_unknown_columns_keeps_what_resolves_and_says_what_not() -> None:
    lineage = column_lineage(
        'select u.*, c.email from "shop"."main"."unloaded" as u '
        'join "shop"."main"."customers" as c on c.id = u.customer_id',
        dialect="duckdb",
        upstream={rel("unloaded"): (), **CUSTOMERS},
    )
    assert [c.column for c in lineage.columns] == ["email"]
    assert lineage.columns[0].inputs[0].column == "email"
    assert any("cannot expand" in e for e in lineage.errors)
    # The join key of the relation with unknown columns still resolves.
    assert {(i.relation.identifier, i.column) for i in lineage.dataset} == {
        ("customers", "id"),
        ("unloaded", "customer_id"),
    }


@pytest.mark.parametrize(
    ("sql", "dialect", "message"),
    [
        ("select from where (", "duckdb", "cannot parse"),
        ("", "duckdb", "no compiled SQL"),
        ("create schema x", "duckdb", "not a query"),
        ("select 1 as x", "no-such-dialect", "column lineage failed"),
        ('select nope from "shop"."main"."customers"', "duckdb", "not a column of"),
        ('select x from "shop"."main"."elsewhere"', "duckdb", "not an upstream relation"),
        ('select * from "shop"."main"."elsewhere"', "duckdb", "cannot expand"),
    ],
)
def test_what_cannot_be_resolved_is_an_error_never_an_exception(
    sql: str, dialect: str, message: str
) -> None:
    lineage = column_lineage(sql, dialect=dialect, upstream=CUSTOMERS)
    assert any(message in e for e in lineage.errors), lineage.errors


def test_oversized_sql_is_not_parsed() -> None:
    sql = "select 1 as x -- " + "x" * MAX_SQL_CHARS
    lineage = column_lineage(sql, dialect="duckdb", upstream={})
    assert lineage.columns == () and "not parsed" in lineage.errors[0]


def test_the_time_budget_bounds_the_walk() -> None:
    lineage = column_lineage(
        'select id from "shop"."main"."customers"',
        dialect="duckdb",
        upstream=CUSTOMERS,
        time_budget_s=-1,
    )
    assert any("time budget" in e for e in lineage.errors)


def test_several_statements_follow_the_last_query() -> None:
    lineage = column_lineage(
        'set x = 1; select email from "shop"."main"."customers"',
        dialect="duckdb",
        upstream=CUSTOMERS,
    )
    assert [c.column for c in lineage.columns] == ["email"]
    assert any("2 statements" in e for e in lineage.errors)


def test_two_part_names_and_unqualified_tables_use_the_default_schema() -> None:
    # Spark names relations schema.table; an unqualified name is in the model's own schema.
    lineage = column_lineage(
        "select o.id, c.email from orders o join analytics.customers c on c.id = o.customer_id",
        dialect="spark",
        upstream={
            Relation(schema="analytics", identifier="orders"): cols("id customer_id"),
            Relation(schema="analytics", identifier="customers"): cols("id email"),
        },
        default_relation=Relation(schema="analytics", identifier="model"),
    )
    assert lineage.errors == ()
    assert [(c.column, c.inputs[0].relation.identifier) for c in lineage.columns] == [
        ("id", "orders"),
        ("email", "customers"),
    ]


def test_every_target_has_a_dialect() -> None:
    targets = ("duckdb", "postgres", "snowflake", "bigquery", "redshift", "databricks", "spark")
    for target in targets:
        assert sql_dialect(target) is not None
        lineage = column_lineage(
            "select a from s.t", dialect=sql_dialect(target), upstream={}, default_relation=None
        )
        assert [c.column.casefold() for c in lineage.columns] == ["a"]
    assert sql_dialect("mystery") is None
