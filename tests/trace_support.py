"""Events for the trace tests: one Dagster run of a small dbt project, built from the contract.

The run has one ``dbt build`` invocation with a seed, two models, a snapshot, a passing and a
failing test, a failed model, a model skipped because of it, and a model still running when the
invocation ended (listed as unfinished). Timestamps carry microseconds, as dbt's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from floe_core import ids
from floe_core.events import (
    Connection,
    DagsterRun,
    Event,
    Invocation,
    InvocationFinished,
    InvocationStarted,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    RunFinished,
    TestTarget,
    UnfinishedNode,
)

RUN_ID = "5b0f4f0e-8a55-4b0a-9d43-2c8f3c1a7e21"
JOB = "shop_job"
INVOCATION_ID = "4c3a9d1e-0000-4000-8000-000000000001"
T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(microseconds=round(seconds * 1_000_000))


def invocation(
    run_id: str = RUN_ID,
    invocation_id: str = INVOCATION_ID,
    attributes: dict[str, str] | None = None,
    target: str = "duckdb",
) -> Invocation:
    adapter = {"postgres": "postgres"}.get(target, target)
    return Invocation(
        invocation_id=invocation_id,
        run=DagsterRun(run_id=run_id, job_name=JOB, started_at=at(-2)),
        project_name="shop",
        environment="staging",
        connection=Connection(
            target=target,
            adapter_type=adapter,
            host="db.internal" if target != "duckdb" else None,
            port=5432 if target == "postgres" else None,
            database="shop",
            schema="main",
        ),
        command=("build", "--vars", "{secret: hunter2}"),
        attributes={"tenant": "acme", "team": "data"} if attributes is None else attributes,
        dbt_version="1.11.2",
    )


def node(unique_id: str, materialized: str | None = "table") -> Node:
    resource_type, _package, name = unique_id.split(".", 2)
    test = None
    if resource_type == "test":
        test = TestTarget(
            test_name=name.split("_", 1)[0],
            attached_unique_id="model.shop.orders",
            column_name="order_id",
        )
    return Node(
        unique_id=unique_id,
        name=name,
        resource_type=resource_type,
        package_name="shop",
        materialized=None if resource_type == "test" else materialized,
        relation=Relation(database="shop", schema="main", identifier=name),
        asset_key=() if resource_type == "test" else ("shop", name),
        tags=("nightly",),
        original_file_path=f"{resource_type}s/{name}.sql",
        test=test,
    )


@dataclass(frozen=True)
class Step:
    unique_id: str
    start: float | None
    end: float
    status: str
    error: str | None = None
    rows: int | None = None
    failures: int | None = None


STEPS = (
    Step("seed.shop.raw_orders", 0.0, 0.41, "success", rows=6),
    Step("model.shop.stg_orders", 0.5, 0.731207, "success", rows=6),
    Step("model.shop.orders", 0.8, 1.25, "success", rows=6),
    Step("snapshot.shop.orders_snapshot", 1.3, 1.5, "success", rows=6),
    Step("test.shop.unique_orders_order_id", 1.3, 1.35, "pass", failures=0),
    Step("test.shop.accepted_orders_status", 1.31, 1.4, "fail", error="Got 2 results", failures=2),
    Step("model.shop.broken", 0.8, 0.9, "error", error="Binder Error: column x not found\nLINE 1"),
    Step("model.shop.after_broken", None, 0.95, "skipped"),
)
UNFINISHED = ("model.shop.slow", 1.0)  # started, never finished
INVOCATION_END = 2.0
RUN_END = 2.5


def run_events(run_id: str = RUN_ID, invocation_id: str = INVOCATION_ID) -> list[Event]:
    """The events the adapter writes for the run, in the order it writes them."""
    inv = invocation(run_id, invocation_id)

    def eid(kind: str, *parts: str) -> str:
        return ids.event_id(kind, run_id, invocation_id, *parts)

    events: list[Event] = [
        InvocationStarted(
            event_id=eid("invocation_started"), emitted_at=at(0), invocation=inv, started_at=at(0)
        )
    ]
    for step in STEPS:
        if step.start is not None:
            events.append(
                NodeStarted(
                    event_id=eid("node_started", step.unique_id),
                    emitted_at=at(step.start),
                    invocation=inv,
                    node=node(step.unique_id),
                    started_at=at(step.start),
                )
            )
        events.append(
            NodeFinished(
                event_id=eid("node_finished", step.unique_id),
                emitted_at=at(step.end),
                invocation=inv,
                node=node(step.unique_id),
                started_at=None if step.start is None else at(step.start),
                finished_at=at(step.end),
                status=step.status,
                message="OK" if step.error is None else step.error,
                error=step.error,
                rows_affected=step.rows,
                failures=step.failures,
            )
        )
    slow_id, slow_start = UNFINISHED
    events.append(
        NodeStarted(
            event_id=eid("node_started", slow_id),
            emitted_at=at(slow_start),
            invocation=inv,
            node=node(slow_id),
            started_at=at(slow_start),
        )
    )
    events.append(
        InvocationFinished(
            event_id=eid("invocation_finished"),
            emitted_at=at(INVOCATION_END),
            invocation=inv,
            started_at=at(0),
            finished_at=at(INVOCATION_END),
            success=False,
            error="dbt was killed",
            unfinished=(UnfinishedNode(node=node(slow_id), started_at=at(slow_start)),),
        )
    )
    events.append(
        RunFinished(
            event_id=ids.event_id("run_finished", run_id),
            emitted_at=at(RUN_END),
            run=inv.run,
            finished_at=at(RUN_END),
            success=False,
            error="1 step failed",
            environment="staging",
            attributes={"tenant": "acme", "team": "data"},
        )
    )
    return events


def executed_node_ids() -> set[str]:
    """Every node the run executed or tried to: one span each."""
    return {step.unique_id for step in STEPS} | {UNFINISHED[0]}
