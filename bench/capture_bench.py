"""What the column capture costs: dbt build as the ``dbt`` command, through floe's runner, and
through floe's runner with the capture on, side by side.

Same compiled copy of examples/shop (or a generated project: ``--models N``, 10 layers, each
model joining two of the layer above, DuckDB only), each variant in a fresh process, in
alternating order (command, runner, capture, then backwards) so drift on a shared machine hits
all of them. Prints the median wall time of each, the ratios, and the capture's own cost per
node as the dbt process measured it (the ``seconds`` of each column note: in the node's thread).

    .venv/bin/python bench/capture_bench.py [--target duckdb|postgres] [--models N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_support import OFFLINE, copy_shop, generate

VARIANTS = ["command", "runner", "capture"]


def prepare(target: str, models: int | None, work: Path) -> Path:
    project = copy_shop(work / "shop")
    env = {**os.environ, **OFFLINE}
    args = ["compile"]
    if target == "postgres":
        floe_yaml = project / "floe.yaml"
        floe_yaml.write_text(floe_yaml.read_text().replace("schema: shop", "schema: floe_capture"))
        env["FLOE_SHOP_WAREHOUSE_PROD_PASSWORD"] = ""
        args += ["--env", "prod"]
    if models:
        generate(project, models)
    floe = Path(sys.executable).parent / "floe"
    subprocess.run([str(floe), *args], cwd=project, env=env, check=True, capture_output=True)
    return project


def run_once(variant: str, project: Path) -> tuple[float, list[float], int]:
    """Wall seconds of one ``dbt build``; the capture's seconds per node; the exit code."""
    dbt_dir = project / "dbt"
    env = {
        **os.environ,
        **OFFLINE,
        "DBT_LOG_FORMAT": "json",
        "DBT_LOG_LEVEL": "debug",
        "DBT_PROFILES_DIR": str(project / ".floe" / "profiles"),
        "FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "",
    }
    env.pop("FLOE_CAPTURE_COLUMNS", None)
    if variant == "command":
        command = [str(Path(sys.executable).parent / "dbt"), "build"]
    else:
        command = [sys.executable, "-m", "floe_dbt.runner", "build"]
        if variant == "capture":
            env["FLOE_CAPTURE_COLUMNS"] = "1"
    started = time.perf_counter()
    done = subprocess.run(command, cwd=dbt_dir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    costs: list[float] = []
    for line in done.stdout.splitlines():
        if "floe:columns:" not in line:
            continue
        msg = json.loads(line)["info"]["msg"]
        costs.append(float(json.loads(msg[len("floe:columns:") :])["seconds"]))
    return wall, costs, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--models", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if options.models and options.target != "duckdb":
        parser.error("--models generates DuckDB SQL: use --target duckdb")
    with tempfile.TemporaryDirectory(prefix="floe-capture-bench-") as tmp:
        project = prepare(options.target, options.models, Path(tmp))
        run_once("command", project)  # warm-up: first build, partial parse state
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        costs: list[float] = []
        for round_ in range(options.repeat):
            order = VARIANTS if round_ % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                wall, noted, code = run_once(variant, project)
                if code != 0:
                    raise SystemExit(f"{variant}: dbt build failed (exit {code})")
                walls[variant].append(wall)
                if variant == "capture":
                    costs.extend(noted)
    size = f"{options.models} generated models" if options.models else "examples/shop"
    print(f"{size} on {options.target}, {options.repeat} rounds, load {os.getloadavg()[0]:.1f}")
    base = statistics.median(walls["command"])
    for variant in VARIANTS:
        median = statistics.median(walls[variant])
        print(f"  {variant:8s} median {median:7.2f} s  ({median / base:.3f}x the dbt command)")
    if costs:
        costs.sort()
        p90 = costs[int(0.9 * (len(costs) - 1))]
        print(
            f"  capture per node: median {statistics.median(costs) * 1000:.1f} ms, "
            f"p90 {p90 * 1000:.1f} ms, {len(costs)} nodes described, "
            f"total {sum(costs):.2f} s of node-thread time"
        )


if __name__ == "__main__":
    main()
