"""floe events -> OpenLineage RunEvents: schema-valid, linked, deterministic, fully faceted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.data import shop_events
from support.environment import REPO_ROOT
from support.lineage import LineageValidator, assert_run_order

from floe_core import ids
from floe_core.events import Connection, NodeStarted, decode_event, encode_event
from floe_sidecar.sinks.openlineage import facets, translate_event


@pytest.fixture(scope="module")
def validator(openlineage_spec_dir: Path) -> LineageValidator:
    return LineageValidator(openlineage_spec_dir)


def translate_all(events: list[Any], namespace: str = "dbt") -> list[dict[str, Any]]:
    return [item for event in events for item in translate_event(event, namespace)]


def by_job(lineage: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in lineage if e["job"]["name"] == name]


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"fail_model": "stg_orders"},
        {"crash_after": 6},
        {
            "connection": Connection(
                target="postgres",
                adapter_type="postgres",
                host="127.0.0.1",
                port=5432,
                database="test",
                schema="shop",
            )
        },
    ],
    ids=["success", "failing-model", "crash", "postgres"],
)
def test_every_event_validates_against_the_official_schemas(
    validator: LineageValidator, variant: dict[str, Any]
) -> None:
    lineage = translate_all(shop_events(**variant))
    assert len(lineage) > 10
    problems = {
        f"{e['eventType']} {e['job']['name']}": errs
        for e in lineage
        if (errs := validator.errors(json.loads(json.dumps(e))))
    }
    assert problems == {}


def test_the_validator_catches_a_broken_facet(validator: LineageValidator) -> None:
    event = translate_all(shop_events())[0]
    assert validator.errors(event) == []
    broken = json.loads(json.dumps(event))
    broken["run"]["facets"]["floe_trace"]["traceId"] = "not-hex"
    broken["run"]["runId"] = "not-a-uuid"
    errors = validator.errors(broken)
    assert any("floe_trace" in e for e in errors) and any(e.startswith("event:") for e in errors)


def test_custom_facet_schema_url_names_the_file_in_the_repo(validator: LineageValidator) -> None:
    facet = translate_all(shop_events())[0]["run"]["facets"][facets.FLOE_TRACE_FACET]
    url, _, fragment = facet["_schemaURL"].partition("#")
    assert fragment == "/$defs/FloeTraceRunFacet"
    prefix = "https://raw.githubusercontent.com/floe-dev/floe/main/"
    assert url.startswith(prefix)
    path = REPO_ROOT / url[len(prefix) :]
    assert path.is_file(), path
    assert json.loads(path.read_text())["$id"] == url
    assert validator.registry.resolver().lookup(facet["_schemaURL"]).contents["allOf"]


def test_standard_facet_schema_urls_are_the_clients() -> None:
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        datasource_dataset,
        documentation_dataset,
        documentation_job,
        error_message_run,
        job_type_job,
        output_statistics_output_dataset,
        ownership_dataset,
        ownership_job,
        parent_run,
        processing_engine_run,
        schema_dataset,
        sql_job,
        tags_dataset,
        tags_job,
        tags_run,
    )

    classes = [
        schema_dataset.SchemaDatasetFacet,
        datasource_dataset.DatasourceDatasetFacet,
        documentation_dataset.DocumentationDatasetFacet,
        documentation_job.DocumentationJobFacet,
        ownership_dataset.OwnershipDatasetFacet,
        ownership_job.OwnershipJobFacet,
        sql_job.SQLJobFacet,
        job_type_job.JobTypeJobFacet,
        processing_engine_run.ProcessingEngineRunFacet,
        parent_run.ParentRunFacet,
        error_message_run.ErrorMessageRunFacet,
        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
        data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
        tags_dataset.TagsDatasetFacet,
        tags_job.TagsJobFacet,
        tags_run.TagsRunFacet,
    ]
    for cls in classes:
        name = cls.__name__
        assert f"{facets.SCHEMA_URLS[name]}#/$defs/{name}" == cls._get_schema()


def test_run_hierarchy_links_nodes_to_invocation_to_dagster_run() -> None:
    events = shop_events()
    run_id = events[0].invocation.run.run_id  # type: ignore[union-attr]
    invocation_id = events[0].invocation.invocation_id  # type: ignore[union-attr]
    lineage = translate_all(events)
    root = by_job(lineage, "shop_job")
    assert [e["eventType"] for e in root] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in root} == {run_id}
    invocation = by_job(lineage, "dbt-run-shop")
    assert [e["eventType"] for e in invocation] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in invocation} == {invocation_id}
    for event in invocation:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_id and parent["job"]["name"] == "shop_job"
        assert parent["root"]["run"]["runId"] == run_id
    nodes = [e for e in lineage if e["job"]["name"] not in ("shop_job", "dbt-run-shop")]
    assert len(nodes) == 2 * 14
    for event in nodes:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == invocation_id
        assert parent["job"] == {"namespace": "dbt", "name": "dbt-run-shop"}
        assert parent["root"] == {
            "run": {"runId": run_id},
            "job": {"namespace": "dbt", "name": "shop_job"},
        }
    assert_run_order(lineage)
    # Parents start before their children and end after them.
    states = [(e["job"]["name"], e["eventType"]) for e in lineage]
    assert states[:2] == [("shop_job", "START"), ("dbt-run-shop", "START")]
    assert states[-2:] == [("dbt-run-shop", "COMPLETE"), ("shop_job", "COMPLETE")]


def test_run_ids_are_deterministic_and_replay_identically() -> None:
    events = shop_events(run_id=str(uuid.uuid4()))
    first = translate_all(events)
    replayed = translate_all([decode_event(encode_event(e)) for e in events])
    assert first == replayed
    node_runs: dict[str, set[str]] = {}
    for event in first:
        node_runs.setdefault(event["job"]["name"], set()).add(event["run"]["runId"])
    assert all(len(run_ids) == 1 for run_ids in node_runs.values())
    assert len({next(iter(r)) for r in node_runs.values()}) == len(node_runs)
    for event in first:
        assert uuid.UUID(event["run"]["runId"])
    # Node run ids are UUIDv7, their time the node's start.
    node = by_job(first, "shop.main.shop.orders.build.run")[0]
    assert uuid.UUID(node["run"]["runId"]).version == 7
    [started] = [
        e for e in events if isinstance(e, NodeStarted) and e.node.unique_id == "model.shop.orders"
    ]
    assert uuid.UUID(node["run"]["runId"]).int >> 80 == int(started.started_at.timestamp() * 1000)
    another_run = translate_all(shop_events(run_id=str(uuid.uuid4())))
    assert {e["run"]["runId"] for e in first}.isdisjoint({e["run"]["runId"] for e in another_run})


def test_failing_model_fails_with_error_and_aborts_what_dbt_skipped() -> None:
    lineage = translate_all(shop_events(fail_model="stg_orders"))
    failed = by_job(lineage, "shop.main.shop.stg_orders.build.run")
    assert [e["eventType"] for e in failed] == ["START", "FAIL"]
    error = failed[1]["run"]["facets"]["errorMessage"]
    assert "Binder Error" in error["message"] and error["programmingLanguage"] == "sql"
    assert failed[1]["job"]["facets"]["sql"]["dialect"] == "duckdb"
    assert "outputStatistics" not in failed[1]["outputs"][0].get("outputFacets", {})
    # Downstream of the failure dbt skips: no START, one ABORT.
    skipped = by_job(lineage, "shop.main.shop.orders.build.run")
    assert [e["eventType"] for e in skipped] == ["ABORT"]
    assert [e["eventType"] for e in by_job(lineage, "dbt-run-shop")] == ["START", "FAIL"]
    assert [e["eventType"] for e in by_job(lineage, "shop_job")] == ["START", "FAIL"]
    assert by_job(lineage, "shop_job")[1]["run"]["facets"]["errorMessage"]["message"]


def test_unfinished_nodes_are_aborted_under_their_start_run_id() -> None:
    lineage = translate_all(shop_events(crash_after=6))
    started = [e for e in lineage if e["eventType"] == "START"]
    last = started[-1]
    closing = [e for e in lineage if e["run"]["runId"] == last["run"]["runId"]]
    assert [e["eventType"] for e in closing] == ["START", "ABORT"]
    assert_run_order(lineage)


def test_facets_carry_schema_docs_ownership_tags_sql_and_statistics() -> None:
    lineage = translate_all(shop_events())
    complete = by_job(lineage, "shop.main.shop.customers.build.run")[1]
    assert complete["eventType"] == "COMPLETE"
    job = complete["job"]["facets"]
    assert job["jobType"]["integration"] == "DBT" and job["jobType"]["jobType"] == "MODEL"
    assert job["jobType"]["processingType"] == "BATCH"
    assert job["sql"] == {
        **job["sql"],
        "query": "select * from customers_source",
        "dialect": "duckdb",
    }
    run = complete["run"]["facets"]
    assert run["processing_engine"]["name"] == "dbt"
    assert run["processing_engine"]["version"] == "1.11.2"
    assert {t["key"]: t["value"] for t in run["tags"]["tags"]} == {
        "tenant": "example",
        "environment": "dev",
    }
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == (
        "duckdb://.floe/shop.duckdb",
        "shop.main.customers",
    )
    ds = output["facets"]
    assert [f["name"] for f in ds["schema"]["fields"]] == ["customer_id", "email", "lifetime_value"]
    assert ds["schema"]["fields"][0]["description"] == "Primary key of a customer."
    assert ds["documentation"]["description"].startswith("One row per customer")
    assert ds["ownership"]["owners"] == [{"name": "data-platform@example.com"}]
    assert ds["dataSource"]["name"] == "duckdb://.floe/shop.duckdb"
    column_tags = [t for t in ds["tags"]["tags"] if "field" in t]
    assert {(t["field"], t["key"], t["value"]) for t in column_tags} == {
        ("email", "classification", "pii"),
        ("lifetime_value", "classification", "confidential"),
    }
    assert {"key": "marts", "value": "true", "source": "DBT"} in ds["tags"]["tags"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert {i["name"] for i in complete["inputs"]} == {
        "shop.main.orders",
        "shop.main.stg_web_events",
        "shop.main.stg_customers",
    }
    # A view writes no rows: no statistics for it.
    view = by_job(lineage, "shop.main.shop.stg_customers.build.run")[1]
    assert "outputFacets" not in view["outputs"][0]
    # Sources are inputs too.
    web = by_job(lineage, "shop.main.shop.stg_web_events.build.run")[0]
    assert [i["name"] for i in web["inputs"]] == ["shop.main_web.events"]


def test_test_results_become_assertions_on_the_tested_input() -> None:
    lineage = translate_all(shop_events())
    [start, end] = by_job(lineage, "test.shop.unique_orders_order_id")
    assert start["job"]["facets"]["jobType"]["jobType"] == "TEST"
    assert end["eventType"] == "COMPLETE" and end["outputs"] == []
    [tested] = end["inputs"]
    assert tested["name"] == "shop.main.orders"
    [assertion] = tested["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertion == {
        "assertion": "unique",
        "name": "unique_orders_order_id",
        "success": True,
        "column": "order_id",
        "severity": "error",
        "actual": "0",
        "expected": "0",
    }


def test_trace_facet_matches_the_span_ids_of_the_trace() -> None:
    events = shop_events()
    inv = events[0].invocation  # type: ignore[union-attr]
    lineage = translate_all(events)
    root = by_job(lineage, "shop_job")[0]["run"]["facets"]["floe_trace"]
    assert root["traceId"] == ids.trace_id_hex(inv.run.run_id) == uuid.UUID(inv.run.run_id).hex
    assert root["spanId"] == ids.span_id_hex(ids.run_span_id(inv.run.run_id))
    assert "parentSpanId" not in root
    node = by_job(lineage, "seed.shop.raw_orders")[0]["run"]["facets"]["floe_trace"]
    assert node["spanId"] == ids.span_id_hex(
        ids.node_span_id(inv.run.run_id, inv.invocation_id, "seed.shop.raw_orders")
    )
    assert node["parentSpanId"] == ids.span_id_hex(
        ids.invocation_span_id(inv.run.run_id, inv.invocation_id)
    )
    assert node["traceparent"] == f"00-{node['traceId']}-{node['spanId']}-01"


def test_job_namespace_is_configurable() -> None:
    lineage = translate_all(shop_events(), namespace="prod")
    assert {e["job"]["namespace"] for e in lineage} == {"prod"}
    assert {
        e["run"]["facets"]["parent"]["root"]["job"]["namespace"]
        for e in lineage
        if "parent" in e["run"]["facets"]
    } == {"prod"}
