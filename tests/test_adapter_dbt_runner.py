"""dbt through dbt's programmatic runner (``floe_dbt.runner``), and the column capture in it.

Real runs of examples/shop: the runner's stdout is the ``dbt`` command's (same JSON events, same
exit codes); a Dagster materialization on DuckDB and on PostgreSQL gives every model, seed and
snapshot ``node_finished`` the relation's real columns with the warehouse's types, and column
lineage; a failing model still fails its asset with dbt's message; the ``dbt`` command is still
there as the fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.adapter import (
    Materialization,
    add_broken_model,
    copy_example,
    materialize,
    prepare,
    read_spool,
    set_prod_schema,
)
from support.environment import Postgres

from floe_core.events import (
    Column,
    Connection,
    DagsterRun,
    Event,
    InvocationStarted,
    Node,
    NodeFinished,
    NodeStarted,
)
from floe_dagster.column_notes import NotedColumns
from floe_dagster.dbt_events import DbtEventBuilder
from floe_dagster.manifest import ManifestIndex, dbt_executable
from floe_dagster.resource import dbt_arguments
from floe_dbt import runner
from floe_dbt.column_note import MARKER, CapturedRelation, ColumnNote, decode, encode
from floe_dbt.runner import (
    RUNNER_ENV,
    RUNNER_MODULE,
    RUNNER_SCRIPT,
    exit_code,
    runner_command,
    runner_executable,
)

pytestmark = pytest.mark.slow

DESCRIBED = ("model", "seed", "snapshot")
COLUMNS_QUERY = (
    "select table_schema, table_name, column_name, data_type from information_schema.columns "
    "where table_schema like {} order by table_schema, table_name, ordinal_position"
)


def warehouse_columns(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, name, data_type in rows:
        found.setdefault((schema, table), []).append((name, data_type))
    return found


def check_typed_columns(
    events: list[Event], warehouse: Mapping[tuple[str, str], list[tuple[str, str]]]
) -> None:
    """Each built relation's node_finished has exactly the warehouse's columns and types."""
    finished = [e for e in events if isinstance(e, NodeFinished)]
    described = [e for e in finished if e.node.resource_type in DESCRIBED and e.status == "success"]
    assert {e.node.resource_type for e in described} == set(DESCRIBED)
    for event in described:
        relation = event.node.relation
        assert relation is not None
        real = warehouse[(relation.schema or "", relation.identifier)]
        assert [(c.name, c.data_type) for c in event.output_columns] == real, event.node.unique_id
        if event.node.resource_type == "model":
            assert event.column_lineage is not None, event.node.unique_id
            assert [c.column for c in event.column_lineage.columns] == [n for n, _ in real]
    for event in finished:
        if event.node.resource_type not in DESCRIBED:
            assert event.output_columns == ()


def check_every_node_started_and_finished(run: Materialization, events: list[Event]) -> None:
    results = {r["unique_id"]: r for r in run.run_results()["results"]}
    started = Counter(e.node.unique_id for e in events if isinstance(e, NodeStarted))
    finished = Counter(e.node.unique_id for e in events if isinstance(e, NodeFinished))
    executed = {u for u, r in results.items() if r["status"] != "skipped"}
    assert started == Counter(executed)
    assert finished == Counter(list(results))


def runner_dbt_command(events: list[Event]) -> tuple[str, ...]:
    [started] = [e for e in events if isinstance(e, InvocationStarted)]
    return started.invocation.command


# --- the runner's stdout is the dbt command's ---------------------------------------------------


def dbt_lines(command: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, list[Any]]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=dict(env))
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines


def event_shape(lines: list[Any]) -> Counter[tuple[str, str, str]]:
    """What dbt said, per event: its name, level and node (not its times or ids)."""
    shape: Counter[tuple[str, str, str]] = Counter()
    for line in lines:
        info = line["info"]
        node = (line.get("data") or {}).get("node_info") or {}
        shape[(info["name"], info["level"], node.get("unique_id", ""))] += 1
    return shape


def test_runner_stdout_and_exit_codes_are_the_dbt_commands(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "shop")
    add_broken_model(project)
    artifacts = prepare(project)
    env = {
        **os.environ,
        "DBT_LOG_FORMAT": "json",
        "DBT_LOG_LEVEL": "debug",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": artifacts.dbt_profiles_path,
    }
    args = ["build", "--threads", "1", "--exclude", "broken+"]
    dbt_dir = Path(artifacts.dbt_project_path)
    code, command_lines = dbt_lines([dbt_executable(), *args], dbt_dir, env)
    assert code == 0
    runner = [sys.executable, "-m", RUNNER_MODULE]
    runner_code, runner_lines = dbt_lines([*runner, *args], dbt_dir, env)
    assert runner_code == 0
    # Version checks and timings differ run to run; everything else is the same, node by node.
    noise = {"MainReportVersion", "CheckNodeTestFailure", "Formatting"}
    command_shape = event_shape([x for x in command_lines if x["info"]["name"] not in noise])
    runner_shape = event_shape([x for x in runner_lines if x["info"]["name"] not in noise])
    differences = (command_shape - runner_shape) + (runner_shape - command_shape)
    # dbt's connection bookkeeping (which named connection is reused when) may differ.
    bookkeeping = ("SQLQuery", "Connection", "NewConnection")
    assert not [d for d in differences if not d[0].startswith(bookkeeping)]
    assert any(name == "NodeFinished" for name, _, _ in runner_shape)
    # No capture unless asked: no floe notes.
    assert not [x for x in runner_lines if decode(x["info"].get("msg"))]
    # A failing model: 1, as dbt; with the capture on, one note per built relation.
    broken_code, broken_lines = dbt_lines(
        [*runner, "build", "--select", "stg_orders", "broken"],
        dbt_dir,
        {**env, "FLOE_CAPTURE_COLUMNS": "1"},
    )
    assert broken_code == 1
    notes = [n for x in broken_lines if (n := decode(x["info"].get("msg"))) is not None]
    # The failed node is asked about too (dbt has not said it failed yet): it has no relation.
    by_node = {n.unique_id: n for n in notes}
    assert sorted(by_node) == ["model.shop.broken", "model.shop.stg_orders"]
    assert by_node["model.shop.stg_orders"].error is None
    assert by_node["model.shop.stg_orders"].columns
    assert by_node["model.shop.broken"].columns == ()
    # dbt could not run at all: 2, as dbt.
    bad_code, _ = dbt_lines([*runner, "build", "--no-such-flag"], dbt_dir, env)
    assert bad_code == 2


def _floe_read(lines: list[Any]) -> list[tuple[str, str]]:
    """What floe's event builder reads of dbt's lines, in order: node events and floe's notes."""
    read = {"NodeExecuting", "NodeFinished", "CommandCompleted", "LogStartLine"}
    read |= set(runner.RESULT_EVENTS)
    out = []
    for line in lines:
        info = line["info"]
        note = decode(info.get("msg"))
        if note is not None:
            out.append(("floe-note", note.unique_id))
        elif info["name"] in read:
            node = (line.get("data") or {}).get("node_info") or {}
            out.append((info["name"], node.get("unique_id", "")))
    return out


