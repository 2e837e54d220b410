"""Hand-built OpenLineage events and OTLP spans of one small run, for the run page's tests.

They follow the contract the sidecar writes (run hierarchy through the ``parent`` facet, the
``floe_trace`` facet linking each node to its span) and the column-level contract of issue 12:
``columnLineage`` 1-2-0, the ``schema`` facet, classifications as ``tags`` with a ``field``
(sources DBT_META / FLOE_INHERITED / FLOE_MASKED) and the ``floe_classifications`` facet.

The run: seed ``raw_customers`` (email declared pii) -> ``stg_customers`` (email DIRECT, so pii
inherited; email_hash = md5(email), masked) -> ``customers`` (joins ``stg_orders``), ``broken``
fails, ``after_broken`` is skipped, ``slow`` never finished; a test on ``customers`` passes and one
on ``stg_orders`` fails.
"""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUN_ID = "0190a6f2-7c1e-7d3a-9b7e-1f2e3d4c5b6a"
TRACE_ID = RUN_ID.replace("-", "")
INVOCATION = "5ba46fd9-8673-42e4-aaee-5e52b08a036c"
NS = "duckdb:///data/shop.duckdb"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()  # the lineage events' clock
ERROR = (
    "Runtime Error in model broken (models/marts/broken.sql)\n"
    '  Binder Error: Referenced column "no_such_column" not found in FROM clause!'
)


def ds(name: str, facets: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"namespace": NS, "name": name, "facets": facets or {}}


def _span_id(n: int) -> str:
    return f"{n:016x}"


def event(
    state: str,
    job: str,
    run_id: str,
    *,
    time: str,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    job_type: str = "MODEL",
    span: int | None = None,
    error: str | None = None,
    root: str = RUN_ID,
    parent: str | None = INVOCATION,
) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = {
            "run": {"runId": parent},
            "job": {"namespace": "dbt", "name": "dbt-run-shop"},
            "root": {"run": {"runId": root}, "job": {"namespace": "dbt", "name": "__ASSET_JOB"}},
        }
    if span is not None:
        facets["floe_trace"] = {"traceId": TRACE_ID, "spanId": _span_id(span)}
    if error:
        facets["errorMessage"] = {"message": error, "programmingLanguage": "sql"}
    return {
        "eventType": state,
        "eventTime": time,
        "run": {"runId": run_id, "facets": facets},
        "job": {
            "namespace": "dbt",
            "name": job,
            "facets": {"jobType": {"integration": "DBT", "jobType": job_type}},
        },
        "inputs": inputs or [],
        "outputs": outputs or [],
    }


def schema(*columns: tuple[str, str]) -> dict[str, Any]:
    return {"fields": [{"name": n, "type": t} for n, t in columns]}


def lineage_field(name: str, field: str, kind: str, subtype: str, masking: bool = False) -> Any:
    return {
        "namespace": NS,
        "name": name,
        "field": field,
        "transformations": [{"type": kind, "subtype": subtype, "masking": masking}],
    }


def classification(column: str, value: str, source: str) -> dict[str, Any]:
    return {"key": "classification", "value": value, "source": source, "field": column}


RAW = "shop.main_raw.raw_customers"
STG = "shop.main.stg_customers"
ORDERS = "shop.main.stg_orders"
CUSTOMERS = "shop.main.customers"
BROKEN = "shop.main.broken"
AFTER = "shop.main.after_broken"
SLOW = "shop.main.slow"
EVENTS = "shop.main_web.events"

RAW_FACETS = {
    "schema": schema(("id", "INTEGER"), ("email", "VARCHAR")),
    "tags": {"tags": [classification("email", "pii", "DBT_META")]},
    "floe_classifications": {
        "columns": {"email": [{"classification": "pii", "origin": "declared", "from": []}]}
    },
}
STG_FACETS = {
    "schema": schema(("customer_id", "INTEGER"), ("email", "VARCHAR"), ("email_hash", "VARCHAR")),
    "columnLineage": {
        "fields": {
            "customer_id": {"inputFields": [lineage_field(RAW, "id", "DIRECT", "IDENTITY")]},
            "email": {"inputFields": [lineage_field(RAW, "email", "DIRECT", "IDENTITY")]},
            "email_hash": {
                "inputFields": [lineage_field(RAW, "email", "DIRECT", "TRANSFORMATION", True)]
            },
        }
    },
    "tags": {
        "tags": [
            classification("email", "pii", "FLOE_INHERITED"),
            classification("email_hash", "pii", "FLOE_MASKED"),
        ]
    },
    "floe_classifications": {
        "columns": {
            "email": [
                {
                    "classification": "pii",
                    "origin": "inherited",
                    "from": [{"namespace": NS, "name": RAW, "field": "email"}],
                }
            ],
            "email_hash": [
                {
                    "classification": "pii",
                    "origin": "masked",
                    "from": [{"namespace": NS, "name": RAW, "field": "email"}],
                }
            ],
        }
    },
}
CUSTOMERS_FACETS = {
    "schema": schema(("customer_id", "INTEGER"), ("email", "VARCHAR"), ("orders", "BIGINT")),
    "columnLineage": {
        "fields": {
            "customer_id": {
                "inputFields": [lineage_field(STG, "customer_id", "DIRECT", "IDENTITY")]
            },
            "email": {"inputFields": [lineage_field(STG, "email", "DIRECT", "IDENTITY")]},
            "orders": {"inputFields": [lineage_field(ORDERS, "order_id", "DIRECT", "AGGREGATION")]},
        },
        "dataset": [lineage_field(ORDERS, "customer_id", "INDIRECT", "JOIN")],
    },
    "tags": {"tags": [classification("email", "pii", "FLOE_INHERITED")]},
}


