"""The run page at scale: a generated run of N models, written by the real sidecar, turned into a
page by `floe show --html`, and rendered in real headless Chromium (Debian's package).

1. A synthetic dbt project of ``--models`` models in layers (each reading 1-3 models of earlier
   layers; seeds first; one test per model; a few failing, and what depends on them skipped), as
   floe events in a spool; ``floe-sidecar --spool ... --once`` writes the embedded-default files
   (OpenLineage NDJSON and OTLP/JSON) exactly as it does for a real run.
2. Column lineage as issue 12's contract has it (``columnLineage`` 1-2-0, ``schema`` with types,
   ``tags`` classifications with a ``field``) is added to each model's output, 8 columns each, when
   the sidecar did not already emit it.
3. ``floe show --html`` as a command (a fresh interpreter, what a user waits for).
4. Chromium opens the file with the network off; the page says when it has drawn the graph and
   the waterfall (``data-floe-ready``); one frame later it has painted. Then a search, a dataset
   selection, a column selection (following its lineage) and a collapse by group are timed.

Sizes alternate within one run (``--sizes``); medians of ``--repeat``. No peer makes such a page
(Marquez and Jaeger need servers), so the figures stand against the goal: drawn in under 2 s at
2,000 models.

    .venv/bin/python bench/html_bench.py [--sizes 200,2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

COLUMNS = 8
T0 = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)

# Runs before the page's own script: when the page marks itself drawn, wait one frame and note
# the time (performance.now() counts from the start of navigation).
PAINT_PROBE = """
new MutationObserver((_, observer) => {
  if (!document.documentElement.dataset.floeReady) return;
  observer.disconnect();
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.__painted = performance.now();
  }));
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-floe-ready']});
"""

INTERACT = """
(() => {
  const out = {};
  let t = performance.now();
  const search = document.getElementById('search');
  search.value = 'model_01';
  search.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
  out.search_ms = performance.now() - t;
  out.matches = document.getElementById('search-count').textContent;
  const node = document.querySelector('.node:not(.group)[data-outcome="ok"]');
  t = performance.now();
  node.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  out.select_dataset_ms = performance.now() - t;
  const column = document.querySelector('#details a[data-goto-col]');
  t = performance.now();
  column.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  out.select_column_ms = performance.now() - t;
  out.highlighted = document.querySelectorAll('.col.c-up, .col.c-down').length;
  const collapse = document.getElementById('collapse');
  collapse.value = 'group';
  t = performance.now();
  collapse.dispatchEvent(new Event('change'));
  out.collapse_ms = performance.now() - t;
  out.groups = document.querySelectorAll('.node.group').length;
  return out;
})()
"""


def _project(models: int, seed: int = 7) -> list[dict[str, Any]]:
    """Nodes in dbt order: seeds, then models layer by layer (each with one test after it)."""
    rng = random.Random(seed)
    seeds = max(3, models // 20)
    layers = 8
    nodes: list[dict[str, Any]] = []
    for i in range(seeds):
        nodes.append(
            {
                "id": f"seed.big.raw_{i:04d}",
                "name": f"raw_{i:04d}",
                "type": "seed",
                "folder": None,
                "upstream": [],
                "layer": 0,
            }
        )
    built: list[list[str]] = [[n["id"] for n in nodes]]
    per_layer = max(1, models // layers)
    count = 0
    for layer in range(1, layers + 1):
        current = []
        size = per_layer if layer < layers else models - count
        folder = ("staging", "intermediate", "marts")[min(2, (layer - 1) * 3 // layers)]
        for _ in range(size):
            earlier = [u for group in built[max(0, layer - 3) : layer] for u in group]
            upstream = rng.sample(earlier, k=min(len(earlier), rng.randint(1, 3)))
            name = f"model_{count:04d}"
            nodes.append(
                {
                    "id": f"model.big.{name}",
                    "name": name,
                    "type": "model",
                    "folder": folder,
                    "upstream": upstream,
                    "layer": layer,
                }
            )
            current.append(f"model.big.{name}")
            count += 1
        built.append(current)
    return nodes


def write_spool(spool: Path, models: int) -> tuple[str, int]:
    """The run's floe events, one spool segment; (run id, events)."""
    from floe_core import ids
    from floe_core.events import (
        Column,
        Connection,
        DagsterRun,
        Invocation,
        InvocationFinished,
        InvocationStarted,
        Node,
        NodeFinished,
        NodeStarted,
        Relation,
        RunFinished,
        TestTarget,
        encode_event,
    )

    run_id = str(uuid.uuid4())
    connection = Connection(
        target="duckdb", adapter_type="duckdb", path="big.duckdb", database="big", schema="main"
    )
    run = DagsterRun(run_id=run_id, job_name="__ASSET_JOB", started_at=T0)
    inv = Invocation(
        invocation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, run_id)),
        run=run,
        project_name="big",
        environment="dev",
        connection=connection,
        command=("build",),
        attributes={"tenant": "bench"},
        dbt_version="1.11.2",
    )

    def relation(node: dict[str, Any]) -> Relation:
        schema = "main_raw" if node["type"] == "seed" else f"main_{node['folder']}"
        return Relation(database="big", schema=schema, identifier=node["name"])

    nodes = _project(models)
    by_id = {n["id"]: n for n in nodes}
    failing = {n["id"] for n in nodes if n["type"] == "model" and n["name"].endswith("17")}
    lines: list[bytes] = []
    clock = T0 + timedelta(seconds=1)

    def eid(kind: str, *parts: str) -> str:
        return ids.event_id(kind, run_id, inv.invocation_id, *parts)

    lines.append(
        encode_event(
            InvocationStarted(
                event_id=eid("invocation_started"),
                emitted_at=clock,
                invocation=inv,
                started_at=clock,
            )
        )
    )
    failed: set[str] = set()
    for spec in nodes:
        path = (
            f"seeds/{spec['name']}.csv"
            if spec["type"] == "seed"
            else f"models/{spec['folder']}/{spec['name']}.sql"
        )
        node = Node(
            unique_id=spec["id"],
            name=spec["name"],
            resource_type=spec["type"],
            package_name="big",
            materialized="table" if spec["type"] == "model" else "seed",
            relation=relation(spec),
            upstream=tuple(relation(by_id[u]) for u in spec["upstream"]),
            upstream_ids=tuple(spec["upstream"]),
            columns=tuple(
                Column(
                    name=f"col_{c}",
                    data_type="VARCHAR",
                    classification="pii" if c == 1 and spec["type"] == "seed" else None,
                )
                for c in range(COLUMNS)
            ),
            description=f"{spec['name']}, generated",
            owner="data@example.com",
            original_file_path=path,
            asset_key=(spec["name"],),
        )
        if any(u in failed for u in spec["upstream"]):
            failed.add(spec["id"])
            lines.append(
                encode_event(
                    NodeFinished(
                        event_id=eid("node_finished", spec["id"]),
                        emitted_at=clock,
                        invocation=inv,
                        node=node,
                        started_at=None,
                        finished_at=clock,
                        status="skipped",
                        message="SKIP",
                    )
                )
            )
            continue
        start = clock = clock + timedelta(milliseconds=3)
        lines.append(
            encode_event(
                NodeStarted(
                    event_id=eid("node_started", spec["id"]),
                    emitted_at=clock,
                    invocation=inv,
                    node=node,
                    started_at=start,
                )
            )
        )
        clock += timedelta(milliseconds=40)
        error = spec["id"] in failing
        if error:
            failed.add(spec["id"])
        lines.append(
            encode_event(
                NodeFinished(
                    event_id=eid("node_finished", spec["id"]),
                    emitted_at=clock,
                    invocation=inv,
                    node=node,
                    started_at=start,
                    finished_at=clock,
                    status="error" if error else "success",
                    error=f"Runtime Error in model {spec['name']}: Binder Error" if error else None,
                    compiled_sql=f"select * from {spec['name']}_upstream" * 4,
                )
            )
        )
        if spec["type"] != "model" or error:
            continue
        test = Node(
            unique_id=f"test.big.not_null_{spec['name']}",
            name=f"not_null_{spec['name']}",
            resource_type="test",
            relation=None,
            upstream=(relation(spec),),
            upstream_ids=(spec["id"],),
            test=TestTarget(
                test_name="not_null",
                attached_unique_id=spec["id"],
                attached_relation=relation(spec),
                column_name="col_0",
            ),
        )
        tstart = clock = clock + timedelta(milliseconds=1)
        lines.append(
            encode_event(
                NodeStarted(
                    event_id=eid("node_started", test.unique_id),
                    emitted_at=clock,
                    invocation=inv,
                    node=test,
                    started_at=tstart,
                )
            )
        )
        clock += timedelta(milliseconds=10)
        lines.append(
            encode_event(
                NodeFinished(
                    event_id=eid("node_finished", test.unique_id),
                    emitted_at=clock,
                    invocation=inv,
                    node=test,
                    started_at=tstart,
                    finished_at=clock,
                    status="pass",
                    failures=0,
                )
            )
        )
    clock += timedelta(milliseconds=20)
    lines.append(
        encode_event(
            InvocationFinished(
                event_id=eid("invocation_finished"),
                emitted_at=clock,
                invocation=inv,
                started_at=T0 + timedelta(seconds=1),
                finished_at=clock,
                success=False,
                error="dbt build failed",
            )
        )
    )
    lines.append(
        encode_event(
            RunFinished(
                event_id=ids.event_id("run_finished", run_id),
                emitted_at=clock,
                run=run,
                finished_at=clock,
                success=False,
                error="step failed",
                environment="dev",
                attributes={"tenant": "bench"},
            )
        )
    )
    spool.mkdir(parents=True, mode=0o700)
    (spool / "20260601T080000.000000001-events-1-bench00.ndjson").write_bytes(
        b"".join(line + b"\n" for line in lines)
    )
    return run_id, len(lines)