def test_the_runner_relays_the_debug_events_floe_reads_and_no_other(tmp_path: Path) -> None:
    """With the relay, dbt's stdout stays at info and only the debug-level lines floe reads are
    added: the same ones, node by node in the same order, as dbt's stdout at debug gives."""
    project = copy_example(tmp_path / "shop")
    artifacts = prepare(project)
    env = {
        **os.environ,
        "DBT_LOG_FORMAT": "json",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": artifacts.dbt_profiles_path,
        "FLOE_CAPTURE_COLUMNS": "1",
    }
    env.pop("DBT_LOG_LEVEL", None)
    dbt_dir = Path(artifacts.dbt_project_path)
    command = [sys.executable, "-m", RUNNER_MODULE, "build", "--threads", "1"]
    code, debug_lines = dbt_lines(command, dbt_dir, {**env, "DBT_LOG_LEVEL": "debug"})
    assert code == 0
    code, relayed = dbt_lines(command, dbt_dir, {**env, runner.RELAY_ENV: "1"})
    assert code == 0
    assert _floe_read(relayed) == _floe_read(debug_lines)
    names = Counter(x["info"]["name"] for x in relayed)
    assert names["NodeFinished"] > 20 and names["CommandCompleted"] == 1
    assert sum(1 for x in relayed if decode(x["info"].get("msg"))) == 10  # a note per relation
    assert not names["SQLQuery"] and not names["ConnectionClosed"]  # dbt's other debug lines
    assert len(relayed) * 3 < len(debug_lines)
    # Asked to relay while dbt's stdout is at debug anyway: every line once, none twice.
    code, both = dbt_lines(
        command, dbt_dir, {**env, runner.RELAY_ENV: "1", "DBT_LOG_LEVEL": "debug"}
    )
    assert code == 0
    assert _floe_read(both) == _floe_read(debug_lines)


