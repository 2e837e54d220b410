"""Test data, built from the event contract: for the tests and the benches alike.

Every event and every CompiledArtifacts a test or a bench needs is built here, so there is one
place to change when the contract changes. Scenarios, each with its own ids and times:

- :func:`artifacts`: compiled artifacts of a small project, observability as asked;
- the numbered stream (:func:`make_event`, :func:`event_line`, :func:`event_id_of`): event ``i``
  of a mix of types, each with its own stable id (the sidecar tests count them);
- the trace run (:func:`run_events`, ``TRACE_*``): one Dagster run of a small dbt project with a
  seed, models, a snapshot, a passing and a failing test, a failed model, a model skipped because
  of it and a model still running when the invocation ended;
- the example project's run (:func:`shop_events`, :func:`shop_nodes`), as the adapter describes
  examples/shop, and with the real columns and column lineage the adapter adds once it can ask
  the warehouse (:func:`truth_events`, :func:`with_truth`, from :mod:`support.shop_column_lineage`);
- realistic node events for the benches (:func:`bench_event`, :func:`bench_lines`, about 1.3 KB
  of JSON for a finished model; :func:`span_bench_events`, one span each);
- :func:`run_finished_events`: a batch of small events for the emitter.

Timestamps carry microseconds, as dbt's do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from floe_core import ids
from floe_core.artifacts import CompiledArtifacts, ComputeArtifacts, ObservabilityArtifacts
from floe_core.events import (
    Classification,
    Column,
    ColumnLineage,
    ColumnRef,
    Connection,
    DagsterRun,
    Event,
    FieldLineage,
    InputField,
    Invocation,
    InvocationFinished,
    InvocationStarted,
    LogLine,
    Node,
    NodeFinished,
    NodeStarted,
    Relation,
    RunFinished,
    TestTarget,
    Transformation,
    UnfinishedNode,
    encode_event,
)
from support.shop_column_lineage import SHOP, ShopNode

# --- compiled artifacts -------------------------------------------------------------------------


def artifacts(
    *,
    name: str = "shop",
    environment: str = "dev",
    traces: bool = False,
    lineage: bool = False,
    otlp_endpoint: str | None = None,
    lineage_endpoint: str | None = None,
    attributes: dict[str, str] | None = None,
    logs: bool = False,
    metrics: bool = False,
) -> CompiledArtifacts:
    """CompiledArtifacts of a DuckDB project (no files behind them), observability as asked."""
    return CompiledArtifacts(
        name=name,
        environment=environment,
        source_path="floe.yaml",
        source_hash="0" * 64,
        compute=ComputeArtifacts(target="duckdb", adapter_type="duckdb"),
        transforms=(),
        observability=ObservabilityArtifacts(
            traces=traces,
            lineage=lineage,
            logs=logs,
            metrics=metrics,
            otlp_endpoint=otlp_endpoint,
            lineage_endpoint=lineage_endpoint,
            attributes=attributes or {},
        ),
        dbt_project_path="dbt",
        dbt_profile_name=name,
        dbt_target_name=environment,
        dbt_profiles_path="profiles",
        dbt_manifest_path="dbt/target/manifest.json",
    )


# --- building blocks ------------------------------------------------------------------------------


def invocation(
    *,
    run_id: str,
    invocation_id: str,
    job_name: str = "shop_job",
    run_started_at: datetime | None = None,
    environment: str = "dev",
    connection: Connection | None = None,
    command: tuple[str, ...] = (),
    attributes: dict[str, str] | None = None,
    dbt_version: str | None = None,
) -> Invocation:
    """One dbt invocation of project ``shop`` (DuckDB unless ``connection`` says otherwise)."""
    return Invocation(
        invocation_id=invocation_id,
        run=DagsterRun(run_id=run_id, job_name=job_name, started_at=run_started_at),
        project_name="shop",
        environment=environment,
        connection=connection or Connection(target="duckdb", adapter_type="duckdb"),
        command=command,
        attributes=attributes or {},
        dbt_version=dbt_version,
    )


def node(unique_id: str, **fields: Any) -> Node:
    """A node named after the last part of ``unique_id``, of the resource type its first part
    names, in ``shop.main`` unless ``fields`` say otherwise."""
    name = unique_id.rsplit(".", 1)[-1]
    values: dict[str, Any] = {
        "name": name,
        "resource_type": unique_id.split(".", 1)[0],
        "relation": Relation(database="shop", schema="main", identifier=name),
    }
    values.update(fields)
    return Node(unique_id=unique_id, **values)


# --- the numbered stream (sidecar tests) ----------------------------------------------------------

RUN_ID = "0f3c9a52-6b1e-4c7d-8a2f-5e6d7c8b9a01"
_STREAM_T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_event(i: int, *, run_id: str = RUN_ID, emitted_at: datetime | None = None) -> Event:
    """Event number ``i``: a mix of types, each with its own stable id."""
    inv = invocation(
        run_id=run_id,
        invocation_id="4b3a2c1d-0000-4000-8000-000000000001",
        connection=Connection(target="duckdb", adapter_type="duckdb", path="shop.duckdb"),
        attributes={"tenant": "acme"},
    )
    stamp = emitted_at or (_STREAM_T0 + timedelta(milliseconds=i))
    model = node(f"model.shop.m{i}", materialized="table")
    eid = ids.event_id("test", run_id, str(i))
    kind = i % 4
    if kind == 0:
        return InvocationStarted(event_id=eid, emitted_at=stamp, invocation=inv, started_at=stamp)
    if kind == 1:
        return NodeStarted(
            event_id=eid, emitted_at=stamp, invocation=inv, node=model, started_at=stamp
        )
    if kind == 2:
        return NodeFinished(
            event_id=eid,
            emitted_at=stamp,
            invocation=inv,
            node=model,
            started_at=stamp,
            finished_at=stamp,
            status="success",
            rows_affected=i,
        )
    return InvocationFinished(
        event_id=eid,
        emitted_at=stamp,
        invocation=inv,
        started_at=stamp,
        finished_at=stamp,
        success=True,
    )


def event_line(i: int, **kwargs: Any) -> bytes:
    """:func:`make_event` as one NDJSON line."""
    return encode_event(make_event(i, **kwargs))


def event_id_of(i: int, run_id: str = RUN_ID) -> str:
    return ids.event_id("test", run_id, str(i))


# --- the trace run (trace tests) ---------------------------------------------------------------

TRACE_RUN_ID = "5b0f4f0e-8a55-4b0a-9d43-2c8f3c1a7e21"
TRACE_JOB = "shop_job"
TRACE_INVOCATION_ID = "4c3a9d1e-0000-4000-8000-000000000001"
TRACE_T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``seconds`` after the trace run's start."""
    return TRACE_T0 + timedelta(microseconds=round(seconds * 1_000_000))


