"""floe events -> OpenLineage RunEvents: schema-valid, linked, deterministic, fully faceted."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import run_log_lines, shop_events
from support.environment import REPO_ROOT
from support.lineage import LineageValidator, assert_run_order

from floe_core import ids
from floe_core.events import (
    Column,
    ColumnLineage,
    Connection,
    FieldLineage,
    InputField,
    InvocationFinished,
    InvocationStarted,
    NodeFinished,
    NodeStarted,
    Relation,
    decode_event,
    encode_event,
)
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


# -- single facets and fallbacks, each on its own (the mutation run showed them unchecked) -------


def _node_events(unique_id: str, **changes: Any) -> tuple[NodeStarted, NodeFinished]:
    """The example run's start and end of ``unique_id``, the end with ``changes``."""
    events = shop_events(run_id=RUN)
    [started] = [e for e in events if isinstance(e, NodeStarted) and e.node.unique_id == unique_id]
    [finished] = [
        e for e in events if isinstance(e, NodeFinished) and e.node.unique_id == unique_id
    ]
    return started, msgspec.structs.replace(finished, **changes)


def _with_node(event: NodeFinished, **changes: Any) -> NodeFinished:
    return msgspec.structs.replace(event, node=msgspec.structs.replace(event.node, **changes))


RUN = "3b0f1c2e-7a4d-4e8f-9c1b-2d3e4f5a6b7c"
TAGS = facets.tags_run({"tenant": "example", "environment": "dev"}, "FLOE")


def test_the_dagster_runs_and_the_invocations_events_whole() -> None:
    events = shop_events(run_id=RUN)
    first = events[0]
    assert isinstance(first, InvocationStarted)
    inv = first.invocation
    run_start, inv_start = translate_event(first)
    trace = uuid.UUID(RUN).hex
    run_span = ids.span_id_hex(ids.run_span_id(RUN))
    inv_span = ids.span_id_hex(ids.invocation_span_id(RUN, inv.invocation_id))
    common = {"producer": facets.PRODUCER, "schemaURL": facets.RUN_EVENT_SCHEMA_URL}
    assert run_start == {
        "eventType": "START",
        "eventTime": "2026-11-26T12:00:00+00:00",  # the Dagster run's own start
        **common,
        "run": {
            "runId": RUN,
            "facets": {"floe_trace": facets.floe_trace(trace, run_span, None), "tags": TAGS},
        },
        "job": {
            "namespace": "dbt",
            "name": "shop_job",
            "facets": {"jobType": facets.job_type("DAGSTER", "JOB")},
        },
        "inputs": [],
        "outputs": [],
    }
    assert inv_start == {
        "eventType": "START",
        "eventTime": "2026-11-26T12:00:01+00:00",
        **common,
        "run": {
            "runId": inv.invocation_id,
            "facets": {
                "parent": facets.parent(RUN, "dbt", "shop_job", RUN, "dbt", "shop_job"),
                "processing_engine": facets.processing_engine("dbt", "1.11.2"),
                "floe_trace": facets.floe_trace(trace, inv_span, run_span),
                "tags": TAGS,
            },
        },
        "job": {
            "namespace": "dbt",
            "name": "dbt-run-shop",
            "facets": {"jobType": facets.job_type("DBT", "JOB")},
        },
        "inputs": [],
        "outputs": [],
    }
    *_, inv_end, run_end = events
    [inv_fail] = translate_event(msgspec.structs.replace(inv_end, success=False, error="boom"))
    assert inv_fail == {
        **inv_start,
        "eventType": "FAIL",
        "eventTime": _time_of(inv_end),
        "run": {
            "runId": inv.invocation_id,
            "facets": {
                **inv_start["run"]["facets"],
                "errorMessage": facets.error_message("boom", "sql"),
            },
        },
    }
    [run_fail] = translate_event(msgspec.structs.replace(run_end, success=False, error="step x"))
    assert run_fail == {
        **run_start,
        "eventType": "FAIL",
        "eventTime": _time_of(run_end),
        "run": {
            "runId": RUN,
            "facets": {
                **run_start["run"]["facets"],
                "errorMessage": facets.error_message("step x", "python"),
            },
        },
    }


