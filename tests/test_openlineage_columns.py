"""Column facets in the sidecar's RunEvents: the schema with real types, columnLineage 1-2-0,
extractionError, and classifications (tags and the floe_classifications facet), built from
node_finished events that carry the example's hand-written truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import shop_events, truth_events
from support.lineage import LineageValidator

from floe_core.events import (
    Classification,
    Column,
    ColumnLineage,
    ColumnRef,
    Event,
    FieldLineage,
    InputField,
    NodeFinished,
    Relation,
    Transformation,
    decode_event,
    encode_event,
)
from floe_sidecar.sinks.openlineage import facets, translate_event


@pytest.fixture(scope="module")
def validator(openlineage_spec_dir: Path) -> LineageValidator:
    return LineageValidator(openlineage_spec_dir)


def complete(lineage: list[dict[str, Any]], model: str) -> dict[str, Any]:
    [event] = [
        e
        for e in lineage
        if (e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{model}.build.run"))
        or (e["eventType"] == "COMPLETE" and e["job"]["name"] == model)
    ]
    return event


def translated(events: list[Event]) -> list[dict[str, Any]]:
    # Through the wire format, as the sidecar reads them.
    return [r for e in events for r in translate_event(decode_event(encode_event(e)))]


def test_every_event_with_columns_validates(validator: LineageValidator) -> None:
    lineage = translated(truth_events())
    problems = {
        f"{e['eventType']} {e['job']['name']}": errors
        for e in lineage
        if (errors := validator.errors(json.loads(json.dumps(e))))
    }
    assert problems == {}
    with_lineage = [e for e in lineage for o in e["outputs"] if "columnLineage" in o["facets"]]
    assert len(with_lineage) == 7  # 6 models (the ephemeral one is inlined) and the snapshot


def test_schema_lists_every_real_column_with_its_type() -> None:
    customers = complete(translated(truth_events()), "customers")["outputs"][0]["facets"]
    fields = customers["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields] == [
        ("customer_id", "INTEGER"),
        ("first_name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("order_count", "BIGINT"),
        ("lifetime_value", "DOUBLE"),
        ("first_order_date", "DATE"),
        ("web_event_count", "BIGINT"),
    ]
    # Descriptions still come from dbt where the project documents the column.
    assert {f["name"]: f.get("description") for f in fields}["email"] == "Customer e-mail address."


def test_column_lineage_names_datasets_as_inputs_and_fields_as_the_schema() -> None:
    lineage = translated(truth_events())
    for event in lineage:
        for output in event["outputs"]:
            facet = output["facets"].get("columnLineage")
            if facet is None:
                continue
            schema = {f["name"] for f in output["facets"]["schema"]["fields"]}
            inputs = {(i["namespace"], i["name"]) for i in event["inputs"]}
            assert set(facet["fields"]) <= schema
            for item in [i for f in facet["fields"].values() for i in f["inputFields"]] + facet.get(
                "dataset", []
            ):
                assert (item["namespace"], item["name"]) in inputs
    customers = complete(lineage, "customers")["outputs"][0]["facets"]["columnLineage"]
    assert customers["fields"]["lifetime_value"]["inputFields"] == [
        {
            "namespace": "duckdb://.floe/shop.duckdb",
            "name": "shop.main.orders",
            "field": "amount",
            "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}],
        }
    ]
    assert "order_count" not in customers["fields"]  # count(*): no input column
    assert {
        (d["name"], d["field"], d["transformations"][0]["subtype"]) for d in customers["dataset"]
    } >= {
        ("shop.main.stg_customers", "customer_id", "JOIN"),
        ("shop.main.orders", "customer_id", "GROUP_BY"),
    }


def test_classifications_declared_inherited_masked() -> None:
    lineage = translated(truth_events())
    customers = complete(lineage, "customers")["outputs"][0]["facets"]
    tags = {
        (t["field"], t["value"], t["source"]) for t in customers["tags"]["tags"] if "field" in t
    }
    assert tags == {
        ("email", "pii", "DBT_META"),
        ("email", "pii", "FLOE_INHERITED"),
        ("lifetime_value", "confidential", "DBT_META"),
    }
    facet = customers[facets.FLOE_CLASSIFICATIONS_FACET]
    assert facet["columns"]["email"] == [
        {"classification": "pii", "origin": "declared", "from": []},
        {
            "classification": "pii",
            "origin": "inherited",
            "from": [
                {
                    "namespace": "duckdb://.floe/shop.duckdb",
                    "name": "shop.main_raw.raw_customers",
                    "field": "email",
                },
                {
                    "namespace": "duckdb://.floe/shop.duckdb",
                    "name": "shop.main.stg_customers",
                    "field": "email",
                },
            ],
        },
    ]
    # The inherited tag is on the columns derived from pii, and only there.
    inherited = {
        (e["outputs"][0]["name"], t["field"])
        for e in lineage
        if e["eventType"] == "COMPLETE" and e["outputs"]
        for t in e["outputs"][0]["facets"].get("tags", {}).get("tags", [])
        if t.get("source") == "FLOE_INHERITED"
    }
    assert inherited == {("shop.main.stg_customers", "email"), ("shop.main.customers", "email")}


def test_masked_classification_and_extraction_error(validator: LineageValidator) -> None:
    events = shop_events()
    [finished] = [
        e
        for e in events
        if isinstance(e, NodeFinished) and e.node.unique_id == "model.shop.stg_customers"
    ]
    source = finished.node.upstream[0]
    pii = Classification(
        classification="pii", origin="masked", sources=(ColumnRef(relation=source, column="email"),)
    )
    event = msgspec.structs.replace(
        finished,
        output_columns=(
            Column(name="customer_id", data_type="INTEGER"),
            Column(name="email_hash", data_type="VARCHAR", classifications=(pii,)),
        ),
        column_lineage=ColumnLineage(
            columns=(
                FieldLineage(
                    column="email_hash",
                    inputs=(
                        InputField(
                            relation=source,
                            column="email",
                            transformations=(
                                Transformation(
                                    type="DIRECT", subtype="TRANSFORMATION", masking=True
                                ),
                            ),
                        ),
                    ),
                ),
                FieldLineage(
                    column="not_in_schema",
                    inputs=(InputField(relation=source, column="id"),),
                ),
                FieldLineage(
                    column="customer_id",
                    inputs=(InputField(relation=Relation(identifier="elsewhere"), column="id"),),
                ),
            ),
            errors=("cannot expand *: the columns of a relation it reads are unknown",),
        ),
    )
    [run_event] = translate_event(event)
    assert validator.errors(json.loads(json.dumps(run_event))) == []
    output = run_event["outputs"][0]["facets"]
    assert output["columnLineage"]["fields"]["email_hash"]["inputFields"][0]["transformations"] == [
        {"type": "DIRECT", "subtype": "TRANSFORMATION", "masking": True}
    ]
    assert set(output["columnLineage"]["fields"]) == {"email_hash"}
    assert ("email_hash", "pii", "FLOE_MASKED") in {
        (t.get("field"), t["value"], t["source"]) for t in output["tags"]["tags"]
    }
    errors = run_event["run"]["facets"]["extractionError"]
    assert errors["totalTasks"] == 1 and errors["failedTasks"] == 1
    messages = [e["errorMessage"] for e in errors["errors"]]
    assert messages[0].startswith("cannot expand")
    assert any("'not_in_schema'" in m for m in messages)
    assert any("elsewhere" in m and "not an input" in m for m in messages)


def test_events_without_the_new_fields_map_as_before() -> None:
    lineage = translated(shop_events())
    customers = complete(lineage, "customers")
    output = customers["outputs"][0]["facets"]
    assert [f["name"] for f in output["schema"]["fields"]] == [
        "customer_id",
        "email",
        "lifetime_value",
    ]
    assert "columnLineage" not in output and "extractionError" not in customers["run"]["facets"]
    # Declared classifications are in the floe_classifications facet too.
    assert output[facets.FLOE_CLASSIFICATIONS_FACET]["columns"] == {
        "email": [{"classification": "pii", "origin": "declared", "from": []}],
        "lifetime_value": [{"classification": "confidential", "origin": "declared", "from": []}],
    }
