"""Shared by the benches that run whole projects: generated dbt projects, a user-like venv, and
one child process timed with its peak memory (children included).

- :func:`generate`: the shop's models replaced by ``models`` generated ones in 10 layers, each
  model joining two of the layer above (DuckDB SQL), with a ``not_null`` test on every
  ``tests_every``-th model (500 models and ``tests_every=5``: 100 tests);
- :func:`user_venv`: a venv with only what a user installs (floe with its ``adapter`` and
  ``sidecar`` extras: dagster, dagster-dbt, dbt-core, dbt-duckdb; no other adapter, no test
  tools), built from uv.lock, so the measured imports are the user's and not the test venv's;
- :func:`run_measured`: wall time of one command, the peak of its whole process tree's RSS
  (sampled), and the largest single process's peak (exact, from the kernel's ``ru_maxrss``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OFFLINE",
    "REPO",
    "Measured",
    "copy_shop",
    "dagster_home",
    "generate",
    "manifest_assets",
    "run_measured",
    "user_venv",
]

REPO = Path(__file__).resolve().parents[1]
#: No internet: ``dbt --version``'s PyPI look-up and any telemetry fail at once on a closed port.
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


def copy_shop(dest: Path) -> Path:
    """A clean copy of examples/shop (no .floe, no dbt target, no warehouse file)."""
    shutil.copytree(
        REPO / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*"),
    )
    return dest


def dagster_home(path: Path) -> Path:
    """A Dagster instance directory for the plain dagster-dbt peer, telemetry off as floe's is."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


def generate(project: Path, models: int, layers: int = 10, tests_every: int = 0) -> None:
    """Replace the shop's models with ``models`` generated ones (DuckDB SQL); the seeds stay.

    ``tests_every`` > 0 adds a ``not_null`` test on ``id`` to every ``tests_every``-th model.
    """
    dbt_dir = project / "dbt"
    shutil.rmtree(dbt_dir / "models")
    shutil.rmtree(dbt_dir / "snapshots", ignore_errors=True)
    out = dbt_dir / "models" / "gen"
    out.mkdir(parents=True)
    per_layer = max(1, models // layers)
    tested: list[str] = []
    for layer in range(layers):
        for i in range(per_layer):
            name = f"m_{layer}_{i}"
            if layer == 0:
                sql = f"select i as id, i * {i + 1} as v from range(100) t(i)\n"
            else:
                a = f"m_{layer - 1}_{i}"
                b = f"m_{layer - 1}_{(i + 1) % per_layer}"
                sql = (
                    f"select a.id, a.v + b.v as v from {{{{ ref('{a}') }}}} a "
                    f"join {{{{ ref('{b}') }}}} b using (id)\n"
                )
            (out / f"{name}.sql").write_text(sql)
            if tests_every and (layer * per_layer + i) % tests_every == 0:
                tested.append(name)
    if tested:
        schema = {
            "version": 2,
            "models": [
                {"name": n, "columns": [{"name": "id", "tests": ["not_null"]}]} for n in tested
            ],
        }
        (out / "schema.yml").write_text(json.dumps(schema, indent=1))  # JSON is valid YAML


def manifest_assets(manifest: Path) -> int:
    """How many assets a dbt build materializes: its models, seeds and snapshots, not ephemeral."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return sum(
        1
        for n in nodes
        if n["resource_type"] in {"model", "seed", "snapshot"}
        and n["config"].get("materialized") != "ephemeral"
    )


def user_venv(path: Path | None = None) -> Path:
    """Build (or bring up to date) the user-like venv at ``path``; return its ``bin`` directory.

    floe itself is installed as a wheel from this checkout (not editable), as a user gets it, and
    every package's bytecode is compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is
    set Python caches none, and each variant's every start would compile dagster and dbt from
    source again (about 2 s of a shop-sized run, more for the variants that import Dagster).
    """
    venv = path or Path(tempfile.gettempdir()) / "floe-bench-user-venv"
    uv = REPO / ".venv" / "bin" / "uv"
    subprocess.run(
        [
            str(uv if uv.exists() else "uv"),
            "sync",
            "--quiet",
            "--locked",
            "--no-editable",
            "--compile-bytecode",
            "--reinstall-package",
            "floe",
            "--extra",
            "adapter",
            "--extra",
            "sidecar",
            "--no-default-groups",
        ],
        cwd=REPO,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    return venv / "bin"


@dataclass(frozen=True)
class Measured:
    wall_s: float
    tree_peak_mb: float  # sum of the RSS of the process and all its descendants, sampled
    process_peak_mb: float  # the largest single process's peak RSS (exact)
    returncode: int
    log: Path


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_measured(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    sample_s: float = 0.1,
) -> Measured:
    """Run ``command`` to its end, output to ``log``; time it and its memory (:class:`Measured`)."""
    peak = 0
    done = threading.Event()
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )

        def sample() -> None:
            nonlocal peak
            while not done.wait(sample_s):
                peak = max(peak, _tree_rss(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    process_peak = usage.ru_maxrss / 1024  # KiB on Linux
    return Measured(wall, max(peak / 2**20, process_peak), process_peak, child.returncode, log)