def test_a_dbt_without_what_the_relay_needs_runs_its_stdout_at_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dbt_common.events.functions as functions

    environ = {runner.RELAY_ENV: "1"}
    assert [type(c) for c in runner.relay_or_debug(environ)] == [runner.NodeEventRelay]
    assert "DBT_LOG_LEVEL" not in environ
    monkeypatch.delattr(functions, "msg_to_json")
    assert runner.relay_or_debug(environ) == []
    assert environ["DBT_LOG_LEVEL"] == "debug"
    assert runner.relay_or_debug({}) == []  # not asked: nothing


# --- Dagster materializations with the capture --------------------------------------------------


def test_duckdb_node_finished_carries_the_real_typed_columns(tmp_path: Path) -> None:
    import duckdb  # installed with dbt-duckdb

    project = copy_example(tmp_path / "shop")
    artifacts = prepare(project)
    run = materialize(artifacts, {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(tmp_path / "spool")})
    assert run.success, run.messages
    events = read_spool(tmp_path / "spool")
    with duckdb.connect(str(project / ".floe" / "shop.duckdb"), read_only=True) as connection:
        rows = connection.execute(COLUMNS_QUERY.format("?"), ["main%"]).fetchall()
    check_typed_columns(events, warehouse_columns(rows))
    check_every_node_started_and_finished(run, events)
    command = runner_dbt_command(events)
    assert command[0] == "build" and RUNNER_MODULE not in command
    # Dagster's materializations carry the same columns.
    materializations = [e for e in run.events if e.event_type_value == "ASSET_MATERIALIZATION"]
    schemas = {
        tuple(e.asset_key.path): e.event_specific_data.materialization.metadata.get(
            "dagster/column_schema"
        )
        for e in materializations
    }
    assert [key for key, schema in schemas.items() if schema is None] == []
    customers = next(s for k, s in schemas.items() if k == ("customers",))
    assert customers is not None
    assert {c.name: c.type for c in customers.schema.columns}["email"] == "VARCHAR"