def trace_invocation(
    run_id: str = TRACE_RUN_ID,
    invocation_id: str = TRACE_INVOCATION_ID,
    attributes: dict[str, str] | None = None,
    target: str = "duckdb",
) -> Invocation:
    adapter = {"postgres": "postgres"}.get(target, target)
    return invocation(
        run_id=run_id,
        invocation_id=invocation_id,
        job_name=TRACE_JOB,
        run_started_at=at(-2),
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


def trace_node(unique_id: str, materialized: str | None = "table") -> Node:
    resource_type, _package, name = unique_id.split(".", 2)
    test = None
    if resource_type == "test":
        test = TestTarget(
            test_name=name.split("_", 1)[0],
            attached_unique_id="model.shop.orders",
            column_name="order_id",
        )
    return node(
        unique_id,
        package_name="shop",
        materialized=None if resource_type == "test" else materialized,
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


def run_events(run_id: str = TRACE_RUN_ID, invocation_id: str = TRACE_INVOCATION_ID) -> list[Event]:
    """The events the adapter writes for the run, in the order it writes them."""
    inv = trace_invocation(run_id, invocation_id)

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
                    node=trace_node(step.unique_id),
                    started_at=at(step.start),
                )
            )
        events.append(
            NodeFinished(
                event_id=eid("node_finished", step.unique_id),
                emitted_at=at(step.end),
                invocation=inv,
                node=trace_node(step.unique_id),
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
            node=trace_node(slow_id),
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
            unfinished=(UnfinishedNode(node=trace_node(slow_id), started_at=at(slow_start)),),
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


def run_log_lines(
    count: int = 3, run_id: str = TRACE_RUN_ID, invocation_id: str = TRACE_INVOCATION_ID
) -> list[LogLine]:
    """Log lines of the trace run, as the adapter writes them: ``count`` per step (dbt's start
    and result lines, and more), the broken model's error, and a floe record of the run."""
    inv = trace_invocation(run_id, invocation_id)
    lines: list[LogLine] = []

    def line(
        message: str, when: float, level: str = "info", unique_id: str | None = None
    ) -> LogLine:
        span = (
            ids.node_span_id(run_id, invocation_id, unique_id)
            if unique_id
            else ids.invocation_span_id(run_id, invocation_id)
        )
        return LogLine(
            event_id=ids.event_id("log", run_id, invocation_id, "dbt", str(len(lines) + 1)),
            emitted_at=at(when),
            run=inv.run,
            source="dbt",
            at=at(when),
            level=level,
            message=message,
            span_id=ids.span_id_hex(span),
            name="LogModelResult" if unique_id else "Note",
            code="Q012" if unique_id else "Z050",
            invocation_id=invocation_id,
            unique_id=unique_id,
            fields={"thread": "Thread-1 (worker)", "data.index": len(lines) + 1},
            environment=inv.environment,
            attributes=inv.attributes,
        )

    lines.append(line("Running with dbt=1.11.2", 0.0))
    for step in STEPS:
        for n in range(count):
            lines.append(line(f"{step.unique_id} line {n}", step.end, unique_id=step.unique_id))
        if step.error:
            lines.append(line(step.error, step.end, "error", step.unique_id))
    lines.append(
        LogLine(
            event_id=ids.event_id("log", run_id, "floe", "1"),
            emitted_at=at(RUN_END),
            run=inv.run,
            source="floe",
            at=at(RUN_END),
            level="warn",
            message="floe: 1 event dropped",
            span_id=ids.span_id_hex(ids.run_span_id(run_id)),
            name="floe_dagster.step",
            fields={"events_dropped": 1},
            environment=inv.environment,
            attributes=inv.attributes,
        )
    )
    return lines


def executed_node_ids() -> set[str]:
    """Every node the run executed or tried to: one span each."""
    return {step.unique_id for step in STEPS} | {UNFINISHED[0]}


# --- the example project's run (lineage tests) ----------------------------------------------------


def _col(name: str, description: str | None = None, **kw: Any) -> Column:
    return Column(name=name, description=description, **kw)


def shop_nodes(database: str, schema: str) -> list[Node]:
    """The example project's executed nodes, in dbt build order, as the adapter describes them."""

    def rel(identifier: str, suffix: str = "") -> Relation:
        return Relation(database=database, schema=schema + suffix, identifier=identifier)

    seeds = [
        Node(
            unique_id=f"seed.shop.{name}",
            name=name,
            resource_type="seed",
            package_name="shop",
            materialized="seed",
            relation=rel(name, "_raw"),
            description=description,
            columns=columns,
            original_file_path=f"seeds/{name}.csv",
        )
        for name, description, columns in (
            (
                "raw_customers",
                "Customers as exported from the shop's CRM.",
                (_col("email", "Customer e-mail address.", classification="pii"),),
            ),
            ("raw_orders", "Orders as exported from the shop.", ()),
            ("raw_payments", "Payments as exported from the payment provider.", ()),
        )
    ]
    source = rel("events", "_web")
    stg_customers = Node(
        unique_id="model.shop.stg_customers",
        name="stg_customers",
        resource_type="model",
        package_name="shop",
        materialized="view",
        relation=rel("stg_customers"),
        upstream=(rel("raw_customers", "_raw"),),
        upstream_ids=("seed.shop.raw_customers",),
        columns=(
            _col("customer_id", "Primary key of a customer."),
            _col("email", "Customer e-mail address.", classification="pii"),
        ),
        description="One row per customer, renamed and typed.",
        owner="data-platform@example.com",
        tags=("staging",),
    )
    stg_orders = Node(
        unique_id="model.shop.stg_orders",
        name="stg_orders",
        resource_type="model",
        package_name="shop",
        materialized="view",
        relation=rel("stg_orders"),
        upstream=(rel("raw_orders", "_raw"),),
        upstream_ids=("seed.shop.raw_orders",),
        columns=(_col("order_id", "Primary key of an order."), _col("status")),
        description="One row per order.",
        tags=("staging",),
    )
    stg_payments = Node(
        unique_id="model.shop.stg_payments",
        name="stg_payments",
        resource_type="model",
        package_name="shop",
        materialized="view",
        relation=rel("stg_payments"),
        upstream=(rel("raw_payments", "_raw"),),
        upstream_ids=("seed.shop.raw_payments",),
        columns=(_col("payment_id"),),
        tags=("staging",),
    )
    stg_web_events = Node(
        unique_id="model.shop.stg_web_events",
        name="stg_web_events",
        resource_type="model",
        package_name="shop",
        materialized="view",
        relation=rel("stg_web_events"),
        upstream=(source,),
        upstream_ids=("source.shop.web.events",),
        description="Web events, typed.",
        tags=("staging",),
    )
    orders = Node(
        unique_id="model.shop.orders",
        name="orders",
        resource_type="model",
        package_name="shop",
        materialized="table",
        relation=rel("orders"),
        upstream=(rel("stg_orders"), rel("stg_payments")),
        upstream_ids=("model.shop.stg_orders", "model.shop.stg_payments"),
        columns=(
            _col("order_id", "Primary key of an order.", data_type="integer"),
            _col("customer_id", "The customer who placed the order."),
            _col("amount", "Total paid for the order."),
        ),
        description="One row per order with its paid amount.",
        owner="finance@example.com",
        tags=("marts", "finance"),
    )
    customers = Node(
        unique_id="model.shop.customers",
        name="customers",
        resource_type="model",
        package_name="shop",
        materialized="table",
        relation=rel("customers"),
        upstream=(rel("orders"), rel("stg_web_events"), rel("stg_customers")),
        upstream_ids=("model.shop.orders", "model.shop.stg_web_events", "model.shop.stg_customers"),
        columns=(
            _col("customer_id", "Primary key of a customer."),
            _col("email", "Customer e-mail address.", classification="pii"),
            _col("lifetime_value", "Sum of all paid order amounts.", classification="confidential"),
        ),
        description="One row per customer with order and web activity.",
        owner="data-platform@example.com",
        tags=("marts",),
    )
    snapshot = Node(
        unique_id="snapshot.shop.orders_snapshot",
        name="orders_snapshot",
        resource_type="snapshot",
        package_name="shop",
        materialized="snapshot",
        relation=rel("orders_snapshot"),
        upstream=(rel("stg_orders"),),
        upstream_ids=("model.shop.stg_orders",),
        description="Order status history.",
    )

    def test(name: str, kind: str, model: Node, column: str | None) -> Node:
        assert model.relation is not None
        return Node(
            unique_id=f"test.shop.{name}",
            name=name,
            resource_type="test",
            package_name="shop",
            upstream=(model.relation,),
            upstream_ids=(model.unique_id,),
            test=TestTarget(
                test_name=kind,
                attached_unique_id=model.unique_id,
                attached_relation=model.relation,
                column_name=column,
            ),
        )

    tests = [
        test("unique_stg_customers_customer_id", "unique", stg_customers, "customer_id"),
        test("not_null_stg_orders_order_id", "not_null", stg_orders, "order_id"),
        test("accepted_values_stg_orders_status", "accepted_values", stg_orders, "status"),
        test("unique_orders_order_id", "unique", orders, "order_id"),
    ]
    return [
        *seeds,
        stg_customers,
        stg_orders,
        stg_payments,
        stg_web_events,
        tests[0],
        tests[1],
        tests[2],
        orders,
        snapshot,
        tests[3],
        customers,
    ]


def shop_events(
    *,
    fail_model: str | None = None,
    crash_after: int | None = None,
    connection: Connection | None = None,
    run_id: str | None = None,
    start: datetime | None = None,
) -> list[Event]:
    """A Dagster run materializing the example project.

    ``fail_model``: that model errors and everything downstream of it is skipped.
    ``crash_after``: dbt dies after starting that many nodes; the last one started never finishes.
    """
    connection = connection or Connection(
        target="duckdb",
        adapter_type="duckdb",
        path=".floe/shop.duckdb",
        database="shop",
        schema="main",
    )
    run_id = run_id or str(uuid.uuid4())
    t = start or datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    inv = invocation(
        run_id=run_id,
        invocation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, run_id)),
        run_started_at=t,
        connection=connection,
        command=("build",),
        attributes={"tenant": "example"},
        dbt_version="1.11.2",
    )
    database = connection.database or "shop"
    nodes = shop_nodes(database, connection.schema or "main")

    def eid(kind: str, *parts: str) -> str:
        return ids.event_id(kind, run_id, inv.invocation_id, *parts)

    clock = t + timedelta(seconds=1)
    events: list[Event] = [
        InvocationStarted(
            event_id=eid("invocation_started"),
            emitted_at=clock,
            invocation=inv,
            started_at=clock,
        )
    ]
    failed: set[str] = set()
    started_count = 0
    unfinished: list[UnfinishedNode] = []
    for node in nodes:
        upstream_failed = any(u in failed for u in node.upstream_ids)
        if upstream_failed:
            failed.add(node.unique_id)
            clock += timedelta(milliseconds=5)
            events.append(
                NodeFinished(
                    event_id=eid("node_finished", node.unique_id),
                    emitted_at=clock,
                    invocation=inv,
                    node=node,
                    started_at=None,
                    finished_at=clock,
                    status="skipped",
                    message="SKIP",
                )
            )
            continue
        clock += timedelta(milliseconds=20)
        started = clock
        events.append(
            NodeStarted(
                event_id=eid("node_started", node.unique_id),
                emitted_at=clock,
                invocation=inv,
                node=node,
                started_at=started,
            )
        )
        started_count += 1
        if crash_after is not None and started_count >= crash_after:
            unfinished.append(UnfinishedNode(node=node, started_at=started))
            break
        clock += timedelta(milliseconds=150)
        error = node.unique_id == f"model.shop.{fail_model}"
        if error:
            failed.add(node.unique_id)
        is_test = node.resource_type == "test"
        status = "error" if error else ("pass" if is_test else "success")
        events.append(
            NodeFinished(
                event_id=eid("node_finished", node.unique_id),
                emitted_at=clock,
                invocation=inv,
                node=node,
                started_at=started,
                finished_at=clock,
                status=status,
                message="Runtime Error" if error else "OK",
                error='Binder Error: Referenced column "nope" not found' if error else None,
                rows_affected=None if is_test or error else 3,
                failures=0 if is_test else None,
                compiled_sql=None if is_test else f"select * from {node.name}_source",
                execution_time_s=0.15,
            )
        )
    clock += timedelta(milliseconds=30)
    success = not failed and crash_after is None
    events.append(
        InvocationFinished(
            event_id=eid("invocation_finished"),
            emitted_at=clock,
            invocation=inv,
            started_at=t + timedelta(seconds=1),
            finished_at=clock,
            success=success,
            error=None if success else "dbt build failed",
            unfinished=tuple(unfinished),
        )
    )
    clock += timedelta(milliseconds=30)
    events.append(
        RunFinished(
            event_id=ids.event_id("run_finished", run_id),
            emitted_at=clock,
            run=inv.run,
            finished_at=clock,
            success=success,
            error=None if success else "step failed",
            environment="dev",
            attributes={"tenant": "example"},
        )
    )
    return events