def add_column_lineage(lineage: Path, seed: int = 11) -> bool:
    """Give each model output the column-level facets of issue 12, unless already there."""
    rng = random.Random(seed)
    events = [json.loads(line) for line in lineage.read_text().splitlines() if line.strip()]
    if any("columnLineage" in (o.get("facets") or {}) for e in events for o in e["outputs"]):
        return False
    for event in events:
        if event["eventType"] != "COMPLETE":
            continue
        for output in event["outputs"]:
            inputs = event["inputs"]
            facets = output.setdefault("facets", {})
            facets["schema"] = {
                "fields": [{"name": f"col_{c}", "type": "VARCHAR"} for c in range(COLUMNS)]
            }
            if not inputs:
                continue
            fields = {}
            tags = []
            for c in range(COLUMNS):
                source = rng.choice(inputs)
                kind = "DIRECT" if c < 6 else "INDIRECT"
                subtype = ("IDENTITY", "TRANSFORMATION", "AGGREGATION")[c % 3] if c < 6 else "JOIN"
                fields[f"col_{c}"] = {
                    "inputFields": [
                        {
                            "namespace": source["namespace"],
                            "name": source["name"],
                            "field": f"col_{c}",
                            "transformations": [
                                {"type": kind, "subtype": subtype, "masking": False}
                            ],
                        }
                    ]
                }
                if c == 1:
                    tags.append(
                        {
                            "key": "classification",
                            "value": "pii",
                            "source": "FLOE_INHERITED",
                            "field": "col_1",
                        }
                    )
            facets["columnLineage"] = {"fields": fields}
            if tags:
                facets["tags"] = {"tags": tags}
    lineage.write_text("".join(json.dumps(e) + "\n" for e in events))
    return True