def test_postgres_node_finished_carries_the_real_typed_columns(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg2  # installed with dbt-postgres

    project = copy_example(tmp_path / "shop")
    set_prod_schema(project, postgres.schema)
    monkeypatch.setenv("FLOE_SHOP_WAREHOUSE_PROD_PASSWORD", "")  # trust auth
    artifacts = prepare(project, env="prod")
    run = materialize(artifacts, {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(tmp_path / "spool")})
    assert run.success, run.messages
    events = read_spool(tmp_path / "spool")
    with (
        psycopg2.connect(
            host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(COLUMNS_QUERY.format("%s"), [postgres.schema + "%"])
        rows = cursor.fetchall()
    check_typed_columns(events, warehouse_columns(rows))
    check_every_node_started_and_finished(run, events)


def test_failing_model_fails_its_asset_with_dbts_message_and_the_rest_keep_columns(
    tmp_path: Path,
) -> None:
    project = copy_example(tmp_path / "shop")
    add_broken_model(project)
    artifacts = prepare(project)
    run = materialize(artifacts, {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(tmp_path / "spool")})
    assert not run.success
    assert ("broken",) not in run.materialized()
    failures = [e for e in run.events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    assert "no_such_column" in failures[0].event_specific_data.error.message
    events = read_spool(tmp_path / "spool")
    check_every_node_started_and_finished(run, events)
    finished = {e.node.unique_id: e for e in events if isinstance(e, NodeFinished)}
    broken = finished["model.shop.broken"]
    assert broken.status == "error" and broken.error and "no_such_column" in broken.error
    assert broken.output_columns == ()
    assert finished["model.shop.orders"].output_columns


def test_the_dbt_command_is_the_fallback(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "shop")
    artifacts = prepare(project)
    run = materialize(
        artifacts,
        {
            "FLOE_SOCKET": None,
            "FLOE_SPOOL_DIR": str(tmp_path / "spool"),
            RUNNER_ENV: "subprocess",
        },
    )
    assert run.success, run.messages
    events = read_spool(tmp_path / "spool")
    check_every_node_started_and_finished(run, events)
    # The dbt command has no capture: the events are all there, without columns.
    assert all(e.output_columns == () for e in events if isinstance(e, NodeFinished))


# --- the pieces ---------------------------------------------------------------------------------


def test_runner_is_used_only_for_this_interpreters_dbt() -> None:
    here = str(Path(sys.executable).parent / "dbt")
    assert runner_command(here, {}) == [sys.executable, "-m", RUNNER_MODULE]
    assert runner_command("dbt", {}) == [sys.executable, "-m", RUNNER_MODULE]
    assert runner_command(here, {RUNNER_ENV: "subprocess"}) is None
    assert runner_command(str(Path("elsewhere") / "bin" / "dbt"), {}) is None
    assert runner_command(str(Path(sys.executable).parent / "dbtf"), {}) is None
    assert dbt_arguments([sys.executable, "-m", RUNNER_MODULE, "build", "-s", "x"]) == (
        "build",
        "-s",
        "x",
    )
    assert dbt_arguments([here, "build"]) == ("build",)
    assert (exit_code(True, None), exit_code(False, None), exit_code(False, OSError())) == (0, 1, 2)


def test_the_floe_dbt_command_stands_in_for_this_interpreters_dbt_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The public path's dbt executable: the installed ``floe-dbt`` command, same cases as the
    runner; missing, plain ``dbt`` (None)."""
    here = str(Path(sys.executable).parent / "dbt")
    script = Path(sys.executable).parent / RUNNER_SCRIPT
    assert runner_executable(here, {}) == str(script)
    assert runner_executable("dbt", {}) == str(script)
    assert runner_executable(here, {RUNNER_ENV: "subprocess"}) is None
    assert runner_executable(str(Path("elsewhere") / "bin" / "dbt"), {}) is None
    # It is dbt: the same version line dagster-dbt's cli() parses from ``dbt --version``.
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "installed:" in version.stdout
    monkeypatch.setattr(runner, "RUNNER_SCRIPT", "floe-dbt-not-installed")
    assert runner_executable(here, {}) is None


def test_column_note_round_trip_and_foreign_messages() -> None:
    note = ColumnNote(
        unique_id="model.p.m",
        relation=CapturedRelation(database="db", schema="s", identifier="m"),
        columns=(("id", "INTEGER"), ("name", None)),
        seconds=0.01,
    )
    message = encode(note)
    assert message.startswith(MARKER)
    assert decode(message) == note
    assert decode("Running with dbt=1.11") is None
    assert decode(MARKER + "{not json") is None
    assert decode(None) is None


def _builder(notes: NotedColumns) -> DbtEventBuilder:
    manifest: dict[str, Any] = {
        "metadata": {"adapter_type": "duckdb", "project_name": "p"},
        "nodes": {
            "model.p.m": {
                "unique_id": "model.p.m",
                "name": "m",
                "resource_type": "model",
                "database": "db",
                "schema": "s",
                "alias": "m",
                "config": {"materialized": "table"},
                "depends_on": {"nodes": []},
                "columns": {},
            }
        },
        "sources": {},
    }
    return DbtEventBuilder(
        index=ManifestIndex(manifest),
        run=DagsterRun(run_id="r1", job_name="j"),
        project_name="p",
        environment="dev",
        connection=Connection(target="duckdb", adapter_type="duckdb"),
        capture_columns=notes,
    )


def _line(name: str, data: dict[str, Any], msg: str = "") -> dict[str, Any]:
    return {
        "info": {"name": name, "level": "debug", "invocation_id": "i1", "msg": msg},
        "data": data,
    }


def _node_lines(status: str) -> list[dict[str, Any]]:
    node_info = {"unique_id": "model.p.m", "resource_type": "model", "node_status": status}
    return [
        _line("LogStartLine", {"node_info": node_info}),
        _line("NodeFinished", {"node_info": node_info, "run_result": {"status": status}}),
    ]


def test_noted_columns_reach_the_event_and_a_failed_capture_never_costs_it() -> None:
    relation = CapturedRelation(database="db", schema="s", identifier="m")
    for noted, expected in (
        (ColumnNote("model.p.m", relation, columns=(("id", "INTEGER"),)), ("id", "INTEGER")),
        (ColumnNote("model.p.m", relation, error="OperationalError: gone"), None),
    ):
        notes = NotedColumns()
        builder = _builder(notes)
        start, finish = _node_lines("success")
        assert builder.handle(start)
        assert notes.take(_line("Note", {}, encode(noted)))
        assert not notes.take(start)
        [event] = [e for e in builder.handle(finish) if isinstance(e, NodeFinished)]
        if expected is None:
            assert event.output_columns == ()
            assert builder.column_errors and "OperationalError: gone" in builder.column_errors[0]
        else:
            assert [(c.name, c.data_type) for c in event.output_columns] == [expected]
            assert event.output_columns == (Column(name="id", data_type="INTEGER"),)
        assert notes(Node(unique_id="model.p.m", name="m", resource_type="model")) is None
