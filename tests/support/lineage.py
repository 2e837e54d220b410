"""Test support for the OpenLineage tests: offline schema validation, a loopback lineage receiver
that can be made to fail, and a real materialization of the example project (its hand-built
events are :func:`support.data.shop_events`)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from floe_core.events import Event
from support.environment import REPO_ROOT

FLOE_SCHEMAS = REPO_ROOT / "schemas" / "openlineage"
RUN_EVENT_REF = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


# --- schemas -----------------------------------------------------------------------------------


def schema_registry(spec_dir: Path) -> Registry:
    """Every official schema and every floe custom facet schema, keyed by its ``$id``."""
    resources = []
    for path in [*sorted(spec_dir.glob("*.json")), *sorted(FLOE_SCHEMAS.rglob("*.json"))]:
        contents = json.loads(path.read_text())
        Draft202012Validator.check_schema(contents)
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


class LineageValidator:
    """Validates RunEvents offline: the core event, then each facet against its own schema URL."""

    def __init__(self, spec_dir: Path) -> None:
        self.registry = schema_registry(spec_dir)
        self._by_ref: dict[str, Draft202012Validator] = {}

    def _validator(self, ref: str) -> Draft202012Validator:
        if ref not in self._by_ref:
            self._by_ref[ref] = Draft202012Validator(
                {"$ref": ref}, registry=self.registry, format_checker=FormatChecker()
            )
        return self._by_ref[ref]

    def errors(self, event: dict[str, Any]) -> list[str]:
        found = [f"event: {e.message}" for e in self._validator(RUN_EVENT_REF).iter_errors(event)]
        for where, facet in iter_facets(event):
            url = facet.get("_schemaURL")
            if not isinstance(url, str):
                found.append(f"{where}: no _schemaURL")
                continue
            if url.split("#")[0] not in self.registry:
                found.append(f"{where}: _schemaURL {url} resolves to no known schema")
                continue
            found.extend(f"{where}: {e.message}" for e in self._validator(url).iter_errors(facet))
        return found


def iter_facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, facet in event.get("run", {}).get("facets", {}).items():
        yield f"run.facets.{name}", facet
    for name, facet in event.get("job", {}).get("facets", {}).items():
        yield f"job.facets.{name}", facet
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side, [])):
            for group in ("facets", "inputFacets", "outputFacets"):
                for name, facet in dataset.get(group, {}).items():
                    yield f"{side}[{i}].{group}.{name}", facet


# --- a lineage backend on loopback ------------------------------------------------------------


@dataclass
class Received:
    path: str
    events: list[dict[str, Any]]
    at: float  # time.time() when the request arrived
    headers: dict[str, str]


@dataclass
class Receiver:
    """An OpenLineage HTTP backend on 127.0.0.1 whose behaviour a test switches at will.

    ``mode``: "ok" (201), "unavailable" (503), "hang" (answers 504 after ``hang_s``, keeps nothing),
    "throttle" (429 with ``Retry-After: <retry_after>``).
    ``batch``: serve POST /api/v1/lineage/batch (else 404, like Marquez). ``reject`` picks events
    answered 400 (a whole batch is answered 400 if it holds one).
    """

    mode: str = "ok"
    batch: bool = False
    hang_s: float = 3.0
    retry_after: str = "1"
    reject: Callable[[dict[str, Any]], bool] | None = None
    # After this many accepted requests, switch to "unavailable" (an outage mid-batch).
    fail_after: int | None = None
    received: list[Received] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)  # (path, status answered)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    port: int = 0  # 0: any free port; a fixed one lets a test bring an endpoint "back"

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for request in self.received for event in request.events]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status, text = receiver._answer(self.path, body, dict(self.headers.items()))
                payload = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    if status == 429:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _answer(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        arrived = time.time()
        if self.fail_after is not None and len(self.received) >= self.fail_after:
            self.mode, self.fail_after = "unavailable", None
        if self.mode == "unavailable":
            return self._log(path, 503, "backend unavailable")
        if self.mode == "throttle":
            return self._log(path, 429, "slow down")
        if self.mode == "hang":  # a backend that never answers in time, and keeps nothing
            time.sleep(self.hang_s)
            return self._log(path, 504, "too late")
        is_batch = path.split("?", 1)[0].rstrip("/").endswith("/lineage/batch")
        if is_batch and not self.batch:
            return self._log(path, 404, "not found")
        payload = json.loads(body)
        events = payload if is_batch else [payload]
        rejected = [e for e in events if self.reject is not None and self.reject(e)]
        if rejected:
            return self._log(path, 400, f"invalid event: job {rejected[0]['job']['name']}")
        with self.lock:
            self.received.append(Received(path, events, arrived, headers))
        return self._log(path, 200 if is_batch else 201, "")

    def _log(self, path: str, status: int, text: str) -> tuple[int, str]:
        with self.lock:
            self.requests.append((path, status))
        return status, text


TERMINAL = ("COMPLETE", "FAIL", "ABORT")


def assert_run_order(events: list[dict[str, Any]]) -> None:
    """Per run, in arrival order: every START before the first terminal event, which exists.

    (Re-sent copies are tolerated, as at-least-once delivery allows, as long as no START ever
    arrives after its run ended. A node dbt skipped has a lone ABORT.)
    """
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    for run_id, states in by_run.items():
        terminal = [i for i, s in enumerate(states) if s in TERMINAL]
        assert terminal, (run_id, states)
        starts = [i for i, s in enumerate(states) if s == "START"]
        assert all(i < terminal[0] for i in starts), (run_id, states)
        assert starts or states[terminal[0]] == "ABORT", (run_id, states)


# --- the example project, materialized for real -------------------------------------------------


@dataclass(frozen=True)
class Materialized:
    """One real Dagster materialization of a copy of examples/shop, and the events it wrote."""

    workdir: Path  # the copy: floe.yaml, dbt/, .floe/
    artifacts: Any  # CompiledArtifacts
    events: list[Event]
    success: bool


_MATERIALIZED: dict[tuple[Path, str], Materialized] = {}
FAILING_SQL = "select no_such_column from {{ ref('raw_payments') }}\n"


def materialize_shop(
    root: Path,
    variant: str = "success",
    *,
    env: dict[str, str] | None = None,
    environment: str | None = None,
    postgres_schema: str | None = None,
) -> Materialized:
    """Copy examples/shop under ``root``, compile it, and materialize every asset with the real
    adapter (``build_definitions`` + ``dagster.materialize``); cached per (root, variant).

    ``variant="failing"`` breaks ``stg_payments`` so dbt errors on it and skips what depends on it.
    ``env``: extra environment for the run (the adapter and dbt read ``os.environ``).
    ``environment``/``postgres_schema``: compile that floe environment (``prod`` is PostgreSQL),
    with the example's schema replaced by a test's own.
    """
    key = (root, variant)
    if key in _MATERIALIZED:
        return _MATERIALIZED[key]
    import subprocess

    import dagster

    from floe_core.events import decode_event
    from floe_core.spool import list_segments
    from floe_dagster import build_definitions
    from floe_dagster.manifest import dbt_executable, parse_command
    from floe_dbt.compile import compile_floe
    from support.adapter import copy_example, env_vars

    workdir = copy_example(root / f"shop-{variant}")
    if postgres_schema is not None:
        floe_yaml = workdir / "floe.yaml"
        floe_yaml.write_text(
            floe_yaml.read_text().replace("schema: shop", f"schema: {postgres_schema}")
        )
    if variant == "failing":
        (workdir / "dbt" / "models" / "staging" / "stg_payments.sql").write_text(FAILING_SQL)
    spool = workdir / ".floe" / "spool"
    # No FLOE_SOCKET unless the test gives one: the events go to the spool.
    overrides: dict[str, str | None] = {"FLOE_SOCKET": None, "FLOE_SPOOL_DIR": str(spool)}
    overrides.update(env or {})
    with env_vars(overrides):
        output_dir = workdir / ".floe"
        artifacts = compile_floe(workdir / "floe.yaml", environment, output_dir=output_dir)
        subprocess.run(
            parse_command(artifacts, dbt_executable()), check=True, capture_output=True, cwd=workdir
        )
        # Again, now that the manifest exists: column classifications.
        artifacts = compile_floe(workdir / "floe.yaml", environment, output_dir=output_dir)
        defs = build_definitions(artifacts)
        result = dagster.materialize(
            list(defs.assets or []),
            resources=defs.resources,
            instance=dagster.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    events = [
        decode_event(line)
        for segment in list_segments(spool)
        for line in segment.read_bytes().splitlines()
        if line.strip()
    ]
    done = Materialized(workdir, artifacts, events, result.success)
    _MATERIALIZED[key] = done
    return done