def lineage_events() -> list[dict[str, Any]]:
    """The run's events, in the order the sidecar writes them, with one duplicate delivery."""
    t = "2026-12-01T10:00:{:02d}.000000+00:00".format
    root: dict[str, Any] = {"root": RUN_ID, "parent": None}
    events = [
        event("START", "__ASSET_JOB", RUN_ID, time=t(0), job_type="JOB", **root),
        event("START", "dbt-run-shop", INVOCATION, time=t(0), job_type="JOB", parent=RUN_ID),
        event(
            "START",
            "seed.shop.raw_customers",
            "r-raw",
            time=t(1),
            outputs=[ds(RAW)],
            job_type="SEED",
            span=1,
        ),
        event(
            "COMPLETE",
            "seed.shop.raw_customers",
            "r-raw",
            time=t(2),
            outputs=[ds(RAW, RAW_FACETS)],
            job_type="SEED",
            span=1,
        ),
        event("START", "stg_orders", "r-orders", time=t(2), inputs=[ds(EVENTS)], span=2),
        event(
            "COMPLETE",
            "stg_orders",
            "r-orders",
            time=t(3),
            inputs=[ds(EVENTS)],
            outputs=[
                ds(ORDERS, {"schema": schema(("order_id", "INTEGER"), ("customer_id", "INTEGER"))})
            ],
            span=2,
        ),
        event("START", "stg_customers", "r-stg", time=t(3), inputs=[ds(RAW)], span=3),
        event(
            "COMPLETE",
            "stg_customers",
            "r-stg",
            time=t(4),
            inputs=[ds(RAW)],
            outputs=[ds(STG, STG_FACETS)],
            span=3,
        ),
        event(
            "START",
            "customers",
            "r-cust",
            time=t(4),
            inputs=[ds(STG), ds(ORDERS)],
            outputs=[ds(CUSTOMERS)],
            span=4,
        ),
        event(
            "COMPLETE",
            "customers",
            "r-cust",
            time=t(5),
            inputs=[ds(STG), ds(ORDERS)],
            outputs=[ds(CUSTOMERS, CUSTOMERS_FACETS)],
            span=4,
        ),
        event("START", "broken", "r-broken", time=t(4), inputs=[ds(ORDERS)], outputs=[ds(BROKEN)]),
        event(
            "FAIL",
            "broken",
            "r-broken",
            time=t(5),
            inputs=[ds(ORDERS)],
            outputs=[ds(BROKEN)],
            error=ERROR,
            span=5,
        ),
        event(
            "ABORT", "after_broken", "r-after", time=t(6), inputs=[ds(BROKEN)], outputs=[ds(AFTER)]
        ),
        event("START", "slow", "r-slow", time=t(5), inputs=[ds(ORDERS)], outputs=[ds(SLOW)]),
        event("ABORT", "slow", "r-slow", time=t(7), inputs=[ds(ORDERS)], outputs=[ds(SLOW)]),
        event(
            "START",
            "test.unique_customers",
            "r-t1",
            time=t(6),
            inputs=[ds(CUSTOMERS)],
            job_type="TEST",
            span=6,
        ),
        event(
            "COMPLETE",
            "test.unique_customers",
            "r-t1",
            time=t(6),
            inputs=[ds(CUSTOMERS)],
            job_type="TEST",
            span=6,
        ),
        event(
            "START",
            "test.not_null_orders",
            "r-t2",
            time=t(6),
            inputs=[ds(ORDERS)],
            job_type="TEST",
            span=7,
        ),
        event(
            "FAIL",
            "test.not_null_orders",
            "r-t2",
            time=t(6),
            inputs=[ds(ORDERS)],
            job_type="TEST",
            span=7,
            error="Got 2 results, configured to fail if != 0",
        ),
        event(
            "FAIL",
            "dbt-run-shop",
            INVOCATION,
            time=t(8),
            job_type="JOB",
            parent=RUN_ID,
            error=ERROR,
        ),
        event("FAIL", "__ASSET_JOB", RUN_ID, time=t(8), job_type="JOB", error=ERROR, **root),
    ]
    events.insert(5, events[3])  # at-least-once: the seed's COMPLETE delivered twice
    copied: list[dict[str, Any]] = json.loads(json.dumps(events))  # callers may change them
    return copied