def _time_of(event: Any) -> str:
    finished: datetime = event.finished_at
    return finished.isoformat()


def test_failures_without_a_message_still_say_what_failed() -> None:
    *_, inv_end, run_end = shop_events()
    [inv_fail] = translate_event(msgspec.structs.replace(inv_end, success=False, error=None))
    assert inv_fail["run"]["facets"]["errorMessage"] == facets.error_message(
        "dbt invocation failed", "sql"
    )
    [run_fail] = translate_event(msgspec.structs.replace(run_end, success=False, error=None))
    assert run_fail["run"]["facets"]["errorMessage"] == facets.error_message(
        "Dagster run failed", "python"
    )
    # Success carries no error, whatever the event says.
    [run_ok] = translate_event(msgspec.structs.replace(run_end, success=True, error="stale"))
    assert run_ok["eventType"] == "COMPLETE" and "errorMessage" not in run_ok["run"]["facets"]
    [inv_ok] = translate_event(msgspec.structs.replace(inv_end, success=True, error="stale"))
    assert inv_ok["eventType"] == "COMPLETE" and "errorMessage" not in inv_ok["run"]["facets"]


def test_a_dagster_run_without_a_known_start_starts_with_its_first_invocation() -> None:
    first = shop_events()[0]
    assert isinstance(first, InvocationStarted)
    inv = msgspec.structs.replace(
        first.invocation, run=msgspec.structs.replace(first.invocation.run, started_at=None)
    )
    run_start, inv_start = translate_event(msgspec.structs.replace(first, invocation=inv))
    assert run_start["eventTime"] == inv_start["eventTime"] == "2026-11-26T12:00:01+00:00"


def test_run_tags_an_attribute_named_environment_wins_and_none_means_no_facet() -> None:
    first = shop_events()[0]
    assert isinstance(first, InvocationStarted)
    inv = msgspec.structs.replace(
        first.invocation, attributes={"environment": "prod-eu", "tenant": "t"}
    )
    for event in translate_event(msgspec.structs.replace(first, invocation=inv)):
        tags = {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}
        assert tags == {"environment": "prod-eu", "tenant": "t"}
    bare = msgspec.structs.replace(first.invocation, attributes={}, environment=None)
    for event in translate_event(msgspec.structs.replace(first, invocation=bare)):
        assert "tags" not in event["run"]["facets"]
    *_, run_end = shop_events()
    [run_ok] = translate_event(msgspec.structs.replace(run_end, attributes={}, environment=None))
    assert "tags" not in run_ok["run"]["facets"]
    [run_env] = translate_event(msgspec.structs.replace(run_end, attributes={}, environment="qa"))
    assert run_env["run"]["facets"]["tags"] == facets.tags_run({"environment": "qa"}, "FLOE")


def test_times_are_rfc3339_with_an_offset_naive_ones_being_utc() -> None:
    started, _ = _node_events("model.shop.orders")
    naive = msgspec.structs.replace(started, started_at=datetime(2026, 11, 26, 12, 0, 5, 250000))
    [event] = translate_event(naive)
    assert event["eventTime"] == "2026-11-26T12:00:05.250000+00:00"
    offset = timezone(timedelta(hours=2))
    aware = msgspec.structs.replace(
        started, started_at=datetime(2026, 11, 26, 14, 0, 5, tzinfo=offset)
    )
    [event] = translate_event(aware)
    assert event["eventTime"] == "2026-11-26T14:00:05+02:00"