# --- the example project's run, with real columns and column lineage (column-lineage tests) --

_EDGE_CODES = {
    "I": ("DIRECT", "IDENTITY"),
    "T": ("DIRECT", "TRANSFORMATION"),
    "A": ("DIRECT", "AGGREGATION"),
    "COND": ("INDIRECT", "CONDITIONAL"),
    "WINDOW": ("INDIRECT", "WINDOW"),
}


def _relation(node: Node, identifier: str) -> Relation:
    for relation in (*node.upstream, node.relation):
        if relation is not None and relation.identifier == identifier:
            return relation
    raise AssertionError(f"{node.unique_id} reads no {identifier}")


def _inputs(node: Node, edges: list[str]) -> tuple[InputField, ...]:
    grouped: dict[tuple[str, str], list[Transformation]] = {}
    for edge in edges:
        source, code = edge.split()
        table, column = source.split(".")
        masking = code.endswith("M") and code[:-1] in _EDGE_CODES
        kind, subtype = _EDGE_CODES.get(code[:-1] if masking else code, ("INDIRECT", code))
        grouped.setdefault((table, column), []).append(
            Transformation(type=kind, subtype=subtype, masking=masking)
        )
    return tuple(
        InputField(relation=_relation(node, t), column=c, transformations=tuple(ts))
        for (t, c), ts in grouped.items()
    )