def otlp_span(
    n: int, name: str, parent: int | None, start: float, end: float, **attributes: Any
) -> dict[str, Any]:
    error = attributes.pop("error", None)
    span: dict[str, Any] = {
        "traceId": TRACE_ID,
        "spanId": _span_id(n),
        "name": name,
        "startTimeUnixNano": str(int((T0 + start) * 1e9)),
        "endTimeUnixNano": str(int((T0 + end) * 1e9)),
        "attributes": [{"key": k, "value": {"stringValue": str(v)}} for k, v in attributes.items()],
        "status": {"code": 2, "message": error} if error else {"code": 1},
    }
    if parent is not None:
        span["parentSpanId"] = _span_id(parent)
    if error:
        span["events"] = [
            {
                "name": "exception",
                "timeUnixNano": span["endTimeUnixNano"],
                "attributes": [{"key": "exception.message", "value": {"stringValue": error}}],
            }
        ]
    return span


def otlp_spans() -> list[dict[str, Any]]:
    return [
        otlp_span(100, "RUN __ASSET_JOB", None, 0, 8, **{"cicd.pipeline.run.id": RUN_ID}),
        otlp_span(101, "dbt build", 100, 0.5, 7.5),
        otlp_span(
            1, "seed.shop.raw_customers", 101, 1, 2, **{"code.file.path": "seeds/raw_customers.csv"}
        ),
        otlp_span(
            2,
            "model.shop.stg_orders",
            101,
            2,
            3,
            **{"code.file.path": "models/staging/stg_orders.sql"},
        ),
        otlp_span(
            3,
            "model.shop.stg_customers",
            101,
            3,
            4,
            **{"code.file.path": "models/staging/stg_customers.sql"},
        ),
        otlp_span(
            4, "model.shop.customers", 101, 4, 5, **{"code.file.path": "models/marts/customers.sql"}
        ),
        otlp_span(
            5,
            "model.shop.broken",
            101,
            4,
            5,
            error=ERROR,
            **{"code.file.path": "models/marts/broken.sql"},
        ),
        otlp_span(
            6,
            "test.unique_customers",
            101,
            6,
            6.1,
            **{"dbt.test.name": "unique", "dbt.test.column_name": "customer_id"},
        ),
        otlp_span(7, "test.not_null_orders", 101, 6, 6.2, **{"dbt.test.name": "not_null"}),
    ]


def write_run_files(floe_dir: Path) -> tuple[Path, Path]:
    """``.floe/lineage/openlineage.ndjson`` and ``.floe/traces/otlp-traces.jsonl`` of the run."""
    lineage = floe_dir / "lineage" / "openlineage.ndjson"
    traces = floe_dir / "traces" / "otlp-traces.jsonl"
    lineage.parent.mkdir(parents=True, exist_ok=True)
    traces.parent.mkdir(parents=True, exist_ok=True)
    lineage.write_text("".join(json.dumps(e) + "\n" for e in lineage_events()))
    spans = otlp_spans()
    requests = [spans[:4], spans[4:]]  # two export requests, as the sidecar batches them
    traces.write_text(
        "".join(
            json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": batch}]}]})
            + "\n"
            for batch in requests
        )
    )
    return lineage, traces


def column_downstream(events: list[dict[str, Any]], start: tuple[str, str]) -> set[tuple[str, str]]:
    """(dataset, column) reachable from ``start`` through the columnLineage facets."""
    feeds: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for event in events:
        for output in event.get("outputs") or ():
            facet = (output.get("facets") or {}).get("columnLineage") or {}
            for column, info in (facet.get("fields") or {}).items():
                for source in info.get("inputFields") or ():
                    feeds.setdefault((source["name"], source["field"]), set()).add(
                        (output["name"], column)
                    )
    seen: set[tuple[str, str]] = set()
    queue = deque([start])
    while queue:
        for nxt in feeds.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    seen.discard(start)
    return seen
