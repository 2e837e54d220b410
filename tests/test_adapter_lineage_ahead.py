"""Column lineage prepared while the node runs: the same facet as computed when it finishes.

The parser's half (parse, qualify, walk) is done from the compiled SQL and the upstream columns
in a thread of its own when dbt starts executing a node; the node's real columns only name the
result. These tests hold that this changes nothing in what the event carries, and that a result
prepared from anything else than the finished node's very input is never used.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.column_lineage_corpus import CASES, upstream_of

from floe_core.column_lineage import column_lineage, prepare_lineage
from floe_core.events import Column, Connection, DagsterRun, Node, NodeFinished, Relation
from floe_dagster import columns as columns_module
from floe_dagster.columns import CapturedColumns, LineageInput, LineageWorker
from floe_dagster.dbt_events import DbtEventBuilder
from floe_dagster.manifest import ManifestIndex

SRC = Relation(database="db", schema="raw", identifier="events_table")
SQL = (
    'with e as (select * from "db"."raw"."events_table") '
    "select email, md5(email) as email_hash, count(*) over (partition by kind) as n from e"
)
OUTPUT = (
    Column(name="email", data_type="VARCHAR"),
    Column(name="email_hash", data_type="VARCHAR"),
    Column(name="n", data_type="BIGINT"),
)
UPSTREAM = {SRC: (Column(name="email"), Column(name="kind"))}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_prepared_then_completed_is_column_lineage(case) -> None:  # type: ignore[no-untyped-def]
    upstream = upstream_of(case)
    prepared = prepare_lineage(case.sql, dialect=case.dialect, upstream=upstream)
    assert prepared.complete() == column_lineage(case.sql, dialect=case.dialect, upstream=upstream)
    # Named as a relation that lacks one column and has one the SQL never selects; twice over,
    # because completing leaves the prepared half as it was.
    selected = [f.column for f in prepared.complete().columns]
    output = (*[Column(name=n) for n in selected[1:]], Column(name="extra"))
    expected = column_lineage(
        case.sql, dialect=case.dialect, upstream=upstream, output_columns=output
    )
    assert prepared.complete(output) == expected
    assert prepared.complete(output) == expected


def test_unreadable_sql_completes_to_its_error_alone() -> None:
    for sql in ("", "   "):
        lineage = prepare_lineage(sql, dialect="duckdb", upstream={}).complete(OUTPUT)
        assert lineage.columns == () and lineage.errors == ("no compiled SQL",)


def _input(sql: str = SQL, upstream: dict[Relation, tuple[Column, ...]] = UPSTREAM) -> LineageInput:
    return LineageInput(
        compiled_sql=sql, dialect="duckdb", upstream=upstream, default_relation=None
    )


def test_the_worker_hands_back_only_what_it_prepared_from_the_same_input() -> None:
    worker = LineageWorker()
    try:
        worker.submit("model.p.a", _input())
        prepared = worker.prepared_for("model.p.a")(_input())
        assert prepared is not None
        assert prepared.complete(OUTPUT) == column_lineage(
            SQL, dialect="duckdb", upstream=UPSTREAM, output_columns=OUTPUT
        )
        assert worker.prepared_for("model.p.a")(_input()) is None  # handed back once
        # Upstream columns that changed since the node started (a source described at its end):
        worker.submit("model.p.a", _input(upstream={SRC: ()}))
        assert worker.prepared_for("model.p.a")(_input()) is None
        worker.submit("model.p.a", _input())
        assert worker.prepared_for("model.p.a")(_input(sql=SQL + " where kind = 'x'")) is None
        worker.submit("model.p.b", _input())
        worker.forget("model.p.b")
        assert worker.prepared_for("model.p.b")(_input()) is None
    finally:
        worker.close()


class _Held(LineageInput):
    """An input whose preparation waits until released: the worker is busy with it."""

    def prepare(self):  # type: ignore[no-untyped-def]
        _release.wait(timeout=30)
        return super().prepare()


_release = threading.Event()


def test_a_node_still_queued_is_withdrawn_and_computed_by_the_caller() -> None:
    worker = LineageWorker()
    _release.clear()
    try:
        worker.submit("model.p.busy", _Held(SQL, "duckdb", UPSTREAM, None))
        worker.submit("model.p.a", _input())
        # The worker is busy with the other node: waiting would be slower than computing now.
        assert worker.prepared_for("model.p.a")(_input()) is None
        _release.set()
        busy = worker.prepared_for("model.p.busy")(_Held(SQL, "duckdb", UPSTREAM, None))
        assert busy is not None  # being computed: waited for
    finally:
        _release.set()
        worker.close()


MANIFEST = {
    "metadata": {"project_name": "p", "adapter_type": "duckdb"},
    "nodes": {
        "model.p.a": {
            "unique_id": "model.p.a",
            "name": "a",
            "resource_type": "model",
            "package_name": "p",
            "database": "db",
            "schema": "main",
            "alias": "a",
            "config": {"materialized": "table"},
            "depends_on": {"nodes": ["source.p.raw.events"]},
            "columns": {},
            "original_file_path": "models/a.sql",
            "path": "a.sql",
        }
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
            "columns": {
                "email": {"name": "email", "meta": {"classification": "pii"}},
                "kind": {"name": "kind"},
            },
        }
    },
}


def _line(name: str, level: str = "info", **data: object) -> dict[str, object]:
    info = {"name": name, "level": level, "invocation_id": "i1", "ts": "2024-05-01T12:00:05Z"}
    return {"info": {**info, "msg": ""}, "data": data}


def _run(tmp_path: Path, *, rewrite_after_start: bool, capture_at_init: bool) -> NodeFinished:
    compiled = tmp_path / "compiled" / "p" / "models" / "a.sql"
    compiled.parent.mkdir(parents=True, exist_ok=True)
    compiled.write_text(SQL)

    def capture(node: Node) -> CapturedColumns:
        return CapturedColumns(output=OUTPUT)

    b = DbtEventBuilder(
        index=ManifestIndex(MANIFEST),
        run=DagsterRun(run_id="r1", job_name="j"),
        project_name="p",
        environment="dev",
        connection=Connection(target="duckdb", adapter_type="duckdb"),
        capture_columns=capture if capture_at_init else None,
        target_path=tmp_path,
    )
    b.capture_columns = capture
    info = {"unique_id": "model.p.a", "resource_type": "model", "node_status": "success"}
    done = {**info, "node_finished_at": "2024-05-01T12:00:06"}
    b.handle(_line("MainReportVersion", version="=1.11.0"))
    b.handle(_line("LogStartLine", node_info=info))
    b.handle(_line("NodeExecuting", "debug", node_info=info))
    if b.lineage_worker is not None:
        # What the warehouse's time building the relation gives the worker in a real run.
        _, prepared = b.lineage_worker._ahead["model.p.a"]
        prepared.result(timeout=30)
    if rewrite_after_start:
        compiled.write_text(SQL.replace("md5(email)", "upper(email)"))
    b.handle(_line("LogModelResult", node_info=done))
    events = b.handle(
        _line("NodeFinished", "debug", node_info=done, run_result={"status": "success"})
    )
    b.finish(success=True)
    [finished] = [e for e in events if isinstance(e, NodeFinished)]
    return finished


def test_the_event_carries_the_same_columns_and_lineage_prepared_ahead_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_prepare = columns_module.LineageInput.prepare

    def recording(self: LineageInput):  # type: ignore[no-untyped-def]
        if self.compiled_sql.startswith("with e"):
            threads.append(threading.current_thread().name)
        return real_prepare(self)

    monkeypatch.setattr(columns_module.LineageInput, "prepare", recording)
    ahead = _run(tmp_path / "ahead", rewrite_after_start=False, capture_at_init=True)
    assert threads == ["floe-column-lineage"]  # prepared by the worker, not at the result line
    threads.clear()
    inline = _run(tmp_path / "inline", rewrite_after_start=False, capture_at_init=False)
    assert threads == [threading.current_thread().name]
    assert ahead.output_columns == inline.output_columns
    assert ahead.column_lineage == inline.column_lineage
    assert ahead.column_lineage is not None and not ahead.column_lineage.errors
    [email_hash] = [c for c in ahead.output_columns if c.name == "email_hash"]
    assert [(c.classification, c.origin) for c in email_hash.classifications] == [("pii", "masked")]
    # dbt wrote other SQL after the node started (it never does; the input decides, not luck):
    threads.clear()
    changed = _run(tmp_path / "changed", rewrite_after_start=True, capture_at_init=True)
    assert threads == ["floe-column-lineage", threading.current_thread().name]
    assert changed.column_lineage is not None
    [hashed] = [f for f in changed.column_lineage.columns if f.column == "email_hash"]
    assert [t.masking for i in hashed.inputs for t in i.transformations] == [False]