def with_truth(event: NodeFinished, truth: ShopNode) -> NodeFinished:
    """The event as the adapter writes it once it can ask the warehouse."""
    node = event.node
    described = {c.name: c.description for c in node.columns}
    columns = []
    for name, duckdb_type, _ in truth.columns:
        items = tuple(
            Classification(
                classification=c,
                origin=origin,
                sources=tuple(
                    ColumnRef(relation=_relation_anywhere(event, ref), column=ref.split(".")[1])
                    for ref in refs
                ),
            )
            for c, origin, refs in truth.classifications.get(name, [])
        )
        declared = next((i.classification for i in items if i.origin == "declared"), None)
        columns.append(
            Column(
                name=name,
                data_type=duckdb_type,
                description=described.get(name),
                classification=declared,
                classifications=items,
            )
        )
    lineage = None
    if not truth.unique_id.startswith("seed."):
        lineage = ColumnLineage(
            columns=tuple(
                FieldLineage(column=c, inputs=_inputs(node, edges))
                for c, edges in truth.fields.items()
            ),
            dataset=_inputs(node, truth.dataset),
        )
    return msgspec.structs.replace(event, output_columns=tuple(columns), column_lineage=lineage)


def _relation_anywhere(event: NodeFinished, ref: str) -> Relation:
    identifier = ref.split(".")[0]
    schema = event.invocation.connection.schema or "main"
    suffix = "_raw" if identifier.startswith("raw_") else ""
    return Relation(database="shop", schema=schema + suffix, identifier=identifier)


