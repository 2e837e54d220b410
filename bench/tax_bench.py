"""The orchestration tax: bare ``dbt build`` vs ``floe run`` vs plain dagster-dbt, same project,
same DuckDB profile, side by side in one run.

Every variant runs as the user would type it, from a user-like venv (floe + dagster +
dagster-dbt + dbt-duckdb only, see :func:`bench_support.user_venv`), in the project directory:

- ``bare``: ``dbt build --project-dir dbt --profiles-dir .floe/profiles`` (the profile floe
  compiled; the same for all three);
- ``floe``: ``floe run``: events, lineage, traces, logs and metrics on (examples/shop's
  floe.yaml), its sidecar started and waited for, the summary printed;
- ``dagster-dbt``: ``dagster asset materialize -f bench/plain_dbt_definitions.py --select '*'``
  (``@dbt_assets`` + ``DbtCliResource`` + ``.stream()``, a persistent instance as floe's).

Projects: ``shop`` (examples/shop) and generated ones (``500``, ``2000``: 10 layers, each model
joining two of the layer above, a ``not_null`` test on every 5th model). Each is compiled and
parsed (``floe prepare``) and built once by bare dbt before timing (warehouse tables and dbt's
partial-parse state exist for every variant). Then ``--repeat`` rounds, the order reversed every
other round (bare, floe, dagster-dbt, then dagster-dbt, floe, bare) so drift on a shared machine
hits all of them. Each run must succeed with every asset materialized, or the bench stops.

Printed per project: median wall time (min-max), peak RSS of the whole process tree (sampled every
0.1 s: floe's sidecar and dbt child, dagster's step process included) and of the largest single
process, the 1-minute load average at each run's start, the ratios floe/bare and
floe/dagster-dbt, and whether the goal (floe/bare <= 1.3 on shop, 1.15 at 500, 1.1 at 2,000)
held in this run.

    .venv/bin/python bench/tax_bench.py --projects shop,500,2000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
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
VARIANTS = ["bare", "floe", "dagster-dbt"]
#: floe run / bare dbt build: the issue's goal per project.
GOALS = {"shop": 1.3, "500": 1.15, "2000": 1.1}
#: Inherited variables that would point a variant at another instance, spool or project.
DROPPED_ENV = ("DAGSTER_HOME", "FLOE_ARTIFACTS", "FLOE_SOCKET", "FLOE_SPOOL_DIR", "VIRTUAL_ENV")


def base_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(OFFLINE)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def prepare(name: str, work: Path, bin_dir: Path) -> tuple[Path, int]:
    """The project ready to run (compiled, parsed, built once); how many assets it has."""
    project = copy_shop(work / f"project-{name}")
    if name != "shop":
        generate(project, int(name), tests_every=5)
    env = base_env(bin_dir)
    subprocess.run(
        [str(bin_dir / "floe"), "prepare"], cwd=project, env=env, check=True, capture_output=True
    )
    warm = run_measured(
        command(project, "bare", bin_dir), cwd=project, env=env, log=work / f"{name}-warm.log"
    )
    check("bare", warm, 0)
    return project, manifest_assets(project / "dbt" / "target" / "manifest.json")


def command(project: Path, variant: str, bin_dir: Path) -> list[str]:
    if variant == "bare":
        return [
            str(bin_dir / "dbt"),
            "build",
            "--project-dir",
            "dbt",
            "--profiles-dir",
            os.path.join(".floe", "profiles"),
        ]
    if variant == "floe":
        return [str(bin_dir / "floe"), "run"]
    plain = str(BENCH / "plain_dbt_definitions.py")
    return [str(bin_dir / "dagster"), "asset", "materialize", "-f", plain, "--select", "*"]


def variant_env(project: Path, variant: str, bin_dir: Path, work: Path) -> dict[str, str]:
    env = base_env(bin_dir)
    if variant == "dagster-dbt":
        env["DAGSTER_HOME"] = str(dagster_home(work / f"dagster-home-{project.name}"))
        env["PLAIN_DBT_PROJECT_DIR"] = str(project / "dbt")
        env["PLAIN_DBT_PROFILES_DIR"] = str(project / ".floe" / "profiles")
    return env


def check(variant: str, run: Measured, assets: int) -> None:
    """Stop the bench unless the run succeeded and materialized every asset."""
    text = run.log.read_text(errors="replace")
    ok = run.returncode == 0
    if variant == "bare":
        ok = ok and "Completed successfully" in text
    elif variant == "floe":
        ok = ok and f"assets: {assets} materialized" in text
    else:
        materialized = sum(1 for line in text.splitlines() if "ASSET_MATERIALIZATION" in line)
        ok = ok and "RUN_SUCCESS" in text and materialized == assets
    if not ok:
        raise SystemExit(f"{variant} failed (exit {run.returncode}), see:\n{text[-4000:]}")


def bench_project(
    name: str, repeat: int, work: Path, bin_dir: Path
) -> dict[str, list[tuple[Measured, float]]]:
    project, assets = prepare(name, work, bin_dir)
    print(f"{name}: {assets} assets, prepared and built once", file=sys.stderr)
    runs: dict[str, list[tuple[Measured, float]]] = {v: [] for v in VARIANTS}
    for round_ in range(repeat):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            load = os.getloadavg()[0]
            run = run_measured(
                command(project, variant, bin_dir),
                cwd=project,
                env=variant_env(project, variant, bin_dir, work),
                log=work / f"{name}-{variant}-{round_}.log",
            )
            check(variant, run, assets)
            runs[variant].append((run, load))
            print(
                f"  {name} round {round_ + 1} {variant:11s} {run.wall_s:7.2f} s "
                f"tree {run.tree_peak_mb:6.0f} MB largest {run.process_peak_mb:6.0f} MB "
                f"load {load:.1f}",
                file=sys.stderr,
            )
    return runs


def report(name: str, repeat: int, runs: dict[str, list[tuple[Measured, float]]]) -> list[str]:
    loads = [load for v in VARIANTS for _, load in runs[v]]
    label = "examples/shop" if name == "shop" else f"{name} generated models"
    lines = [
        f"### {label}: {repeat} round(s), load {min(loads):.1f}-{max(loads):.1f}",
        "",
        "| variant | wall (median) | min-max | peak RSS, tree | peak RSS, largest process |",
        "|---|---:|---:|---:|---:|",
    ]
    median: dict[str, float] = {}
    for variant in VARIANTS:
        walls = [r.wall_s for r, _ in runs[variant]]
        median[variant] = statistics.median(walls)
        tree = statistics.median(r.tree_peak_mb for r, _ in runs[variant])
        largest = statistics.median(r.process_peak_mb for r, _ in runs[variant])
        lines.append(
            f"| {variant} | {median[variant]:.2f} s | {min(walls):.2f}-{max(walls):.2f} "
            f"| {tree:.0f} MB | {largest:.0f} MB |"
        )
    to_bare = median["floe"] / median["bare"]
    to_plain = median["floe"] / median["dagster-dbt"]
    goal = GOALS.get(name)
    held = "no goal set" if goal is None else ("held" if to_bare <= goal else "NOT held")
    lines += [
        "",
        f"floe / bare dbt build: {to_bare:.2f} (goal <= {goal}: {held}); "
        f"floe / dagster-dbt: {to_plain:.2f}",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", default="shop,500,2000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=None, help="where to build the user venv")
    options = parser.parse_args()
    names = [n.strip() for n in options.projects.split(",") if n.strip()]
    for name in names:
        if name != "shop" and not name.isdigit():
            parser.error(f"--projects: {name!r} is neither shop nor a number of models")
    bin_dir = user_venv(options.venv)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="floe-tax-bench-") as tmp:
        for name in names:
            runs = bench_project(name, options.repeat, Path(tmp), bin_dir)
            out += report(name, options.repeat, runs)
            print("\n".join(report(name, options.repeat, runs)), file=sys.stderr)
    print("\n".join(out))


if __name__ == "__main__":
    main()
