"""Dataset namespaces and names for the 7 targets, checked against dbt-ol's own rules (the peer's
code, a test-only dependency) for the same profile."""

from __future__ import annotations

from typing import Any

import pytest
from openlineage.common.provider.dbt.processor import DbtArtifactProcessor
from support import data

from floe_core.events import Connection, Invocation, Node, Relation
from floe_sidecar.sinks.openlineage.naming import (
    dataset_name,
    dataset_namespace,
    datasource_uri,
    dbt_command,
    node_job_name,
    snowflake_account,
)

# (dbt profile output as dbt-ol reads it, the Connection the adapter writes for it)
PROFILES: list[tuple[dict[str, Any], Connection]] = [
    (
        {"type": "duckdb", "path": ".floe/shop.duckdb"},
        Connection(target="duckdb", adapter_type="duckdb", path=".floe/shop.duckdb"),
    ),
    (
        {"type": "duckdb", "path": "/data/warehouse/shop.duckdb"},
        Connection(target="duckdb", adapter_type="duckdb", path="/data/warehouse/shop.duckdb"),
    ),
    (
        {"type": "postgres", "host": "127.0.0.1", "port": 5432},
        Connection(target="postgres", adapter_type="postgres", host="127.0.0.1", port=5432),
    ),
    (
        {
            "type": "redshift",
            "host": "analytics.abc123.us-west-2.redshift.amazonaws.com",
            "port": 5439,
        },
        Connection(
            target="redshift",
            adapter_type="redshift",
            host="analytics.abc123.us-west-2.redshift.amazonaws.com",
            port=5439,
        ),
    ),
    (
        {"type": "snowflake", "account": "xy12345"},
        Connection(target="snowflake", adapter_type="snowflake", account="xy12345"),
    ),
    (
        {"type": "snowflake", "account": "xy12345.us-east-1"},
        Connection(target="snowflake", adapter_type="snowflake", account="xy12345.us-east-1"),
    ),
    (
        {"type": "snowflake", "account": "xy12345.east-us-2.azure"},
        Connection(target="snowflake", adapter_type="snowflake", account="xy12345.east-us-2.azure"),
    ),
    (
        {"type": "snowflake", "account": "myorg-myaccount"},
        Connection(target="snowflake", adapter_type="snowflake", account="myorg-myaccount"),
    ),
    (
        {"type": "bigquery", "project": "acme-analytics"},
        Connection(target="bigquery", adapter_type="bigquery", project="acme-analytics"),
    ),
    (
        {"type": "databricks", "host": "dbc-1234.cloud.databricks.com"},
        Connection(
            target="databricks", adapter_type="databricks", host="dbc-1234.cloud.databricks.com"
        ),
    ),
    (
        {"type": "spark", "method": "thrift", "host": "spark.internal", "port": 10000},
        Connection(target="spark", adapter_type="spark", host="spark.internal", port=10000),
    ),
    (
        {"type": "spark", "method": "http", "host": "spark.internal"},
        Connection(target="spark", adapter_type="spark", host="spark.internal"),
    ),
]


def dbt_ol_namespace(profile: dict[str, Any]) -> str:
    processor = DbtArtifactProcessor(producer="test", job_namespace="dbt")
    processor.extract_adapter_type(profile)
    return processor.extract_namespace(profile)


@pytest.mark.parametrize(("profile", "connection"), PROFILES, ids=lambda v: str(v)[:40])
def test_dataset_namespace_is_dbt_ols(profile: dict[str, Any], connection: Connection) -> None:
    assert dataset_namespace(connection) == dbt_ol_namespace(profile)


def test_all_seven_targets_are_covered() -> None:
    assert {c.target for _, c in PROFILES} == {
        "duckdb",
        "postgres",
        "snowflake",
        "bigquery",
        "redshift",
        "databricks",
        "spark",
    }


@pytest.mark.parametrize(
    "relation",
    [
        Relation(database="shop", schema="main", identifier="orders"),
        Relation(database="acme-analytics", schema="marts", identifier="orders"),
        Relation(database=None, schema="marts", identifier="orders"),  # spark: no database
        Relation(database="", schema="marts", identifier="orders"),
    ],
)
def test_dataset_name_is_dbt_ols(relation: Relation) -> None:
    processor = DbtArtifactProcessor(producer="test", job_namespace="dbt")
    expected = processor._format_dataset_name(
        relation.database, relation.schema, relation.identifier
    )
    assert dataset_name(relation) == expected


def test_snowflake_account_normalization() -> None:
    assert snowflake_account("xy12345") == "xy12345.us-west-1.aws"
    assert snowflake_account("xy12345.us-east-2") == "xy12345.us-east-2.aws"
    assert snowflake_account("xy12345.us-east-2.aws") == "xy12345.us-east-2.aws"
    assert snowflake_account("acme-prod") == "acme-prod"


def test_datasource_uri_stays_a_valid_uri_for_odd_paths() -> None:
    from rfc3986_validator import validate_rfc3986

    namespace = dataset_namespace(
        Connection(target="duckdb", adapter_type="duckdb", path="/data/my warehouse/shop.duckdb")
    )
    assert namespace == "duckdb:///data/my warehouse/shop.duckdb"  # as dbt-ol names it
    assert validate_rfc3986(datasource_uri(namespace))
    assert datasource_uri("postgres://127.0.0.1:5432") == "postgres://127.0.0.1:5432"


def _node(unique_id: str, resource_type: str) -> Node:
    return data.node(unique_id, resource_type=resource_type)


def test_node_job_names_follow_dbt_ol() -> None:
    model = _node("model.shop.orders", "model")
    snapshot = _node("snapshot.shop.orders_snapshot", "snapshot")
    assert node_job_name(model, "build") == "shop.main.shop.orders.build.run"
    assert node_job_name(model, "run") == "shop.main.shop.orders"
    assert node_job_name(snapshot, "build") == "shop.main.shop.orders_snapshot.build.snapshot"
    assert node_job_name(snapshot, "snapshot") == "shop.main.shop.orders_snapshot.snapshot"
    assert node_job_name(_node("seed.shop.raw_orders", "seed"), "build") == "seed.shop.raw_orders"
    test = _node("test.shop.unique_orders_order_id.1a2b", "test")
    assert node_job_name(test, "build") == "test.shop.unique_orders_order_id.1a2b"


def test_dbt_command_is_found_among_the_arguments() -> None:
    def inv(*command: str) -> Invocation:
        return data.invocation(run_id="r", invocation_id="i", job_name="j", command=command)

    assert dbt_command(inv("build", "--select", "orders")) == "build"
    assert dbt_command(inv("dbt", "run")) == "run"
    assert dbt_command(inv()) is None