def test_a_node_start_and_end_whole_run_and_job_facets() -> None:
    started, finished = _node_events("model.shop.orders")
    inv = started.invocation
    [start] = translate_event(started)
    [end] = translate_event(finished)
    run_facets = {
        "parent": facets.parent(inv.invocation_id, "dbt", "dbt-run-shop", RUN, "dbt", "shop_job"),
        "processing_engine": facets.processing_engine("dbt", "1.11.2"),
        "floe_trace": facets.floe_trace(
            uuid.UUID(RUN).hex,
            ids.span_id_hex(ids.node_span_id(RUN, inv.invocation_id, "model.shop.orders")),
            ids.span_id_hex(ids.invocation_span_id(RUN, inv.invocation_id)),
        ),
        "tags": TAGS,
    }
    job_facets = {
        "jobType": facets.job_type("DBT", "MODEL"),
        "documentation": facets.documentation_job("One row per order with its paid amount."),
        "ownership": facets.ownership_job("finance@example.com"),
        "tags": facets.tags_job(["marts", "finance"], "DBT"),
    }
    assert start["eventType"] == "START" and end["eventType"] == "COMPLETE"
    assert start["eventTime"] == started.started_at.isoformat()
    assert end["eventTime"] == finished.finished_at.isoformat()
    assert start["run"] == {"runId": start["run"]["runId"], "facets": run_facets}
    assert end["run"] == start["run"]  # one run id from start to end
    assert start["job"] == {
        "namespace": "dbt",
        "name": "shop.main.shop.orders.build.run",
        "facets": job_facets,
    }
    assert end["job"]["facets"] == {
        **job_facets,
        "sql": facets.sql("select * from orders_source", "duckdb"),
    }
    assert [i["name"] for i in start["inputs"]] == [
        "shop.main.stg_orders",
        "shop.main.stg_payments",
    ]
    assert start["inputs"][0] == {
        "namespace": "duckdb://.floe/shop.duckdb",
        "name": "shop.main.stg_orders",
        "facets": {
            "dataSource": facets.datasource(
                "duckdb://.floe/shop.duckdb", "duckdb://.floe/shop.duckdb"
            )
        },
    }
    [output] = end["outputs"]
    assert output["facets"]["documentation"] == facets.documentation_dataset(
        "One row per order with its paid amount."
    )
    assert output["facets"]["ownership"] == facets.ownership_dataset("finance@example.com")
    assert output["facets"]["tags"] == facets.tags_dataset(
        [
            {"key": "marts", "value": "true", "source": "DBT"},
            {"key": "finance", "value": "true", "source": "DBT"},
        ]
    )
    assert output["outputFacets"] == {"outputStatistics": facets.output_statistics(3)}


def test_a_node_without_docs_owner_tags_or_sql_gets_none_of_those_facets() -> None:
    _, finished = _node_events("model.shop.stg_payments", compiled_sql=None)
    [end] = translate_event(_with_node(finished, description=None, owner=None, tags=()))
    assert end["job"]["facets"] == {"jobType": facets.job_type("DBT", "MODEL")}
    [output] = end["outputs"]
    assert not {"documentation", "ownership", "tags"} & set(output["facets"])


def test_a_failed_node_without_an_error_uses_its_message_then_its_type() -> None:
    _, finished = _node_events("model.shop.orders", status="error", error=None, message="Oops")
    [end] = translate_event(finished)
    assert end["eventType"] == "FAIL"
    assert end["run"]["facets"]["errorMessage"] == facets.error_message("Oops", "sql")
    [end] = translate_event(msgspec.structs.replace(finished, message=None))
    assert end["run"]["facets"]["errorMessage"] == facets.error_message("dbt model failed", "sql")


def test_aborts_and_skips_carry_no_error_message() -> None:
    events = shop_events(crash_after=6)
    inv_end = next(e for e in events if isinstance(e, InvocationFinished))
    *aborts, inv_fail = translate_event(inv_end)
    assert [e["eventType"] for e in aborts] == ["ABORT"]
    assert "errorMessage" not in aborts[0]["run"]["facets"]
    assert aborts[0]["eventTime"] == inv_end.finished_at.isoformat()
    assert inv_fail["eventType"] == "FAIL"
    skipped = [
        e
        for e in shop_events(fail_model="stg_orders")
        if isinstance(e, NodeFinished) and e.status == "skipped"
    ]
    for event in skipped:
        [abort] = translate_event(event)
        assert abort["eventType"] == "ABORT" and "errorMessage" not in abort["run"]["facets"]


