"""The Dagster adapter for real: examples/shop compiled, parsed and materialized through Dagster
with dbt on DuckDB and PostgreSQL; the asset graph, its metadata, and the floe events (from the
spool, or delivered by a real `floe-sidecar` on the socket) checked against dbt's own manifest
and run_results.json.

Materializations are expensive (dbt starts in a subprocess each time), so one run per scenario
is shared by the assertions about it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.adapter import (
    Materialization,
    SidecarStandIn,
    add_broken_model,
    copy_example,
    materialize,
    prepare,
    read_spool,
    set_observability,
    set_prod_schema,
    source_tests_are_checks,
)
from support.environment import Postgres
from support.loopback import wait_for
from support.sidecar import SidecarProcess

from floe_core import ids
from floe_core.events import (
    Event,
    InvocationFinished,
    InvocationStarted,
    LogLine,
    NodeFinished,
    NodeStarted,
    RunFinished,
    decode_event,
)
from floe_core.spool import list_segments
from floe_dagster.logs import configure_logging

pytestmark = pytest.mark.slow


# --- expected values, from dbt's own artifacts -----------------------------------------------


def source_key(props: dict[str, Any]) -> tuple[str, ...]:
    return (props["source_name"], props["name"])


def expected_edges(
    manifest: dict[str, Any], key_of: dict[str, tuple[str, ...]]
) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Asset -> upstream assets, from dbt's depends_on, seen through ephemeral models."""
    nodes, sources = manifest["nodes"], manifest["sources"]

    def parents(unique_id: str) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for parent in nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []):
            if parent in sources:
                found.add(source_key(sources[parent]))
            elif nodes[parent]["config"]["materialized"] == "ephemeral":
                found |= parents(parent)
            elif parent in key_of:
                found.add(key_of[parent])
        return found

    return {key: parents(unique_id) for unique_id, key in key_of.items()}


def dbt_relation(result: dict[str, Any]) -> tuple[str, str, str]:
    """("db", "schema", "name") from run_results' quoted relation_name."""
    parts = [p.strip('"') for p in result["relation_name"].split(".")]
    assert len(parts) == 3
    return parts[0], parts[1], parts[2]


def check_node_events(run: Materialization, events: list[Event]) -> None:
    """One NodeStarted and one NodeFinished per node dbt executed, as dbt reported it."""
    results = {r["unique_id"]: r for r in run.run_results()["results"]}
    started = [e for e in events if isinstance(e, NodeStarted)]
    finished = [e for e in events if isinstance(e, NodeFinished)]
    executed = {u for u, r in results.items() if r["status"] != "skipped"}
    assert sorted(e.node.unique_id for e in started) == sorted(executed)
    assert sorted(e.node.unique_id for e in finished) == sorted(results)
    start_of = {e.node.unique_id: e for e in started}
    for event in finished:
        result = results[event.node.unique_id]
        assert event.status == result["status"], event.node.unique_id
        if result["status"] == "skipped":
            assert event.started_at is None
            continue
        begin = start_of[event.node.unique_id]
        assert event.started_at == begin.started_at
        assert begin.started_at.tzinfo is not None and event.finished_at.tzinfo is not None
        assert begin.started_at.utcoffset() == timedelta(0)
        timing = result["timing"]
        if timing:  # dbt's compile/execute phases lie inside the node's start and finish
            first = min(t["started_at"] for t in timing).replace("Z", "+00:00")
            last = max(t["completed_at"] for t in timing).replace("Z", "+00:00")
            assert begin.started_at.isoformat() <= first
            assert event.finished_at.isoformat() >= last
        assert event.execution_time_s == pytest.approx(result["execution_time"], rel=1e-3)
        if result.get("relation_name") and event.node.resource_type != "test":
            relation = event.node.relation
            assert relation is not None
            assert (relation.database, relation.schema, relation.identifier) == dbt_relation(result)
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        if isinstance(rows, int) and rows >= 0:
            assert event.rows_affected == rows
    ordered = [e for e in events if isinstance(e, NodeStarted | NodeFinished)]
    for i, event in enumerate(ordered):  # a node's start is written before its finish
        if isinstance(event, NodeFinished) and event.started_at is not None:
            assert any(
                isinstance(e, NodeStarted) and e.node.unique_id == event.node.unique_id
                for e in ordered[:i]
            )