def truth_events(**kwargs: Any) -> list[Event]:
    truths = {t.unique_id: t for t in SHOP}
    out: list[Event] = []
    for event in shop_events(**kwargs):
        if isinstance(event, NodeFinished) and event.node.unique_id in truths:
            event = with_truth(event, truths[event.node.unique_id])
        out.append(event)
    return out


# --- realistic node events (benches) -------------------------------------------------------------

_BENCH_T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

_BENCH_INVOCATION = Invocation(
    invocation_id="bench-invocation",
    run=DagsterRun(run_id="5b0c7a1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d", job_name="bench_job"),
    project_name="shop",
    environment="bench",
    connection=Connection(target="postgres", adapter_type="postgres", host="db", port=5432),
    command=("build",),
    attributes={"tenant": "acme", "team": "data"},
    dbt_version="1.11.2",
)
_BENCH_COLUMNS = tuple(
    Column(name=f"col_{c}", data_type="text", description="a documented column") for c in range(6)
)
_BENCH_SQL = "select o.id, o.customer_id, sum(i.amount) as total\nfrom orders o join items i\n" * 3


def bench_event(i: int, *, run_id: str | None = None, emitted_at: datetime | None = None) -> Event:
    """Node events like the adapter writes (about 1.3 KB of JSON for a finished model)."""
    inv = _BENCH_INVOCATION
    if run_id is not None:
        inv = Invocation(
            invocation_id=_BENCH_INVOCATION.invocation_id,
            run=DagsterRun(run_id=run_id, job_name="bench_job"),
            project_name=_BENCH_INVOCATION.project_name,
            environment=_BENCH_INVOCATION.environment,
            connection=_BENCH_INVOCATION.connection,
        )
    uid = f"model.shop.model_{i:07d}"
    stamp = emitted_at or _BENCH_T0 + timedelta(microseconds=i)
    model = Node(
        unique_id=uid,
        name=f"model_{i:07d}",
        resource_type="model",
        materialized="table",
        relation=Relation(database="warehouse", schema="marts", identifier=f"model_{i:07d}"),
        upstream=(Relation(database="warehouse", schema="staging", identifier="stg_orders"),),
        upstream_ids=("model.shop.stg_orders",),
        columns=_BENCH_COLUMNS,
        owner="team:data",
        tags=("nightly",),
    )
    kind = "node_started" if i % 2 == 0 else "node_finished"
    event_id = ids.event_id(kind, inv.run.run_id, uid, str(i))
    if kind == "node_started":
        return NodeStarted(
            event_id=event_id, emitted_at=stamp, invocation=inv, node=model, started_at=stamp
        )
    return NodeFinished(
        event_id=event_id,
        emitted_at=stamp,
        invocation=inv,
        node=model,
        started_at=stamp,
        finished_at=stamp,
        status="success",
        rows_affected=i,
        compiled_sql=_BENCH_SQL,
        execution_time_s=0.25,
    )