def prepare(workdir: Path, models: int) -> dict[str, Any]:
    """A project dir with .floe/{lineage,traces} of one generated run, written by the sidecar."""
    from floe_dbt.compile import compile_floe

    project = workdir / f"big-{models}"
    shutil.copytree(
        REPO / "examples" / "shop",
        project,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*"),
    )
    compile_floe(project / "floe.yaml", output_dir=project / ".floe")
    run_id, count = write_spool(project / ".floe" / "spool", models)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "floe_sidecar.cli",
            "--spool",
            ".floe/spool",
            "--once",
            "--artifacts",
            ".floe/compiled_artifacts.json",
            "--output-dir",
            ".floe",
            "--log-level",
            "error",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"floe-sidecar --once failed: {result.stderr[-2000:]}")
    added = add_column_lineage(project / ".floe" / "lineage" / "openlineage.ndjson")
    return {"project": project, "run_id": run_id, "events": count, "lineage_added": added}


def build_page(project: Path) -> tuple[float, Path]:
    page = project / "page.html"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "--html", "-o", str(page)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"floe show --html failed: {result.stderr}")
    return elapsed, page


def render(chromium: str, page: Path) -> dict[str, Any]:
    from support.browser import open_browser

    with open_browser(chromium) as browser:
        browser.offline()
        browser.before_load(PAINT_PROBE)
        started = time.perf_counter()
        browser.open(page.as_uri(), timeout=120)
        browser.wait_for("window.__painted", timeout=120)
        wall = time.perf_counter() - started
        figures = browser.evaluate(
            "({painted: window.__painted,"
            " script: +document.documentElement.dataset.floeRenderMs,"
            " nodes: document.querySelectorAll('#viewport .node').length,"
            " edges: document.querySelectorAll('#viewport path.edge').length,"
            " rows: document.querySelectorAll('.wf .row').length})"
        )
        figures["wall_s"] = wall
        figures.update(browser.evaluate(INTERACT))
        errors = browser.console_errors()
        requests = browser.requests()
    if errors or requests != [page.as_uri()]:
        raise SystemExit(f"page problems: errors {errors}, requests {requests}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000", help="models per generated run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from support.browser import chromium_path

    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium (or set FLOE_CHROMIUM)")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory(prefix="floe-html-bench-") as tmp:
        prepared = {n: prepare(Path(tmp), n) for n in sizes}
        for n, info in prepared.items():
            print(
                f"{n} models: {info['events']} floe events, run {info['run_id']}, column "
                f"lineage {'added by the bench' if info['lineage_added'] else 'from the sidecar'}"
            )
        for i in range(args.repeat):
            for n in sizes if i % 2 == 0 else reversed(sizes):
                build_s, page = build_page(prepared[n]["project"])
                figures = render(chromium, page)
                figures["build_s"] = build_s
                figures["page_mb"] = page.stat().st_size / 1e6
                results[n].append(figures)
    print()
    print(
        "| models | nodes / edges / spans | page MB | `floe show --html` s | script ms |"
        " painted ms | search ms | select dataset ms | select column ms | collapse ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        rows = results[n]

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        first = rows[0]
        print(
            f"| {n:,} | {first['nodes']:,} / {first['edges']:,} / {first['rows']:,} | "
            f"{med('page_mb'):.1f} | {med('build_s'):.2f} | {med('script'):.0f} | "
            f"{med('painted'):.0f} | {med('search_ms'):.0f} | {med('select_dataset_ms'):.0f} | "
            f"{med('select_column_ms'):.0f} | {med('collapse_ms'):.0f} |"
        )
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        ratio = statistics.median(r["painted"] for r in results[big]) / statistics.median(
            r["painted"] for r in results[small]
        )
        print(
            f"\npainted at {big:,} / at {small:,} models: x{ratio:.2f} for x{big / small:g} "
            "the models"
        )
    goal = statistics.median(r["painted"] for r in results[sizes[-1]])
    print(
        f"goal: drawn in under 2000 ms at {sizes[-1]:,} models: "
        f"{'met' if goal < 2000 else 'NOT met'} ({goal:.0f} ms)"
    )


if __name__ == "__main__":
    main()