def check_invocation(run: Materialization, events: list[Event], *, success: bool) -> None:
    invocation_id = run.run_results()["metadata"]["invocation_id"]
    assert isinstance(events[0], InvocationStarted)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].success is success
    assert events[-1].run.run_id == run.run_id
    assert events[-1].environment == run.artifacts.environment
    assert events[-1].attributes == {"tenant": "example"}
    finished = [e for e in events if isinstance(e, InvocationFinished)]
    assert len(finished) == 1 and finished[0].success is success
    assert finished[0].unfinished == ()
    for event in events[:-1]:
        if isinstance(event, LogLine):  # a log line names the run and the invocation by id
            assert event.run.run_id == run.run_id
            assert event.invocation_id in (invocation_id, None)
            assert event.attributes == {"tenant": "example"}
            continue
        invocation = event.invocation  # type: ignore[union-attr]
        assert invocation.invocation_id == invocation_id
        assert invocation.run.run_id == run.run_id
        assert invocation.run.started_at is not None
        assert invocation.attributes == {"tenant": "example"}
        assert invocation.connection.target == run.artifacts.compute.target
        assert invocation.project_name == "shop"
    assert len({e.event_id for e in events}) == len(events)


# --- DuckDB, everything succeeds, FLOE_SOCKET points at nothing -------------------------------


@pytest.fixture(scope="module")
def duckdb_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Materialization, str]]:
    base = tmp_path_factory.mktemp("duckdb")
    project = copy_example(base / "shop")
    artifacts = prepare(project)
    json_logs = io.StringIO()
    configure_logging(stream=json_logs)
    try:
        run = materialize(
            artifacts,
            {
                "FLOE_SOCKET": str(base / "no-sidecar.sock"),
                "FLOE_SPOOL_DIR": str(base / "spool"),
            },
        )
    finally:
        configure_logging(stream=sys.stderr)
    yield run, json_logs.getvalue()


def test_materialization_succeeds_with_socket_pointing_at_nothing(
    duckdb_run: tuple[Materialization, str],
) -> None:
    run, _ = duckdb_run
    assert run.success
    assert run.materialized() == {tuple(key.path) for key in run.asset_specs}
    spooled = read_spool(spool_dir(run))
    assert run.run_tags["floe/events_spooled"] == str(len(spooled))
    assert run.run_tags["floe/events_emitted"] == str(len(spooled))
    assert run.run_tags["floe/events_dropped"] == "0"


def spool_dir(run: Materialization) -> Path:
    assert run.spool_dir is not None
    return run.spool_dir


def test_asset_graph_is_the_dbt_dag(duckdb_run: tuple[Materialization, str]) -> None:
    run, _ = duckdb_run
    manifest = run.manifest
    key_of = {
        spec.metadata["dagster_dbt/unique_id"]: tuple(spec.key.path)
        for spec in run.asset_specs.values()
    }
    # Every model, seed and snapshot is an asset; the ephemeral model is not.
    assets = {
        u
        for u, n in manifest["nodes"].items()
        if n["resource_type"] in {"model", "seed", "snapshot"}
        and n["config"]["materialized"] != "ephemeral"
    }
    assert set(key_of) == assets
    assert "model.shop.int_order_payments" not in key_of
    actual = {
        tuple(spec.key.path): {tuple(dep.asset_key.path) for dep in spec.deps}
        for spec in run.asset_specs.values()
    }
    assert actual == expected_edges(manifest, key_of)
    # Spot checks that the comparison above is about the right thing.
    assert actual[("orders",)] == {("stg_orders",), ("stg_payments",)}  # through the ephemeral
    assert actual[("stg_web_events",)] == {("web", "events")}  # the dbt source
    assert actual[("customers",)] == {("orders",), ("stg_customers",), ("stg_web_events",)}