def bench_lines(count: int, start: int = 0) -> Iterator[bytes]:
    """:func:`bench_event` ``start`` .. ``start + count`` as NDJSON lines."""
    for i in range(start, start + count):
        yield encode_event(bench_event(i))


_SPANS_RUN_ID = "7d1e3f4a-1b2c-4d5e-8f90-a1b2c3d4e5f6"


def span_bench_events(count: int) -> Iterator[Event]:
    """``count`` node_finished events of one invocation, made one at a time (no list)."""
    inv = Invocation(
        invocation_id="bench-invocation",
        run=DagsterRun(run_id=_SPANS_RUN_ID, job_name="bench_job", started_at=_BENCH_T0),
        project_name="bench",
        environment="bench",
        connection=Connection(target="duckdb", adapter_type="duckdb", database="bench"),
        command=("build",),
        attributes={"tenant": "bench"},
    )
    for i in range(count):
        unique_id = f"model.bench.model_{i:07d}"
        start = _BENCH_T0 + timedelta(microseconds=i * 1_000)
        yield NodeFinished(
            event_id=ids.event_id("node_finished", _SPANS_RUN_ID, "bench-invocation", unique_id),
            emitted_at=start,
            invocation=inv,
            node=Node(
                unique_id=unique_id,
                name=f"model_{i:07d}",
                resource_type="model",
                package_name="bench",
                materialized="table",
                relation=Relation(database="bench", schema="main", identifier=f"model_{i:07d}"),
                asset_key=("bench", f"model_{i:07d}"),
                tags=("nightly",),
            ),
            started_at=start,
            finished_at=start + timedelta(microseconds=731),
            status="success",
            message="OK",
            rows_affected=i,
        )


# --- small events for the emitter -----------------------------------------------------------------

EMITTER_RUN_ID = "6f1c1d2e-8a4b-4c1e-9d3f-0a1b2c3d4e5f"


def run_finished_events(
    count: int, error: str | None = None, *, run_id: str = EMITTER_RUN_ID
) -> list[RunFinished]:
    """``count`` small, distinct events (a run that failed with ``error``, if given)."""
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return [
        RunFinished(
            event_id=ids.event_id("run_finished", run_id, str(i)),
            emitted_at=now,
            run=DagsterRun(run_id=run_id, job_name="job"),
            finished_at=now,
            success=error is None,
            error=error,
        )
        for i in range(count)
    ]