@pytest.mark.parametrize(
    ("unique_id", "job_type"),
    [
        ("seed.shop.raw_orders", "SEED"),
        ("snapshot.shop.orders_snapshot", "SNAPSHOT"),
        ("test.shop.unique_orders_order_id", "TEST"),
        ("model.shop.orders", "MODEL"),
    ],
)
def test_each_resource_type_has_its_job_type(unique_id: str, job_type: str) -> None:
    started, _ = _node_events(unique_id)
    [start] = translate_event(started)
    assert start["job"]["facets"]["jobType"] == facets.job_type("DBT", job_type)


def test_an_unknown_resource_type_is_its_own_job_type_in_capitals() -> None:
    started, _ = _node_events("model.shop.orders")
    event = msgspec.structs.replace(
        started, node=msgspec.structs.replace(started.node, resource_type="analysis")
    )
    [start] = translate_event(event)
    assert start["job"]["facets"]["jobType"] == facets.job_type("DBT", "ANALYSIS")


def test_a_node_without_a_relation_and_a_test_with_one_have_no_output() -> None:
    _, finished = _node_events("model.shop.orders")
    [end] = translate_event(_with_node(finished, relation=None))
    assert end["outputs"] == []
    _, test_end = _node_events("test.shop.unique_orders_order_id")
    [end] = translate_event(
        _with_node(test_end, relation=Relation(database="shop", schema="main", identifier="t"))
    )
    assert end["outputs"] == []


def test_an_input_read_twice_is_listed_once() -> None:
    started, _ = _node_events("model.shop.orders")
    # A repeat between two inputs: the inputs after it are kept too.
    first, second = started.node.upstream
    upstream = (first, first, second, first)
    event = msgspec.structs.replace(
        started, node=msgspec.structs.replace(started.node, upstream=upstream)
    )
    [start] = translate_event(event)
    assert [i["name"] for i in start["inputs"]] == [
        "shop.main.stg_orders",
        "shop.main.stg_payments",
    ]


def test_the_tested_relation_is_an_input_and_alone_carries_the_assertion() -> None:
    _, finished = _node_events("test.shop.unique_orders_order_id")
    other = Relation(database="shop", schema="main", identifier="customers")
    assert finished.node.test is not None
    tested = finished.node.test.attached_relation
    # Listed upstream after another input, it keeps its place; missing upstream, it comes first.
    for upstream, names in (
        ((other, tested), ["shop.main.customers", "shop.main.orders"]),
        ((other,), ["shop.main.orders", "shop.main.customers"]),
    ):
        [end] = translate_event(_with_node(finished, upstream=upstream))
        assert [i["name"] for i in end["inputs"]] == names
        with_facets = [i["name"] for i in end["inputs"] if "inputFacets" in i]
        assert with_facets == ["shop.main.orders"]
    started, _ = _node_events("test.shop.unique_orders_order_id")
    [start] = translate_event(started)
    assert [i["name"] for i in start["inputs"]] == ["shop.main.orders"]
    assert "inputFacets" not in start["inputs"][0]  # no result before the test ends