def test_asset_metadata_merges_floe_with_dagster_dbt(
    duckdb_run: tuple[Materialization, str],
) -> None:
    run, _ = duckdb_run
    customers = next(s for s in run.asset_specs.values() if s.key.path == ["customers"])
    assert customers.description and customers.description.startswith(
        "One row per customer with order and web activity."
    )
    assert list(customers.owners) == ["data-platform@example.com"]
    assert "marts" in customers.tags
    assert customers.group_name == "marts"
    metadata = customers.metadata
    # dagster-dbt's defaults are still there ...
    assert metadata["dagster/table_name"] == "shop.main.customers"
    assert metadata["dagster-dbt/materialization_type"] == "table"
    assert metadata["dagster_dbt/unique_id"] == "model.shop.customers"
    # ... with the column schema carrying floe's classifications.
    columns = {c.name: c for c in metadata["dagster/column_schema"].columns}
    assert columns["email"].description == "Customer e-mail address."
    assert columns["email"].tags == {"classification": "pii"}
    assert columns["lifetime_value"].tags == {"classification": "confidential"}
    assert columns["customer_id"].tags == {}
    assert metadata["floe/classifications"].data == {
        "email": "pii",
        "lifetime_value": "confidential",
    }
    seed = next(s for s in run.asset_specs.values() if s.key.path == ["raw", "raw_customers"])
    assert seed.group_name == "seeds"
    # Every dbt test is an asset check on the asset it tests, source tests included (where
    # dagster-dbt can: from 0.26; see floe_dagster.compat.translator_settings).
    tests = {n["name"]: n for n in run.manifest["nodes"].values() if n["resource_type"] == "test"}
    on_sources = {
        name
        for name, n in tests.items()
        if all(d.startswith("source.") for d in n["depends_on"]["nodes"])
    }
    assert len(tests) == 14 and len(on_sources) == 2
    expected = set(tests) if source_tests_are_checks() else set(tests) - on_sources
    assert {k.name for k in run.check_keys} == expected
    checked = {k.name: tuple(k.asset_key.path) for k in run.check_keys}
    if source_tests_are_checks():
        assert checked["source_unique_web_events_event_id"] == ("web", "events")
    assert checked["unique_customers_customer_id"] == ("customers",)
    evaluations = [e for e in run.events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(evaluations) == len(expected)
    assert all(e.event_specific_data.passed for e in evaluations)


def test_one_start_and_one_finish_event_per_executed_node(
    duckdb_run: tuple[Materialization, str],
) -> None:
    run, _ = duckdb_run
    events = read_spool(spool_dir(run))
    check_invocation(run, events, success=True)
    check_node_events(run, events)
    finished = {e.node.unique_id: e for e in events if isinstance(e, NodeFinished)}
    # 3 seeds, 6 models (not the ephemeral one), 1 snapshot, 14 tests, the on-run-start hook
    assert len(finished) == 25
    hook = finished["operation.shop.shop-on-run-start-0"]
    assert hook.status == "success" and hook.node.relation is None
    assert hook.compiled_sql and "create table if not exists" in hook.compiled_sql
    customers = finished["model.shop.customers"]
    assert customers.status == "success"
    assert customers.node.owner == "data-platform@example.com"
    assert customers.node.tags == ("marts",)
    assert customers.compiled_sql and "per_customer" in customers.compiled_sql
    columns = {c.name: c for c in customers.node.columns}
    assert columns["email"].classification == "pii"
    assert columns["email"].description == "Customer e-mail address."
    orders = finished["model.shop.orders"].node
    assert set(orders.upstream_ids) == {"model.shop.stg_orders", "model.shop.stg_payments"}
    web = finished["model.shop.stg_web_events"].node
    assert web.upstream_ids == ("source.shop.web.events",)
    assert [(r.schema, r.identifier) for r in web.upstream] == [("main_web", "events")]
    seed = finished["seed.shop.raw_customers"]
    assert seed.rows_affected == 5
    test = finished["test.shop.unique_customers_customer_id.c5af1ff4b1"]
    assert test.status == "pass" and test.failures == 0
    assert test.node.test is not None
    assert test.node.test.attached_unique_id == "model.shop.customers"
    assert test.node.test.column_name == "customer_id"
    connection = customers.invocation.connection
    assert connection.adapter_type == "duckdb" and connection.path
    assert customers.invocation.dbt_version and customers.invocation.dbt_version[0].isdigit()


def test_logs_carry_the_trace(duckdb_run: tuple[Materialization, str]) -> None:
    run, json_logs = duckdb_run
    trace_id = ids.trace_id_hex(run.run_id)
    run_span = ids.span_id_hex(ids.run_span_id(run.run_id))
    assert trace_id == run.run_id.replace("-", "")
    # Dagster log messages written by floe name the trace and span.
    floe_messages = [m for m in run.messages if m.startswith("floe:")]
    # dbt started, the event summary; and, where dagster-dbt lacks the private API floe's fast
    # start uses, the one warning that says so.
    assert len([m for m in floe_messages if "Using the public" not in m]) == 2
    for message in floe_messages:
        assert f"[trace_id={trace_id} span_id={run_span}]" in message
    # The adapter's own structured logs are JSON with trace_id and span_id.
    records = [json.loads(line) for line in json_logs.splitlines() if line.strip()]
    assert records
    for record in records:
        assert record["trace_id"] == trace_id
        assert record["span_id"] == run_span
    summary = next(r for r in records if "events_dropped" in r)
    assert summary["events_dropped"] == 0 and summary["events_spooled"] > 0
    # dbt's own JSON log lines carry the trace id in `info.extra`.
    dbt_lines = [
        json.loads(line)
        for line in (run.target_dir() / "dbt.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert len(dbt_lines) > 50
    assert all(line["info"]["extra"]["FLOE_TRACE_ID"] == trace_id for line in dbt_lines)


# --- a failing model, with a real sidecar on the socket ---------------------------------------


@dataclass
class SidecarRun:
    run: Materialization
    delivered: Path  # the sidecar's file sink: every event it received, as NDJSON


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarRun]:
    base = tmp_path_factory.mktemp("failing")
    project = copy_example(base / "shop")
    add_broken_model(project)
    artifacts = prepare(project)
    socket_path = base / "sidecar.sock"
    delivered = base / "delivered.ndjson"
    sidecar = SidecarProcess(
        base / "sidecar-logs",
        "--spool", base / "sidecar-spool", "--socket", socket_path,
        "--no-default-sinks", "--sink", f"file:{delivered}",
    )  # fmt: skip
    try:
        sidecar.wait_listening()
        run = materialize(
            artifacts, {"FLOE_SOCKET": str(socket_path), "FLOE_SPOOL_DIR": str(base / "spool")}
        )
        wait_for(
            lambda: (
                any('"type":"run_finished"' in line for line in delivered.read_text().splitlines())
                if delivered.exists()
                else False
            ),
            60,
            "the sidecar to deliver the run's events",
        )
    finally:
        sidecar.terminate()
    yield SidecarRun(run=run, delivered=delivered)


def test_failed_model_fails_its_asset_skips_downstream_and_keeps_the_rest(
    failing_run: SidecarRun,
) -> None:
    run = failing_run.run
    assert not run.success
    materialized = run.materialized()
    assert ("broken",) not in materialized
    assert ("after_broken",) not in materialized
    unaffected = {tuple(k.path) for k in run.asset_specs} - {("broken",), ("after_broken",)}
    assert materialized == unaffected
    failures = [e for e in run.events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    error_text = failures[0].event_specific_data.error.message
    assert "no_such_column" in error_text  # dbt's error, in the step failure
    log_errors = [m for m in run.messages if "model.shop.broken" in m and "no_such_column" in m]
    assert len(log_errors) == 1  # and in the run log, with the trace
    assert f"trace_id={ids.trace_id_hex(run.run_id)}" in log_errors[0]
    assert any("model.shop.after_broken" in m and "skipped" in m for m in run.messages)


def test_failed_model_event_has_dbt_error_text(failing_run: SidecarRun) -> None:
    run = failing_run.run
    # Every event went over the socket to the real sidecar, which acknowledged all of them.
    assert run.run_tags["floe/events_spooled"] == "0"
    assert run.run_tags["floe/events_dropped"] == "0"
    assert not list_segments(spool_dir(run))
    events = [decode_event(line) for line in failing_run.delivered.read_bytes().splitlines()]
    assert run.run_tags["floe/events_emitted"] == str(len(events))
    check_invocation(run, events, success=False)
    check_node_events(run, events)
    finished = {e.node.unique_id: e for e in events if isinstance(e, NodeFinished)}
    broken = finished["model.shop.broken"]
    assert broken.status == "error"
    assert broken.error and "no_such_column" in broken.error
    assert broken.started_at is not None and broken.started_at <= broken.finished_at
    skipped = finished["model.shop.after_broken"]
    assert skipped.status == "skipped" and skipped.started_at is None
    assert skipped.node.upstream_ids == ("model.shop.broken",)
    assert finished["model.shop.orders"].status == "success"
    end = next(e for e in events if isinstance(e, InvocationFinished))
    assert end.error and "no_such_column" in end.error
    assert isinstance(events[-1], RunFinished) and events[-1].error


# --- PostgreSQL --------------------------------------------------------------------------------


def test_postgres_materialization_and_events(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_example(tmp_path / "shop")
    set_prod_schema(project, postgres.schema)
    monkeypatch.setenv("FLOE_SHOP_WAREHOUSE_PROD_PASSWORD", "")  # trust auth: any password
    artifacts = prepare(project, env="prod")
    assert artifacts.compute.target == "postgres"
    run = materialize(artifacts, {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(tmp_path / "spool")})
    assert run.success, run.messages
    assert run.materialized() == {tuple(k.path) for k in run.asset_specs}
    events = read_spool(tmp_path / "spool")
    check_invocation(run, events, success=True)
    check_node_events(run, events)
    finished = {e.node.unique_id: e for e in events if isinstance(e, NodeFinished)}
    orders = finished["model.shop.orders"]
    assert orders.node.relation is not None
    assert (orders.node.relation.database, orders.node.relation.schema) == (
        postgres.dbname,
        postgres.schema,
    )
    assert orders.rows_affected == 6  # postgres reports rows for `create table as`
    connection = orders.invocation.connection
    assert (connection.target, connection.host, connection.port) == (
        "postgres",
        postgres.host,
        postgres.port,
    )


# --- a spool that cannot be written ------------------------------------------------------------


def test_unwritable_spool_still_materializes_warns_once_and_reports_drops(
    tmp_path: Path,
) -> None:
    project = copy_example(tmp_path / "shop")
    artifacts = prepare(project)
    if os.geteuid() == 0:
        # root writes through permission bits; a file where the directory should be stops it.
        spool = tmp_path / "spool-is-a-file"
        spool.write_text("")
    else:
        spool = tmp_path / "read-only"
        spool.mkdir(mode=0o500)
    collected = io.StringIO()
    configure_logging(stream=collected)
    try:
        run = materialize(
            artifacts,
            {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(spool)},
            selection=[asset_key("raw", "raw_customers"), asset_key("stg_customers")],
        )
    finally:
        configure_logging(stream=sys.stderr)
    assert run.success
    assert run.materialized() == {("raw", "raw_customers"), ("stg_customers",)}
    dropped = int(run.run_tags["floe/events_dropped"])
    assert dropped == int(run.run_tags["floe/events_emitted"]) > 0
    from floe_dagster.step import events_dropped

    assert events_dropped(run.run_tags)[0] == dropped  # what the `floe run` summary reports
    assert run.run_tags["floe/events_drop_reason"].startswith("cannot write the spool")
    warnings = [r for r in run.logs if not r.is_dagster_event and r.level >= 30]
    drop_warnings = [r for r in warnings if "dropped" in r.user_message]
    assert len(drop_warnings) == 1
    assert f"{dropped} dropped" in drop_warnings[0].user_message
    records = [json.loads(line) for line in collected.getvalue().splitlines() if line.strip()]
    assert len([r for r in records if r["level"] == "warning"]) == 1


def asset_key(*path: str) -> Any:
    from dagster import AssetKey

    return AssetKey(list(path))


# --- standalone, through the dagster CLI -------------------------------------------------------


def test_standalone_cli_materializes_everything_without_events(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "shop")
    set_observability(project, enabled=False)
    artifacts = prepare(project)
    assert not artifacts.observability.lineage and not artifacts.observability.traces
    sock_dir = Path(f"/tmp/floe-standalone-{os.getpid()}")
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    sidecar = SidecarStandIn(sock_dir / "s.sock")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "FLOE_ARTIFACTS": str(project / ".floe" / "compiled_artifacts.json"),
        "FLOE_SOCKET": str(sock_dir / "s.sock"),
        "FLOE_SPOOL_DIR": str(tmp_path / "spool"),
        "DAGSTER_HOME": str(dagster_home),
    }
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "dagster"),
                "asset",
                "materialize",
                "-m",
                "floe_dagster.definitions",
                "--select",
                "*",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=400,
        )
    finally:
        sidecar.close()
        (sock_dir / "s.sock").unlink(missing_ok=True)
        sock_dir.rmdir()
    assert result.returncode == 0, result.stderr[-3000:]
    assert sidecar.connections == 0  # no socket opened
    assert not (tmp_path / "spool").exists()  # no spool written
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        materialized = {
            tuple(key.path)
            for key in instance.get_asset_keys()
            if instance.get_latest_materialization_event(key) is not None
        }
    expected = {
        ("raw", "raw_customers"), ("raw", "raw_orders"), ("raw", "raw_payments"),
        ("stg_customers",), ("stg_orders",), ("stg_payments",), ("stg_web_events",),
        ("orders",), ("customers",), ("orders_snapshot",),
    }  # fmt: skip
    assert materialized == expected
    assert "standalone: no events" in result.stderr + result.stdout


# --- a private dagster-dbt API missing: the public path, one warning ----------------------------


def _public_path_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Materialization, list[Event], str]:
    """examples/shop materialized as a dagster-dbt without floe's private API gets it."""
    import threading

    from floe_dagster import compat

    reason = "dagster_dbt.asset_utils.get_updated_cli_invocation_params_for_context does not exist"
    monkeypatch.setattr(compat, "missing_private_apis", lambda: (reason,))
    monkeypatch.setattr(compat, "_warned", threading.Event())
    project = copy_example(tmp_path / "shop")
    artifacts = prepare(project)
    run = materialize(artifacts, {"FLOE_SPOOL_DIR": str(tmp_path / "spool"), "FLOE_SOCKET": None})
    return run, read_spool(tmp_path / "spool"), reason


