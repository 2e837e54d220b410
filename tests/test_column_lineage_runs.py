"""Column lineage in real runs: `floe run` of examples/shop on DuckDB and on PostgreSQL.

Real dbt through Dagster with floe's adapter, a real sidecar writing its RunEvents to
``.floe/lineage/openlineage.ndjson``; the Dagster instance of the run is ``.floe/dagster``. The
copy of the example gets two more models: ``customer_keys`` hashes the pii e-mail (a masking
edge) and ``orders_fanout`` reads a table function whose columns nobody can know (a statement the
lineage cannot fully resolve). What must hold, against the truth written by hand in
``support.shop_column_lineage`` (and :data:`EXTRA` here):

- every model's and the snapshot's COMPLETE event has ``columnLineage`` with exactly the true
  edges and types, and ``schema`` with every real column, its warehouse type and the dbt
  description; no lineage field the schema lacks, no input the event lacks; seeds have typed
  schemas; every event validates against the official schemas (each facet against its
  ``_schemaURL``);
- the inherited ``pii`` is on the downstream e-mail columns and only there, the hash is marked
  ``masking`` and what it passes on is ``masked``;
- ``orders_fanout`` has the lineage of what could be resolved and an ``extractionError`` run
  facet; the run succeeds and every other node is as above;
- Dagster's materializations (read back from the instance's event log) carry
  ``dagster/column_schema`` with the warehouse types and ``dagster/column_lineage`` naming the
  upstream asset keys and columns of the truth.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.adapter import copy_example, set_prod_schema
from support.environment import Postgres
from support.lineage import LineageValidator
from support.shop_column_lineage import (
    INT,
    SHOP,
    TEXT,
    ShopNode,
    cols,
    facet_edges,
    truth_edges,
)

from floe_core.classification import FLOE_INHERITED, FLOE_MASKED

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 420
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")
PASSWORD = {"FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "unused"}  # trust auth; dbt wants it set

CUSTOMER_KEYS_SQL = "select customer_id, md5(email) as email_hash from {{ ref('stg_customers') }}\n"
# generate_series is a table function in both warehouses: its columns are nobody's to know.
FANOUT_SQL = (
    "select o.order_id, o.status, r.*\n"
    "from {{ ref('stg_orders') }} as o cross join generate_series(1, 2) as r\n"
)
EXTRA = [
    ShopNode(
        "model.shop.customer_keys",
        "customer_keys",
        "",
        cols(("customer_id", INT), ("email_hash", TEXT)),
        fields={
            "customer_id": ["stg_customers.customer_id I"],
            "email_hash": ["stg_customers.email TM"],
        },
        classifications={
            "email_hash": [("pii", "masked", ["raw_customers.email", "stg_customers.email"])]
        },
    ),
]
FANOUT_FIELDS = {"order_id": ["stg_orders.order_id I"], "status": ["stg_orders.status I"]}


@dataclass(frozen=True)
class ShopRun:
    project: Path
    run_id: str
    events: list[dict[str, Any]]  # the sidecar's RunEvents of the run, in arrival order
    manifest: dict[str, Any]
    types: int  # 0: DuckDB's type names, 1: PostgreSQL's


def floe_run(project: Path, environment: str | None, types: int) -> ShopRun:
    models = project / "dbt" / "models" / "marts"
    (models / "customer_keys.sql").write_text(CUSTOMER_KEYS_SQL)
    (models / "orders_fanout.sql").write_text(FANOUT_SQL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}
    env.update(PASSWORD)
    args = [sys.executable, "-m", "floe_cli", "run"]
    args += ["--env", environment] if environment else []
    done = subprocess.run(
        args, cwd=project, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    found = re.search(r"Dagster run ([0-9a-f-]{36})", output)
    assert found, output[-3000:]
    lines = (project / ".floe" / "lineage" / "openlineage.ndjson").read_text().splitlines()
    manifest = json.loads((project / "dbt" / "target" / "manifest.json").read_text())
    return ShopRun(project, found.group(1), [json.loads(x) for x in lines if x], manifest, types)


@pytest.fixture(scope="module")
def duckdb_run(tmp_path_factory: pytest.TempPathFactory) -> ShopRun:
    return floe_run(copy_example(tmp_path_factory.mktemp("lineage-runs") / "shop"), None, 0)


@pytest.fixture(scope="module")
def validator(openlineage_spec_dir: Path) -> LineageValidator:
    return LineageValidator(openlineage_spec_dir)


# --- what the sidecar wrote ----------------------------------------------------------------------


def completes(run: ShopRun) -> dict[str, dict[str, Any]]:
    """Output table -> the COMPLETE RunEvent of the node that wrote it (tests write none)."""
    out: dict[str, dict[str, Any]] = {}
    for event in run.events:
        if event["eventType"] != "COMPLETE":
            continue
        if event["job"]["facets"].get("jobType", {}).get("jobType") == "TEST":
            continue
        for output in event.get("outputs") or ():
            out[output["name"].rsplit(".", 1)[-1]] = event
    return out


def descriptions(run: ShopRun, unique_id: str) -> dict[str, str]:
    node = run.manifest["nodes"][unique_id]
    return {n: c["description"] for n, c in node["columns"].items() if c.get("description")}


def check_events(run: ShopRun, validator: LineageValidator) -> None:
    problems = {
        f"{e['eventType']} {e['job']['name']}": errors
        for e in run.events
        if (errors := validator.errors(e))
    }
    assert problems == {}
    by_table = completes(run)
    # Every node is checked, and every wrong one named: one wrong node must not hide another.
    wrong = {}
    for truth in [*SHOP, *EXTRA]:
        if not truth.unique_id.startswith("source."):
            try:
                check_node_event(run, truth, by_table[truth.identifier])
            except (AssertionError, KeyError) as exc:
                wrong[truth.unique_id] = f"{type(exc).__name__}: {exc}"[:3000]
    assert wrong == {}

    # Inherited and masked tags: on the downstream columns, and nowhere else.
    tags = {
        (output["name"].rsplit(".", 1)[-1], tag["field"], tag["value"], tag["source"])
        for event in by_table.values()
        for output in event["outputs"]
        for tag in (output["facets"].get("tags") or {}).get("tags") or ()
        if tag.get("source") in {FLOE_INHERITED, FLOE_MASKED}
    }
    assert tags == {
        ("stg_customers", "email", "pii", FLOE_INHERITED),
        ("customers", "email", "pii", FLOE_INHERITED),
        ("customer_keys", "email_hash", "pii", FLOE_MASKED),
    }
    [hashed] = by_table["customer_keys"]["outputs"][0]["facets"]["columnLineage"]["fields"][
        "email_hash"
    ]["inputFields"]
    assert [t["masking"] for t in hashed["transformations"]] == [True]

    # What the lineage could not resolve: said in the run facet; the rest is there.
    fanout = by_table["orders_fanout"]
    lineage = fanout["outputs"][0]["facets"]["columnLineage"]
    expected = ShopNode("orders_fanout", "orders_fanout", "", [], fields=FANOUT_FIELDS)
    assert facet_edges(lineage) == truth_edges(expected)
    error = fanout["run"]["facets"]["extractionError"]
    assert error["errors"] and all(e["errorMessage"] for e in error["errors"])
    assert error["failedTasks"] >= 1


def check_node_event(run: ShopRun, truth: ShopNode, event: dict[str, Any]) -> None:
    """One seed's, model's or the snapshot's COMPLETE event against its truth."""
    [output] = event["outputs"]
    facets = output["facets"]
    fields = facets["schema"]["fields"]
    assert [(f["name"], f.get("type")) for f in fields] == [
        (name, both[run.types]) for name, *both in truth.columns
    ], truth.unique_id
    documented = descriptions(run, truth.unique_id)
    assert {f["name"]: f["description"] for f in fields if "description" in f} == documented
    assert "extractionError" not in event["run"]["facets"], truth.unique_id
    if truth.unique_id.startswith("seed."):
        assert "columnLineage" not in facets
    else:
        lineage = facets["columnLineage"]
        assert facet_edges(lineage) == truth_edges(truth), truth.unique_id
        assert set(lineage["fields"]) <= {f["name"] for f in fields}
        inputs = {i["name"] for i in event["inputs"]}
        used = [s for c in lineage["fields"].values() for s in c["inputFields"]]
        assert {s["name"] for s in used + lineage.get("dataset", [])} <= inputs, truth.unique_id
    classified = {
        column: [
            (c["classification"], c["origin"], sorted(_short(f) for f in c["from"])) for c in items
        ]
        for column, items in (facets.get("floe_classifications") or {}).get("columns", {}).items()
    }
    assert classified == truth.classifications, truth.unique_id


