"""How long `floe compile` takes on a 1,000-model dbt project (target: under 1 s).

Generates, in a temporary directory, a dbt project of N models (each refs the one before it,
every model documents 3 columns, one classified `pii` in column meta) plus a floe.yaml, lets
dbt itself write the real manifest (`dbt parse`), then times, side by side in this one run:

- floe compile, in process (median of --repeat runs): floe.yaml -> compiled_artifacts.json +
  profiles.yml, with column classifications read from the 1,000-model manifest;
- the same manifest read the naive way (json.load + walking every node), the work compile
  would do without its partial msgspec decode;
- `floe compile` as a command (a fresh interpreter each time: what a user waits for);
- `dbt parse` of the same project (partial parsing off), the step users run anyway.

    .venv/bin/python bench/compile_bench.py [--models 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from floe_dbt.compile import compile_floe

BIN = Path(sys.executable).parent


def make_project(root: Path, models: int) -> Path:
    dbt = root / "dbt"
    (dbt / "models").mkdir(parents=True)
    (dbt / "dbt_project.yml").write_text(
        "name: big\nversion: '1.0'\nconfig-version: 2\nprofile: big\n"
        "models:\n  big:\n    +materialized: view\n"
    )
    schema = ["version: 2", "models:"]
    for i in range(models):
        upstream = f"(select * from {{{{ ref('m{i - 1:04d}') }}}}) u" if i else "(select 1) u"
        (dbt / "models" / f"m{i:04d}.sql").write_text(
            f"select {i} as id, 'user{i}@example.com' as email, 1.0 as amount from {upstream}\n"
        )
        schema += [
            f"  - name: m{i:04d}",
            f"    description: model {i}",
            "    columns:",
            "      - name: id",
            "        description: key",
            "      - name: email",
            "        meta: {classification: pii}",
            "      - name: amount",
        ]
    (dbt / "models" / "schema.yml").write_text("\n".join(schema) + "\n")
    floe_yaml = root / "floe.yaml"
    floe_yaml.write_text(
        "name: big\ncompute:\n  target: duckdb\n  properties: {path: big.duckdb}\n"
        "transforms:\n  - {type: dbt, path: dbt}\n"
        "observability: {traces: true, lineage: true, attributes: {tenant: bench}}\n"
        "environments:\n  prod:\n    compute:\n      target: postgres\n"
        "      connection_secret_ref: wh\n      properties: {host: db, user: u, dbname: d}\n"
    )
    return floe_yaml


def naive_classifications(manifest: Path) -> int:
    data = json.loads(manifest.read_text())
    found = 0
    for group in ("nodes", "sources"):
        for node in data.get(group, {}).values():
            for column in node.get("columns", {}).values():
                if (column.get("meta") or {}).get("classification"):
                    found += 1
    return found


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floe_yaml = make_project(root, args.models)
        out = root / ".floe"
        first = compile_floe(floe_yaml, output_dir=out)  # profiles for dbt parse

        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "dbt"),
                "parse",
                "--no-partial-parse",
                "--project-dir",
                first.dbt_project_path,
                "--profiles-dir",
                first.dbt_profiles_path,
            ],
            check=True,
            capture_output=True,
        )
        dbt_parse = time.perf_counter() - start
        manifest = Path(first.dbt_manifest_path)
        manifest_mb = manifest.stat().st_size / 1e6

        artifacts = compile_floe(floe_yaml, output_dir=out)
        assert len(artifacts.column_classifications) == args.models
        in_process = timed(lambda: compile_floe(floe_yaml, "prod", out), args.repeat)
        naive = timed(lambda: naive_classifications(manifest), args.repeat)
        cli = timed(
            lambda: subprocess.run(
                [str(BIN / "floe"), "compile", str(floe_yaml), "--output-dir", str(out)],
                check=True,
                capture_output=True,
            ),
            max(3, args.repeat // 4),
        )

    compile_s = statistics.median(in_process)
    rows = [
        ("floe compile (in process, median)", compile_s),
        ("manifest read naively (json.load, median)", statistics.median(naive)),
        ("`floe compile` command (fresh interpreter, median)", statistics.median(cli)),
        ("`dbt parse --no-partial-parse` (once)", dbt_parse),
    ]
    print(f"{args.models} models, manifest.json {manifest_mb:.1f} MB (written by dbt parse)\n")
    print(f"| step ({args.models} models) | seconds | x floe compile |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.4f} | {seconds / compile_s:.1f} |")
    verdict = "PASS" if statistics.median(cli) < 1.0 and compile_s < 1.0 else "FAIL"
    print(
        f"\nunder 1 s: {verdict} (in process {compile_s * 1000:.1f} ms, "
        f"command {statistics.median(cli) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
