"""Lineage from a real materialization of the example project (the adapter's events, real dbt on
DuckDB through Dagster): every RunEvent is valid against the official schemas, and its datasets
are the ones dbt-ol (run for real, file transport) names for the same profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.environment import Postgres
from support.lineage import LineageValidator, Materialized, assert_run_order, materialize_shop

from floe_core.events import NodeFinished
from floe_sidecar.sinks.openlineage import translate_event

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def validator(openlineage_spec_dir: Path) -> LineageValidator:
    return LineageValidator(openlineage_spec_dir)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "lineage-materialized"


@pytest.fixture(scope="module")
def success(root: Path) -> Materialized:
    run = materialize_shop(root, "success")
    assert run.success
    return run


@pytest.fixture(scope="module")
def failing(root: Path) -> Materialized:
    run = materialize_shop(root, "failing")
    assert not run.success
    return run


def lineage_of(run: Materialized) -> list[dict[str, Any]]:
    return [item for event in run.events for item in translate_event(event)]


@pytest.mark.parametrize("variant", ["success", "failing"])
def test_every_event_of_a_real_materialization_is_schema_valid(
    variant: str, validator: LineageValidator, request: pytest.FixtureRequest
) -> None:
    run: Materialized = request.getfixturevalue(variant)
    lineage = lineage_of(run)
    assert len(lineage) >= 40
    problems = {
        f"{e['eventType']} {e['job']['name']}": errors
        for e in lineage
        if (errors := validator.errors(json.loads(json.dumps(e))))
    }
    assert problems == {}
    assert_run_order(lineage)
    # Every node dbt executed has a START and a terminal event; the whole tree is closed.
    finished = {e.node.unique_id for e in run.events if isinstance(e, NodeFinished)}
    assert len(finished) >= 24  # 3 seeds, 6 models, 1 snapshot, 14 tests
    root_job = run.events[0].invocation.run.job_name  # type: ignore[union-attr]
    states = [(e["job"]["name"], e["eventType"]) for e in lineage]
    assert states[0] == (root_job, "START") and states[1] == ("dbt-run-shop", "START")
    assert states[-1][0] == root_job and states[-2][0] == "dbt-run-shop"


def test_success_carries_classifications_assertions_and_statistics(success: Materialized) -> None:
    lineage = lineage_of(success)
    [customers] = [
        e
        for e in lineage
        if e["job"]["name"] == "shop.main.shop.customers.build.run" and e["eventType"] == "COMPLETE"
    ]
    output = customers["outputs"][0]
    classified = {
        (t["field"], t["value"]) for t in output["facets"]["tags"]["tags"] if "field" in t
    }
    assert classified == {("email", "pii"), ("lifetime_value", "confidential")}
    assert output["facets"]["ownership"]["owners"] == [{"name": "data-platform@example.com"}]
    assert "select" in customers["job"]["facets"]["sql"]["query"].lower()
    # dbt-duckdb counts rows for seeds (for tables it reports none, and then floe claims none).
    [seed] = [
        e
        for e in lineage
        if e["job"]["name"] == "seed.shop.raw_customers" and e["eventType"] == "COMPLETE"
    ]
    assert seed["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert "outputFacets" not in output
    tested = [
        i["inputFacets"]["dataQualityAssertions"]["assertions"][0]
        for e in lineage
        if e["eventType"] == "COMPLETE" and e["job"]["facets"]["jobType"]["jobType"] == "TEST"
        for i in e["inputs"]
        if "inputFacets" in i
    ]
    assert len(tested) >= 14 and all(a["success"] for a in tested)
    assert {"not_null", "unique", "accepted_values", "relationships"} <= {
        a["assertion"] for a in tested
    }


def test_failing_model_fails_and_what_depends_on_it_is_aborted(failing: Materialized) -> None:
    lineage = lineage_of(failing)

    def states(job: str) -> list[str]:
        return [e["eventType"] for e in lineage if e["job"]["name"] == job]

    assert states("shop.main.shop.stg_payments.build.run") == ["START", "FAIL"]
    [fail] = [e for e in lineage if e["eventType"] == "FAIL" and "stg_payments" in e["job"]["name"]]
    assert "no_such_column" in fail["run"]["facets"]["errorMessage"]["message"]
    assert states("shop.main.shop.orders.build.run") == ["ABORT"]
    assert states("shop.main.shop.customers.build.run") == ["ABORT"]
    assert states("shop.main.shop.stg_orders.build.run") == ["START", "COMPLETE"]
    assert states("dbt-run-shop") == ["START", "FAIL"]


# --- beside dbt-ol -----------------------------------------------------------------------------


def run_dbt_ol(
    run: Materialized, mode: str, extra_env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """dbt-ol build on the same project and profile, events to a file (its file transport)."""
    out = run.workdir / f"dbt-ol-{mode}.ndjson"
    if out.exists():
        return [json.loads(line) for line in out.read_text().splitlines()]
    config = run.workdir / f"openlineage-{mode}.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {out}.part\n  append: true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "FLOE_"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", OPENLINEAGE_CONFIG=str(config))
    env.update(extra_env or {})
    args = [str(VENV_BIN / "dbt-ol"), "build"]
    if mode == "live":
        args.append("--consume-structured-logs")
    args += [
        "--project-dir",
        run.artifacts.dbt_project_path,
        "--profiles-dir",
        run.artifacts.dbt_profiles_path,
    ]
    done = subprocess.run(args, env=env, cwd=run.workdir, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    Path(f"{out}.part").rename(out)
    return [json.loads(line) for line in out.read_text().splitlines()]


def _datasets(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in event.get(side, [])}


def _jobs(lineage: list[dict[str, Any]]) -> dict[str, dict[str, set[tuple[str, str]]]]:
    jobs: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for event in lineage:
        job = jobs.setdefault(event["job"]["name"], {"inputs": set(), "outputs": set()})
        job["inputs"] |= _datasets(event, "inputs")
        job["outputs"] |= _datasets(event, "outputs")
    return jobs


@pytest.mark.parametrize("mode", ["after-run", "live"])
def test_datasets_and_jobs_join_dbt_ols(success: Materialized, mode: str) -> None:
    assert_joins(lineage_of(success), run_dbt_ol(success, mode), success, mode)


def test_postgres_datasets_and_jobs_join_dbt_ols(tmp_path: Path, postgres: Postgres) -> None:
    """The prod environment of the example (PostgreSQL), on the test server."""
    password = {"FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "unused"}  # trust auth; dbt wants it set
    run = materialize_shop(
        tmp_path, "success", env=password, environment="prod", postgres_schema=postgres.schema
    )
    assert run.success
    ours = lineage_of(run)
    assert {d["namespace"] for e in ours for d in e["outputs"]} == {
        f"postgres://{postgres.host}:{postgres.port}"
    }
    assert_joins(ours, run_dbt_ol(run, "after-run", password), run, "after-run")


def assert_joins(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], run: Materialized, mode: str
) -> None:
    """floe's datasets and jobs are dbt-ol's (modulo what each mode of dbt-ol leaves out)."""
    manifest = json.loads(Path(run.artifacts.dbt_manifest_path).read_text())
    nodes = manifest["nodes"]

    def dataset(unique_id: str) -> tuple[str, str]:
        node = nodes.get(unique_id) or manifest["sources"][unique_id]
        table = node["name"] if unique_id.startswith("source.") else node["alias"]
        name = ".".join(p for p in (node["database"], node["schema"], table) if p)
        return namespace, name

    [namespace] = {d[0] for e in ours for side in ("inputs", "outputs") for d in _datasets(e, side)}
    ephemeral = {
        dataset(uid) for uid, n in nodes.items() if n["config"].get("materialized") == "ephemeral"
    }
    # What stands behind an ephemeral model (floe resolves through it; dbt-ol lists the model).
    behind_ephemeral = {
        dataset(parent)
        for uid, n in nodes.items()
        if n["config"].get("materialized") == "ephemeral"
        for parent in manifest["parent_map"][uid]
    }
    seeds = {dataset(uid) for uid in nodes if uid.startswith("seed.")}

    their_datasets = {
        d for e in theirs for side in ("inputs", "outputs") for d in _datasets(e, side)
    }
    our_datasets = {d for e in ours for side in ("inputs", "outputs") for d in _datasets(e, side)}
    assert {d[0] for d in their_datasets} == {namespace}
    tables = {d for d in their_datasets if "dbt_test__audit" not in d[1]}  # live mode's test rows
    assert tables - ephemeral, "dbt-ol named no datasets"
    assert tables - ephemeral <= our_datasets

    # Jobs that write a table, matched by the table they write.
    def writers(lineage: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], str]:
        tests = {
            e["job"]["name"]
            for e in lineage
            if e["job"]["facets"].get("jobType", {}).get("jobType") == "TEST"
        }
        return {
            frozenset(job["outputs"]): name
            for name, job in _jobs(lineage).items()
            if job["outputs"] and name not in tests
        }

    our_jobs, their_jobs = _jobs(ours), _jobs(theirs)
    our_writers, their_writers = writers(ours), writers(theirs)
    assert len(their_writers) >= (7 if mode == "after-run" else 10)
    for outputs, their_name in their_writers.items():
        if outputs <= ephemeral:
            continue  # live dbt-ol reports the ephemeral model as a job writing a non-table
        assert outputs in our_writers, f"dbt-ol job {their_name} writes {set(outputs)}; floe none"
        our_name = our_writers[outputs]
        mine, peer = our_jobs[our_name], their_jobs[their_name]
        assert peer["inputs"] - ephemeral <= mine["inputs"], their_name
        assert mine["inputs"] - peer["inputs"] <= seeds | behind_ephemeral, their_name
        # The same job names where dbt-ol's mode names that kind of node: its after-run names
        # for models and snapshots, its live names (unique_id) for seeds.
        if mode == "after-run" or their_name.startswith("seed."):
            assert our_name == their_name
    # Both tools put their jobs in the same namespace by default.
    assert {e["job"]["namespace"] for e in theirs} == {e["job"]["namespace"] for e in ours}
