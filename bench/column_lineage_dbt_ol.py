"""Column lineage of a real run: floe's ``columnLineage`` facets beside dbt-ol's, scored against
the hand-written truth for examples/shop (``tests/support/shop_column_lineage.py``).

One copy of the example, one profile: ``floe run`` (real dbt through Dagster, a real sidecar
writing its RunEvents to ``.floe/lineage/openlineage.ndjson``), then ``dbt-ol build`` on the same
project and profile with openlineage-python's file transport. For every model and the snapshot,
each producer's COMPLETE event's output ``columnLineage`` facet is reduced to its per-column edges
(output column, input table, input column) and counted against the truth: matched, missing,
extra; then totals and precision/recall. floe's edges are also scored with their transformation
type (dbt-ol emits none) and its dataset-wide INDIRECT edges on their own.

    .venv/bin/python bench/column_lineage_dbt_ol.py [--env prod --schema bench_lineage]

(``--env prod``: the example's PostgreSQL environment on 127.0.0.1:5432, in a schema of its own.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
VENV_BIN = Path(sys.executable).parent

from support.adapter import copy_example, env_vars, prepare, set_prod_schema  # noqa: E402
from support.shop_column_lineage import SHOP, FacetEdges, facet_edges, truth_edges  # noqa: E402

_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")
PASSWORD = {"FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "unused"}  # trust auth; dbt wants it set


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", **extra)
    return env


def floe_run(project: Path, environment: str | None, extra: dict[str, str]) -> list[Any]:
    args = [sys.executable, "-m", "floe_cli", "run"]
    args += ["--env", environment] if environment else []
    done = subprocess.run(args, cwd=project, env=clean_env(extra), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"floe run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    path = project / ".floe" / "lineage" / "openlineage.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dbt_ol_build(project: Path, environment: str | None, extra: dict[str, str]) -> list[Any]:
    with env_vars(extra):  # dbt parse reads the profile's env_var()s
        artifacts = prepare(project, environment)
    out = project / "dbt-ol.ndjson"
    config = project / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {out}\n  append: true\n")
    args = [str(VENV_BIN / "dbt-ol"), "build", "--project-dir", artifacts.dbt_project_path]
    args += ["--profiles-dir", artifacts.dbt_profiles_path]
    env = clean_env({**extra, "OPENLINEAGE_CONFIG": str(config)})
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dbt-ol build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def facets_by_table(events: list[Any]) -> dict[str, FacetEdges]:
    """Each COMPLETE event's output table (last part of its name) -> its facet's edges."""
    out: dict[str, FacetEdges] = {}
    for event in events:
        if event.get("eventType") != "COMPLETE":
            continue
        for output in event.get("outputs") or ():
            facet = (output.get("facets") or {}).get("columnLineage")
            if facet:
                out[str(output["name"]).rsplit(".", 1)[-1].casefold()] = facet_edges(facet)
    return out


def untyped(edges: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str]]:
    return {(o, t, c) for o, t, c, _ in edges}


def score(found: set[Any], truth: set[Any]) -> tuple[int, int, int]:
    """(matched, missing, extra)."""
    return len(found & truth), len(truth - found), len(found - truth)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(ours: list[Any], theirs: list[Any]) -> list[str]:
    floe_facets, ol_facets = facets_by_table(ours), facets_by_table(theirs)
    empty: FacetEdges = (set(), set())
    totals = {key: [0, 0, 0] for key in ("floe", "dbt-ol", "floe typed", "floe dataset-wide")}
    rows = []
    for node in SHOP:
        if node.unique_id.split(".")[0] not in {"model", "snapshot"}:
            continue
        truth_fields, truth_dataset = truth_edges(node)
        floe_fields, floe_dataset = floe_facets.get(node.identifier, empty)
        ol_fields, _ = ol_facets.get(node.identifier, empty)
        scored = {
            "floe": score(untyped(floe_fields), untyped(truth_fields)),
            "dbt-ol": score(untyped(ol_fields), untyped(truth_fields)),
            "floe typed": score(floe_fields, truth_fields),
            "floe dataset-wide": score(floe_dataset, truth_dataset),
        }
        for key, counts in scored.items():
            for i, n in enumerate(counts):
                totals[key][i] += n
        cells = " | ".join("/".join(str(n) for n in scored[k]) for k in scored)
        rows.append(f"| {node.identifier} | {len(untyped(truth_fields))} | {cells} |")
    lines = [
        "Per model, edges matched/missing/extra against the hand-written truth:",
        "",
        "| model | true edges | floe | dbt-ol | floe typed | floe dataset-wide |",
        "|---|---:|---|---|---|---|",
        *rows,
        "",
        "| producer | matched | missing | extra | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, (matched, missing, extra) in totals.items():
        lines.append(
            f"| {key} | {matched} | {missing} | {extra} | {ratio(matched, matched + extra)} "
            f"| {ratio(matched, matched + missing)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=None, help="floe environment (prod: PostgreSQL)")
    parser.add_argument("--schema", default="bench_lineage", help="PostgreSQL schema (--env prod)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floe-lineage-bench-") as tmp:
        project = copy_example(Path(tmp) / "shop")
        extra: dict[str, str] = {}
        if args.env == "prod":
            set_prod_schema(project, args.schema)
            extra = dict(PASSWORD)
        ours = floe_run(project, args.env, extra)
        theirs = dbt_ol_build(project, args.env, extra)
        print(f"examples/shop, {args.env or 'default (DuckDB)'} environment")
        print()
        print("\n".join(report(ours, theirs)))


if __name__ == "__main__":
    main()
