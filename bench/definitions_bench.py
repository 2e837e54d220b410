"""Loading the definitions of a large dbt project: floe's ``floe_dagster.definitions`` vs plain
dagster-dbt ``@dbt_assets`` (bench/plain_dbt_definitions.py), side by side in one run.

For each size (``--models 1000,5000``): examples/shop's models replaced by generated ones (10
layers, each model joining two of the layer above, a ``not_null`` test on every 5th model),
compiled and parsed by ``floe prepare`` (the parse time is printed; it is dbt's, once per
project). Both variants then load the same manifest from a user-like venv (floe + dagster +
dagster-dbt + dbt-duckdb only), in a fresh interpreter each time, the order reversed every other
round:

- ``validate`` (timed ``--repeat`` times): ``dagster definitions validate -m
  floe_dagster.definitions`` / ``-f bench/plain_dbt_definitions.py``: the Dagster CLI loads the
  code location in process the way ``dagster dev`` / the code server does (imports, definitions,
  the repository snapshot the UI reads), then exits;
- ``resolve`` (timed once): ``python -c``-style import of the module and
  ``Definitions.get_repository_def()`` in a fresh interpreter; it also counts the asset keys and
  checks; the assets must match the manifest's for both, or the bench stops.

Printed: median wall time, peak RSS (process tree, sampled, and the largest process exact), the
ratio floe / dagster-dbt, the load average, and whether the goal held (floe < 10 s at 5,000
models, <= 1/3 of dagster-dbt's time, less memory: at least 5 % below dagster-dbt's peak RSS,
both the tree's and the largest process's).

    .venv/bin/python bench/definitions_bench.py --models 1000,5000 --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_support import (
    OFFLINE,
    Measured,
    copy_shop,
    dagster_home,
    generate,
    manifest_assets,
    run_measured,
    user_venv,
)

BENCH = Path(__file__).resolve().parent
PLAIN_FILE = BENCH / "plain_dbt_definitions.py"
VARIANTS = ["floe", "dagster-dbt"]
#: floe's peak RSS must be at most this share of dagster-dbt's to count as "less memory".
LESS_MEMORY = 0.95
DROPPED_ENV = ("DAGSTER_HOME", "FLOE_ARTIFACTS", "FLOE_SOCKET", "FLOE_SPOOL_DIR", "VIRTUAL_ENV")


def resolve_worker(variant: str) -> None:
    """In this fresh interpreter: import the definitions module, resolve it, print the counts."""
    started = time.perf_counter()
    if variant == "floe":
        module = importlib.import_module("floe_dagster.definitions")
    else:
        spec = importlib.util.spec_from_file_location("plain_dbt_definitions", PLAIN_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    repository = module.defs.get_repository_def()
    graph = repository.asset_graph
    checks = len(graph.asset_check_keys)
    assets = sum(1 for key in graph.get_all_asset_keys() if graph.get(key).is_materializable)
    seconds = time.perf_counter() - started
    print(json.dumps({"assets": assets, "checks": checks, "seconds": seconds}))


def environment(variant: str, project: Path, bin_dir: Path, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(OFFLINE)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["DAGSTER_HOME"] = str(dagster_home(work / f"dagster-home-{variant}"))
    if variant == "floe":
        env["FLOE_ARTIFACTS"] = str(project / ".floe" / "compiled_artifacts.json")
    else:
        env["PLAIN_DBT_PROJECT_DIR"] = str(project / "dbt")
        env["PLAIN_DBT_PROFILES_DIR"] = str(project / ".floe" / "profiles")
    return env


def validate_command(variant: str, bin_dir: Path) -> list[str]:
    location = ["-m", "floe_dagster.definitions"] if variant == "floe" else ["-f", str(PLAIN_FILE)]
    return [str(bin_dir / "dagster"), "definitions", "validate", *location]


def prepare(models: int, work: Path, bin_dir: Path) -> tuple[Path, int, float]:
    project = copy_shop(work / f"project-{models}")
    generate(project, models, tests_every=5)
    env = environment("floe", project, bin_dir, work)
    started = time.perf_counter()
    subprocess.run(
        [str(bin_dir / "floe"), "prepare"], cwd=project, env=env, check=True, capture_output=True
    )
    parse_s = time.perf_counter() - started
    return project, manifest_assets(project / "dbt" / "target" / "manifest.json"), parse_s


def bench_size(models: int, repeat: int, work: Path, bin_dir: Path) -> list[str]:
    project, assets, parse_s = prepare(models, work, bin_dir)
    print(f"{models}: {assets} assets, floe prepare {parse_s:.1f} s", file=sys.stderr)
    runs: dict[str, list[Measured]] = {v: [] for v in VARIANTS}
    loads: list[float] = []
    for round_ in range(repeat):
        for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
            loads.append(os.getloadavg()[0])
            run = run_measured(
                validate_command(variant, bin_dir),
                cwd=project,
                env=environment(variant, project, bin_dir, work),
                log=work / f"{models}-{variant}-{round_}.log",
            )
            text = run.log.read_text(errors="replace")
            if run.returncode != 0 or "All code locations passed validation" not in text:
                raise SystemExit(f"{variant} validate failed:\n{text[-4000:]}")
            runs[variant].append(run)
            print(
                f"  {models} round {round_ + 1} {variant:11s} {run.wall_s:7.2f} s "
                f"tree {run.tree_peak_mb:6.0f} MB largest {run.process_peak_mb:6.0f} MB "
                f"load {loads[-1]:.1f}",
                file=sys.stderr,
            )
    resolved: dict[str, tuple[Measured, dict[str, float]]] = {}
    for variant in VARIANTS:
        loads.append(os.getloadavg()[0])
        run = run_measured(
            [str(bin_dir / "python"), __file__, "--resolve-worker", variant],
            cwd=project,
            env=environment(variant, project, bin_dir, work),
            log=work / f"{models}-{variant}-resolve.log",
        )
        text = run.log.read_text(errors="replace")
        if run.returncode != 0:
            raise SystemExit(f"{variant} resolve failed:\n{text[-4000:]}")
        resolved[variant] = (run, json.loads(text.strip().splitlines()[-1]))
    counts = {v: (r[1]["assets"], r[1]["checks"]) for v, r in resolved.items()}
    if {n for n, _ in counts.values()} != {assets}:
        raise SystemExit(f"asset counts differ: {counts}, manifest: {assets} assets")

    wall = {v: statistics.median(r.wall_s for r in runs[v]) for v in VARIANTS}
    tree = {v: statistics.median(r.tree_peak_mb for r in runs[v]) for v in VARIANTS}
    largest = {v: statistics.median(r.process_peak_mb for r in runs[v]) for v in VARIANTS}
    lines = [
        f"### {models} generated models ({assets} assets; checks: floe {counts['floe'][1]}, "
        f"dagster-dbt {counts['dagster-dbt'][1]}): "
        f"{repeat} round(s), load {min(loads):.1f}-{max(loads):.1f}",
        "",
        "| measure | floe | dagster-dbt | floe / dagster-dbt |",
        "|---|---:|---:|---:|",
        f"| `dagster definitions validate`, wall (median) | {wall['floe']:.2f} s "
        f"| {wall['dagster-dbt']:.2f} s | {wall['floe'] / wall['dagster-dbt']:.2f} |",
        f"| … peak RSS, process tree | {tree['floe']:.0f} MB | {tree['dagster-dbt']:.0f} MB "
        f"| {tree['floe'] / tree['dagster-dbt']:.2f} |",
        f"| … peak RSS, largest process | {largest['floe']:.0f} MB "
        f"| {largest['dagster-dbt']:.0f} MB | {largest['floe'] / largest['dagster-dbt']:.2f} |",
    ]
    f_run, p_run = resolved["floe"][0], resolved["dagster-dbt"][0]
    lines += [
        f"| import + `get_repository_def()` in a fresh interpreter, whole process (1 run) "
        f"| {f_run.wall_s:.2f} s | {p_run.wall_s:.2f} s | {f_run.wall_s / p_run.wall_s:.2f} |",
        f"| … peak RSS | {f_run.process_peak_mb:.0f} MB | {p_run.process_peak_mb:.0f} MB "
        f"| {f_run.process_peak_mb / p_run.process_peak_mb:.2f} |",
        "",
    ]
    if models >= 5000:
        fast = wall["floe"] < 10
        third = wall["floe"] <= wall["dagster-dbt"] / 3
        # "Less" means beyond the noise of RSS between runs: at least 5 % below the peer's.
        leaner = (
            largest["floe"] <= LESS_MEMORY * largest["dagster-dbt"]
            and tree["floe"] <= LESS_MEMORY * tree["dagster-dbt"]
        )
        lines += [
            f"goal at {models}: floe < 10 s: {'held' if fast else 'NOT held'}; "
            f"<= 1/3 of dagster-dbt: {'held' if third else 'NOT held'}; "
            f"less memory: {'held' if leaner else 'NOT held'}",
            "",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=None, help="where to build the user venv")
    parser.add_argument("--resolve-worker", choices=VARIANTS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.resolve_worker:
        resolve_worker(options.resolve_worker)
        return
    sizes = [int(n) for n in options.models.split(",") if n.strip()]
    bin_dir = user_venv(options.venv)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="floe-definitions-bench-") as tmp:
        for models in sizes:
            lines = bench_size(models, options.repeat, Path(tmp), bin_dir)
            print("\n".join(lines), file=sys.stderr)
            out += lines
    print("\n".join(out))


if __name__ == "__main__":
    main()