def _short(ref: dict[str, str]) -> str:
    return f"{ref['name'].rsplit('.', 1)[-1]}.{ref['field']}"


# --- what Dagster recorded ---------------------------------------------------------------------


def check_dagster(run: ShopRun) -> None:
    import dagster

    from floe_dagster.column_metadata import COLUMN_LINEAGE_KEY, COLUMN_SCHEMA_KEY

    nodes = {**run.manifest["nodes"], **run.manifest["sources"]}
    by_identifier = {t.identifier: t.unique_id for t in [*SHOP, *EXTRA]}

    def asset_key(identifier: str) -> tuple[str, ...]:
        """dagster-dbt's default key: a source's name in its source; a node's name under its
        configured schema (the seeds' ``+schema: raw``), if any."""
        node = nodes[by_identifier[identifier]]
        if node["resource_type"] == "source":
            return (node["source_name"], node["name"])
        schema = (node.get("config") or {}).get("schema")
        return (schema, node["name"]) if schema else (node["name"],)

    def check_node(truth: ShopNode) -> None:
        key = dagster.AssetKey(list(asset_key(truth.identifier)))
        entry = instance.get_latest_materialization_event(key)
        assert entry is not None and entry.run_id == run.run_id, truth.unique_id
        materialization = entry.asset_materialization
        assert materialization is not None
        metadata = materialization.metadata
        schema: Any = metadata[COLUMN_SCHEMA_KEY].value
        assert [(c.name, c.type) for c in schema.columns] == [
            (name, both[run.types]) for name, *both in truth.columns
        ], truth.unique_id
        documented = descriptions(run, truth.unique_id)
        assert {c.name: c.description for c in schema.columns if c.description} == documented
        if truth.unique_id.startswith("seed."):
            assert COLUMN_LINEAGE_KEY not in metadata
            return
        lineage: Any = metadata[COLUMN_LINEAGE_KEY].value
        found = {
            column: {(tuple(dep.asset_key.path), dep.column_name) for dep in deps}
            for column, deps in lineage.deps_by_column.items()
        }
        expected = {
            column: {
                (asset_key(edge.split()[0].split(".")[0]), edge.split()[0].split(".")[1])
                for edge in edges
            }
            for column, edges in truth.fields.items()
            if edges
        }
        assert found == expected, truth.unique_id

    instance = dagster.DagsterInstance.from_config(str(run.project / ".floe" / "dagster"))
    try:
        wrong = {}
        for truth in [*SHOP, *EXTRA]:
            if not truth.unique_id.startswith("source."):
                try:
                    check_node(truth)
                except (AssertionError, KeyError) as exc:
                    wrong[truth.unique_id] = f"{type(exc).__name__}: {exc}"[:3000]
        assert wrong == {}
    finally:
        instance.dispose()


# --- the runs ---------------------------------------------------------------------------------


def test_duckdb_run_events_carry_the_true_column_lineage(
    duckdb_run: ShopRun, validator: LineageValidator
) -> None:
    check_events(duckdb_run, validator)


def test_duckdb_run_dagster_materializations_carry_columns_and_lineage(duckdb_run: ShopRun) -> None:
    check_dagster(duckdb_run)


def test_postgres_run_carries_the_true_column_lineage(
    tmp_path: Path, postgres: Postgres, validator: LineageValidator
) -> None:
    project = copy_example(tmp_path / "shop")
    set_prod_schema(project, postgres.schema)
    run = floe_run(project, "prod", 1)
    check_events(run, validator)
    check_dagster(run)