def test_missing_private_api_takes_the_public_path_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a dagster-dbt that moved its internals gets (0.25 - 0.28 are such): the run goes on,
    through the public ``DbtCliResource.cli()``, with the same assets and events, and says why
    once. ``cli()`` starts the ``floe-dbt`` command, so the warehouse's columns are captured: the
    column lineage is the hand-written truth, and Dagster shows the column schema."""
    from support.shop_column_lineage import SHOP, facet_edges, truth_edges

    from floe_sidecar.sinks.openlineage import translate_event

    run, events, reason = _public_path_run(tmp_path, monkeypatch)
    assert run.success
    assert run.materialized() == {tuple(key.path) for key in run.asset_specs}
    warnings = [
        entry.user_message
        for entry in run.logs
        if entry.dagster_event is None
        and "Using the public DbtCliResource.cli()" in entry.user_message
    ]
    assert len(warnings) == 1 and reason in warnings[0], warnings
    started = {e.node.unique_id for e in events if isinstance(e, NodeStarted)}
    finished = {e.node.unique_id for e in events if isinstance(e, NodeFinished)}
    executed = {
        unique_id
        for unique_id, props in run.manifest["nodes"].items()
        if props["resource_type"] in {"model", "seed", "snapshot", "test"}
        and props["config"].get("materialized") != "ephemeral"
    }
    assert executed <= started and executed <= finished
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    # The columns, as the warehouse has them, and the column lineage of every model.
    by_id = {e.node.unique_id: e for e in events if isinstance(e, NodeFinished)}
    wrong = {}
    for truth in SHOP:
        if truth.unique_id.startswith("source."):
            continue
        event = by_id[truth.unique_id]
        names = [c.name for c in event.output_columns]
        if names != [name for name, _, _ in truth.columns]:
            wrong[truth.unique_id] = f"columns {names}"
        if truth.unique_id.startswith("seed."):
            continue
        [complete] = [e for e in translate_event(event) if e["eventType"] == "COMPLETE"]
        facet = complete["outputs"][0]["facets"].get("columnLineage") or {}
        if facet_edges(facet) != truth_edges(truth):
            wrong[truth.unique_id] = f"edges {facet_edges(facet)}"
    assert wrong == {}
    materializations = {
        tuple(e.asset_key.path): e.event_specific_data.materialization.metadata
        for e in run.events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    schema = materializations[("customers",)]["dagster/column_schema"].schema
    assert [c.name for c in schema.columns][:3] == ["customer_id", "first_name", "email"]
    assert "dagster/column_lineage" in materializations[("customers",)]


def test_public_path_without_the_floe_dbt_command_runs_dbt_without_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``floe-dbt`` command not installed beside this interpreter: ``cli()`` starts ``dbt``
    as before, the run and its events are the same, only the warehouse's columns are missing."""
    from floe_dbt import runner

    monkeypatch.setattr(runner, "RUNNER_SCRIPT", "floe-dbt-not-installed")
    run, events, _ = _public_path_run(tmp_path, monkeypatch)
    assert run.success
    assert run.materialized() == {tuple(key.path) for key in run.asset_specs}
    finished = [e for e in events if isinstance(e, NodeFinished)]
    assert {e.node.unique_id for e in finished} >= {"model.shop.customers", "seed.shop.raw_orders"}
    assert all(e.output_columns == () and e.column_lineage is None for e in finished)
    assert sum(isinstance(e, RunFinished) for e in events) == 1


# --- no manifest, and a light package import -----------------------------------------------------


def test_missing_manifest_says_what_to_run(example_dir: Path) -> None:
    from floe_dagster.assets import build_definitions
    from floe_dagster.manifest import ManifestNotFoundError
    from floe_dbt.compile import compile_floe

    artifacts = compile_floe(example_dir / "floe.yaml", output_dir=example_dir / ".floe")
    assert not Path(artifacts.dbt_manifest_path).exists()
    with pytest.raises(ManifestNotFoundError) as info:
        build_definitions(artifacts)
    message = str(info.value)
    assert artifacts.dbt_manifest_path in message
    assert "floe run" in message
    assert (
        f"dbt parse --project-dir {artifacts.dbt_project_path} "
        f"--profiles-dir {artifacts.dbt_profiles_path}"
    ) in message


def test_importing_the_package_does_not_import_dagster() -> None:
    code = (
        "import sys, floe_dagster; "
        "assert 'dagster' not in sys.modules and 'dagster_dbt' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