def _assertion(event: NodeFinished) -> dict[str, Any]:
    [end] = translate_event(event)
    [assertion] = end["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    return assertion


@pytest.mark.parametrize(
    ("status", "severity"),
    [("pass", "error"), ("fail", "error"), ("error", "error"), ("warn", "warn"), ("skipped", None)],
)
def test_an_assertions_severity_follows_the_status(status: str, severity: str | None) -> None:
    _, finished = _node_events("test.shop.unique_orders_order_id", status=status)
    assert _assertion(finished).get("severity") == severity


def test_an_assertion_without_a_column_or_failure_count_has_neither() -> None:
    _, finished = _node_events("test.shop.unique_orders_order_id", failures=None)
    assert finished.node.test is not None
    test = msgspec.structs.replace(finished.node.test, column_name=None)
    assert _assertion(_with_node(finished, test=test)) == {
        "assertion": "unique",
        "name": "unique_orders_order_id",
        "success": True,
        "severity": "error",
    }


@pytest.mark.parametrize(
    ("unique_id", "materialized", "rows", "row_count"),
    [
        ("model.shop.orders", "table", 0, 0),  # an empty table is a count, not a missing one
        ("model.shop.orders", "table", -1, None),  # adapters say -1 when they do not know
        ("model.shop.orders", "incremental", 7, 7),
        ("model.shop.orders", "microbatch", 7, 7),
        ("model.shop.orders", "view", 7, None),
        ("seed.shop.raw_orders", None, 7, 7),  # no materialization: the resource type decides
        ("snapshot.shop.orders_snapshot", "snapshot", 7, 7),
        ("model.shop.orders", None, 7, None),
    ],
)
def test_output_statistics_only_for_rows_written(
    unique_id: str, materialized: str | None, rows: int, row_count: int | None
) -> None:
    _, finished = _node_events(unique_id, rows_affected=rows)
    [end] = translate_event(_with_node(finished, materialized=materialized))
    [output] = end["outputs"]
    statistics = output.get("outputFacets", {}).get("outputStatistics")
    assert statistics == (None if row_count is None else facets.output_statistics(row_count))


def test_an_extraction_error_is_reported_once() -> None:
    _, finished = _node_events("model.shop.stg_customers")
    elsewhere = Relation(identifier="elsewhere")
    event = msgspec.structs.replace(
        finished,
        output_columns=(Column(name="a"), Column(name="b")),
        column_lineage=ColumnLineage(
            columns=(
                FieldLineage(column="a", inputs=(InputField(relation=elsewhere, column="x"),)),
                FieldLineage(column="b", inputs=(InputField(relation=elsewhere, column="y"),)),
            ),
        ),
    )
    [end] = translate_event(event)
    errors = end["run"]["facets"]["extractionError"]["errors"]
    assert [e["errorMessage"] for e in errors] == [
        "column lineage from elsewhere left out: not an input of the run"
    ]


def test_other_events_have_no_lineage() -> None:
    log = next(iter(run_log_lines(count=1)))
    assert translate_event(log) == []


def test_an_unknown_status_with_an_error_fails_and_without_one_completes() -> None:
    _, finished = _node_events("model.shop.orders", status="exploded", error="kaboom")
    [end] = translate_event(finished)
    assert end["eventType"] == "FAIL"
    assert end["run"]["facets"]["errorMessage"] == facets.error_message("kaboom", "sql")
    [end] = translate_event(msgspec.structs.replace(finished, error=None))
    assert end["eventType"] == "COMPLETE" and "errorMessage" not in end["run"]["facets"]


def test_an_invocation_id_that_is_not_a_uuid_is_not_shared_across_dagster_runs() -> None:
    """Two Dagster runs whose invocations have the same non-UUID id are two lineage runs."""
    invocation_run_ids = set()
    for run_id in (RUN, "5e1d2c3b-4a59-4687-9a6b-7c8d9e0f1a2b"):
        events = shop_events(run_id=run_id)
        first = events[0]
        assert isinstance(first, InvocationStarted)
        inv = msgspec.structs.replace(first.invocation, invocation_id="local-build")
        _, inv_start = translate_event(msgspec.structs.replace(first, invocation=inv))
        started = next(
            e
            for e in events
            if isinstance(e, NodeStarted) and e.node.unique_id == "model.shop.orders"
        )
        [node_start] = translate_event(msgspec.structs.replace(started, invocation=inv))
        run_uuid = inv_start["run"]["runId"]
        assert uuid.UUID(run_uuid).version == 5
        assert node_start["run"]["facets"]["parent"]["run"]["runId"] == run_uuid
        invocation_run_ids.add(run_uuid)
    assert len(invocation_run_ids) == 2
