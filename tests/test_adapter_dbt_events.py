"""The dbt-log-line -> floe-event builder on its own: the cases a healthy dbt run does not show
(dbt dying mid-run, a node the manifest does not know yet, an ephemeral model, naive timestamps),
and the normalisation of dbt owners for Dagster.

The lines have the shape dbt 1.11 writes with ``--log-format json`` (see docs/events.md); the
end-to-end behaviour on real dbt output is covered by test_adapter_dagster.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floe_core.events import (
    Column,
    Connection,
    DagsterRun,
    InvocationFinished,
    InvocationStarted,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    decode_event,
    encode_event,
)
from floe_dagster.columns import CapturedColumns
from floe_dagster.dbt_events import DbtEventBuilder, dbt_time
from floe_dagster.manifest import ManifestIndex

RUN_ID = "0d9f8e7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
INVOCATION = "5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716"


def node(name: str, materialized: str, depends_on: list[str]) -> dict[str, Any]:
    return {
        "unique_id": f"model.p.{name}",
        "name": name,
        "resource_type": "model",
        "package_name": "p",
        "database": "db",
        "schema": "main",
        "alias": name,
        "config": {"materialized": materialized, "meta": {"owner": "team-a"}},
        "depends_on": {"nodes": depends_on},
        "columns": {"email": {"name": "email", "meta": {"classification": "pii"}}},
        "original_file_path": f"models/{name}.sql",
        "path": f"{name}.sql",
        "tags": ["t"],
    }


MANIFEST = {
    "metadata": {"project_name": "p", "adapter_type": "duckdb"},
    "nodes": {
        "model.p.a": node("a", "table", ["source.p.raw.events"]),
        "model.p.eph": node("eph", "ephemeral", ["model.p.a"]),
        "model.p.b": node("b", "view", ["model.p.eph"]),
    },
    "sources": {
        "source.p.raw.events": {
            "unique_id": "source.p.raw.events",
            "resource_type": "source",
            "name": "events",
            "source_name": "raw",
            "identifier": "events_table",
            "database": "db",
            "schema": "raw",
        }
    },
}


def builder() -> DbtEventBuilder:
    return DbtEventBuilder(
        index=ManifestIndex(MANIFEST),
        run=DagsterRun(run_id=RUN_ID, job_name="job"),
        project_name="p",
        environment="dev",
        connection=Connection(target="duckdb", adapter_type="duckdb"),
        attributes={"tenant": "t"},
    )


def line(name: str, level: str = "info", **data: Any) -> dict[str, Any]:
    return {
        "info": {
            "name": name,
            "level": level,
            "invocation_id": INVOCATION,
            "ts": "2024-05-01T12:00:05.000001Z",
            "msg": data.pop("msg", ""),
        },
        "data": data,
    }


def node_info(unique_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "node_name": unique_id.rsplit(".", 1)[-1],
        "resource_type": "model",
        "materialized": "table",
        "node_started_at": "2024-05-01T12:00:01.500000",
        "node_finished_at": "",
        **extra,
    }


def test_dbt_dying_mid_run_leaves_the_started_node_unfinished() -> None:
    b = builder()
    events = b.handle(line("MainReportVersion", version="=1.11.16"))
    events += b.handle(line("LogStartLine", node_info=node_info("model.p.a")))
    events += b.handle(line("LogStartLine", node_info=node_info("model.p.b")))
    done = node_info("model.p.a", node_finished_at="2024-05-01T12:00:02")
    events += b.handle(
        line("NodeFinished", "debug", node_info=done, run_result={"status": "success"})
    )
    events += b.handle(line("SomeError", "error", msg="\x1b[31mDatabase Error: gone\x1b[0m"))
    events += b.finish(success=False)  # dbt exited without CommandCompleted
    assert [type(e) for e in events] == [
        InvocationStarted,
        NodeStarted,
        NodeStarted,
        NodeFinished,
        InvocationFinished,
    ]
    end = events[-1]
    assert isinstance(end, InvocationFinished)
    assert not end.success
    assert end.error == "Database Error: gone"  # dbt's error line, colours removed
    assert [u.node.unique_id for u in end.unfinished] == ["model.p.b"]
    assert end.unfinished[0].started_at == datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC)
    assert b.finish(success=False) == []  # closed once
    for event in events:  # every event survives the wire format
        assert decode_event(encode_event(event)) == event


def test_ephemeral_models_get_no_events_and_are_seen_through() -> None:
    b = builder()
    b.handle(line("MainReportVersion"))
    info = node_info("model.p.eph", materialized="ephemeral")
    assert b.handle(line("NodeFinished", "debug", node_info=info, run_result={})) == []
    events = b.handle(line("LogStartLine", node_info=node_info("model.p.b")))
    started = events[0]
    assert isinstance(started, NodeStarted)
    # b reads the ephemeral model, which reads a, which reads the source.
    assert started.node.upstream_ids == ("model.p.a",)
    a = b.index.node("model.p.a")
    assert a is not None
    assert a.upstream_ids == ("source.p.raw.events",)
    assert a.upstream[0].identifier == "events_table"
    assert a.columns[0].classification == "pii" and a.owner == "team-a"


def test_a_node_missing_from_the_manifest_still_gets_events() -> None:
    b = builder()
    b.handle(line("MainReportVersion"))
    relation = {"database": "db", "schema": "main", "alias": "new_model"}
    info = node_info("model.p.new_model", node_relation=relation)
    (started,) = b.handle(line("LogStartLine", node_info=info))
    assert isinstance(started, NodeStarted)
    assert started.node.name == "new_model"
    assert started.node.relation is not None
    assert started.node.relation.identifier == "new_model"


def test_skipped_node_has_no_start_and_failed_node_carries_the_error() -> None:
    b = builder()
    b.handle(line("MainReportVersion"))
    b.handle(line("LogStartLine", node_info=node_info("model.p.a")))
    failed = b.handle(
        line(
            "NodeFinished",
            "debug",
            node_info=node_info("model.p.a", node_status="error"),
            run_result={"status": "error", "message": "Runtime Error\n  column x missing"},
        )
    )[0]
    assert isinstance(failed, NodeFinished)
    assert failed.error == "Runtime Error\n  column x missing"
    skipped = b.handle(
        line(
            "NodeFinished",
            "debug",
            node_info=node_info("model.p.b", node_status="skipped"),
            run_result={"status": "skipped", "message": ""},
        )
    )[0]
    assert isinstance(skipped, NodeFinished)
    assert skipped.status == "skipped" and skipped.started_at is None and skipped.error is None


def test_dbt_timestamps_become_aware_utc() -> None:
    assert dbt_time("2024-05-01T12:00:01.5") == datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC)
    assert dbt_time("2024-05-01T12:00:01Z") == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert dbt_time("") is None and dbt_time(None) is None and dbt_time("yesterday") is None


def test_owners_are_normalised_to_what_dagster_accepts() -> None:
    from floe_dagster.translator import normalize_owner, normalize_owners

    assert normalize_owner("finance@example.com") == "finance@example.com"
    assert normalize_owner("team:finance") == "team:finance"
    assert normalize_owner("Data Platform") == "team:data-platform"
    assert normalize_owner("  ") is None
    assert normalize_owners("a@example.com, Data Platform, a@example.com") == [
        "a@example.com",
        "team:data-platform",
    ]


# --- columns: what the statement's lineage cannot resolve costs only that --------------------


def _finish_a(b: DbtEventBuilder) -> NodeFinished:
    events = b.handle(line("MainReportVersion", version="=1.11.16"))
    events += b.handle(line("LogStartLine", node_info=node_info("model.p.a")))
    done = node_info("model.p.a", node_finished_at="2024-05-01T12:00:02")
    events += b.handle(
        line("NodeFinished", "debug", node_info=done, run_result={"status": "success"})
    )
    [finished] = [e for e in events if isinstance(e, NodeFinished)]
    return finished


def test_a_statement_lineage_cannot_fully_resolve_keeps_what_it_could(tmp_path: Path) -> None:
    from floe_sidecar.sinks.openlineage import translate_event

    events_table = Relation(database="db", schema="raw", identifier="events_table")
    compiled = tmp_path / "compiled" / "p" / "models" / "a.sql"
    compiled.parent.mkdir(parents=True)
    # A table function's columns are nobody's to know: r.* cannot be expanded.
    compiled.write_text(
        'select e.email, upper(e.kind) as kind, r.* from "db"."raw"."events_table" as e '
        "cross join generate_series(1, 2) as r"
    )

    def capture(node: Node) -> CapturedColumns:
        return CapturedColumns(
            output=(
                Column(name="email", data_type="VARCHAR"),
                Column(name="kind", data_type="VARCHAR"),
                Column(name="r", data_type="BIGINT"),
            ),
            upstream={events_table: (Column(name="email"), Column(name="kind"))},
        )

    b = builder()
    b.target_path = tmp_path
    b.capture_columns = capture
    finished = _finish_a(b)
    assert finished.status == "success"
    assert [c.name for c in finished.output_columns] == ["email", "kind", "r"]
    assert finished.column_lineage is not None
    assert finished.column_lineage.errors  # what it could not resolve, said
    [complete] = translate_event(finished)
    output = complete["outputs"][0]["facets"]
    assert set(output["columnLineage"]["fields"]) == {"email", "kind"}
    [email] = output["columnLineage"]["fields"]["email"]["inputFields"]
    assert (email["name"], email["field"]) == ("db.raw.events_table", "email")
    assert complete["run"]["facets"]["extractionError"]["errors"]
    assert [f["name"] for f in output["schema"]["fields"]] == ["email", "kind", "r"]


def test_a_capture_that_raises_costs_the_columns_never_the_event(tmp_path: Path) -> None:
    def capture(node: Node) -> CapturedColumns:
        raise RuntimeError("the warehouse went away")

    b = builder()
    b.target_path = tmp_path
    b.capture_columns = capture
    finished = _finish_a(b)
    assert finished.status == "success" and finished.output_columns == ()
    assert finished.column_lineage is None
    assert b.column_errors == ["model.p.a: RuntimeError: the warehouse went away"]
