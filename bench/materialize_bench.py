"""Wall time of materializing examples/shop through Dagster: floe (events on) vs plain dagster-dbt.

All variants run the same compiled and parsed copy of examples/shop (DuckDB), in fresh
interpreters, in alternating order (plain, floe, standalone, then backwards) so drift on a shared
machine hits all of them:

- ``plain``: dagster-dbt's own ``@dbt_assets`` + ``DbtCliResource(project_dir, profiles_dir)``
  with ``yield from dbt.cli(["build"], context=context).stream()``;
- ``floe``: ``floe_dagster.assets.build_definitions(artifacts)``: the same dagster-dbt asset
  events and checks, plus floe's node events written to the spool as dbt runs;
- ``floe-standalone``: the same with lineage and traces off (no events), to show what the
  events themselves cost.

For each run: ``process`` (interpreter start to exit: imports, definitions, materialization),
``materialize`` (the ``execute_in_process`` call) and ``gap`` (the step's STEP_START to
dagster-dbt's "Running dbt command" log line: what happens before dbt starts). Then, in this
process, the two things plain dagster-dbt does in that gap, timed alone: ``dbt --version``
(``DbtCliResource._cli_version``) and the in-process dbt adapter set-up
(``_initialize_dbt_core_adapter``).

No internet: HTTP(S)_PROXY point at a closed loopback port for every child, so ``dbt --version``'s
PyPI "latest version" lookups fail at once instead of reaching the network (with network access,
plain dagster-dbt pays their round trips too).

    .venv/bin/python bench/materialize_bench.py [--repeat 5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["plain", "floe", "floe-standalone"]
# dagster-dbt runs `dbt` from PATH: the one installed beside this interpreter.
BIN_ON_PATH = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


def plain_definitions(artifacts_path: str) -> Any:
    """dagster-dbt as its docs show it: ``@dbt_assets`` + ``DbtCliResource`` + ``.stream()``."""
    from dagster import AssetExecutionContext, Definitions
    from dagster_dbt import DbtCliResource, dbt_assets

    from floe_core.artifacts import load_artifacts

    artifacts = load_artifacts(artifacts_path)

    @dbt_assets(manifest=Path(artifacts.dbt_manifest_path))
    def plain_dbt(context: AssetExecutionContext, dbt: DbtCliResource):  # type: ignore[no-untyped-def]
        yield from dbt.cli(["build"], context=context).stream()

    resource = DbtCliResource(
        project_dir=artifacts.dbt_project_path, profiles_dir=artifacts.dbt_profiles_path
    )
    return Definitions(assets=[plain_dbt], resources={"dbt": resource})


def floe_definitions(artifacts_path: str, *, events: bool) -> Any:
    import msgspec

    from floe_core.artifacts import ObservabilityArtifacts, load_artifacts
    from floe_dagster.assets import build_definitions

    artifacts = load_artifacts(artifacts_path)
    if not events:  # standalone mode: neither lineage nor traces
        artifacts = msgspec.structs.replace(artifacts, observability=ObservabilityArtifacts())
    return build_definitions(artifacts)


def worker(variant: str, artifacts_path: str) -> None:
    """Materialize once in this fresh interpreter; print timings as JSON."""
    started = time.perf_counter()
    from dagster import DagsterInstance

    if variant == "plain":
        import dagster_dbt  # noqa: F401
    else:
        import floe_dagster.assets  # noqa: F401
    imported = time.perf_counter()
    if variant == "plain":
        defs = plain_definitions(artifacts_path)
    else:
        defs = floe_definitions(artifacts_path, events=variant == "floe")
    job = defs.resolve_implicit_global_asset_job_def()
    instance = DagsterInstance.ephemeral()
    defined = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    materialize_s = time.perf_counter() - defined
    step_start = dbt_start = None
    materializations = 0
    for record in instance.all_logs(result.run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_START":
            step_start = record.timestamp
        if event is not None and event.event_type_value == "ASSET_MATERIALIZATION":
            materializations += 1
        if event is None and record.user_message.startswith("Running dbt command"):
            dbt_start = record.timestamp
    assert step_start is not None and dbt_start is not None
    print(
        json.dumps(
            {
                "success": result.success,
                "materializations": materializations,
                "import_s": imported - started,
                "definitions_s": defined - imported,
                "materialize_s": materialize_s,
                "gap_s": dbt_start - step_start,
            }
        )
    )


def run_worker(variant: str, artifacts: Path, spool: Path) -> dict[str, float]:
    env = {**os.environ, **OFFLINE, **BIN_ON_PATH, "FLOE_SPOOL_DIR": str(spool)}
    env.pop("FLOE_SOCKET", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--artifacts", str(artifacts)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["success"] and report["materializations"] == 10, report
    return {**report, "process_s": process_s}


def gap_parts(artifacts_path: Path) -> dict[str, float]:
    """The two things plain dagster-dbt does before dbt starts, timed alone (fresh resource)."""
    os.environ.update({**OFFLINE, **BIN_ON_PATH})
    from dagster_dbt import DbtCliResource

    from floe_core.artifacts import load_artifacts

    artifacts = load_artifacts(artifacts_path)
    resource = DbtCliResource(
        project_dir=artifacts.dbt_project_path, profiles_dir=artifacts.dbt_profiles_path
    )
    started = time.perf_counter()
    resource._cli_version  # noqa: B018  (a cached_property: runs `dbt --version`)
    version_s = time.perf_counter() - started
    cwd = os.getcwd()
    os.chdir(artifacts.dbt_project_path)
    try:
        started = time.perf_counter()
        resource._initialize_dbt_core_adapter(["build"])
        adapter_s = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    return {"dbt --version subprocess": version_s, "dbt adapter set-up in process": adapter_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--worker", choices=VARIANTS)
    parser.add_argument("--artifacts")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.artifacts)
        return

    from floe_dagster.manifest import parse_project
    from floe_dbt.compile import compile_floe

    with tempfile.TemporaryDirectory(prefix="floe-materialize-bench-") as tmp:
        root = Path(tmp)
        project = root / "shop"
        shutil.copytree(
            REPO / "examples" / "shop", project, ignore=shutil.ignore_patterns(".floe", "target")
        )
        artifacts = compile_floe(project / "floe.yaml", output_dir=project / ".floe")
        parse_project(artifacts)  # both variants reuse its partial_parse.msgpack
        artifacts_path = project / ".floe" / "compiled_artifacts.json"
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for i in range(args.repeat):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                runs[variant].append(run_worker(variant, artifacts_path, root / f"spool-{i}"))
                timings = " ".join(
                    f"{k}={v:.2f}" for k, v in runs[variant][-1].items() if k.endswith("_s")
                )
                print(f"  run {i + 1} {variant:15s} {timings}", file=sys.stderr)
        parts = gap_parts(artifacts_path)

    print(f"examples/shop on DuckDB, {args.repeat} runs per variant, medians in seconds\n")
    print(
        "| measure | plain dagster-dbt | floe, events on | floe / plain "
        "| floe, standalone | standalone / plain |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for key, label in (
        ("process_s", "whole process (interpreter, imports, definitions, run)"),
        ("import_s", "imports (dagster + dagster-dbt, or floe_dagster)"),
        ("definitions_s", "definitions (manifest, asset specs)"),
        ("materialize_s", "materialization (execute_in_process)"),
        ("gap_s", "STEP_START to dbt start"),
    ):
        plain, floe, alone = (statistics.median(r[key] for r in runs[v]) for v in VARIANTS)
        print(
            f"| {label} | {plain:.2f} | {floe:.2f} | {floe / plain:.2f} "
            f"| {alone:.2f} | {alone / plain:.2f} |"
        )
    print("\nWhat plain dagster-dbt does between STEP_START and dbt's start, timed alone:\n")
    print("| step | seconds |")
    print("|---|---:|")
    for label, seconds in parts.items():
        print(f"| {label} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
