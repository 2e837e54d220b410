"""The process boundaries hold: the sidecar never loads dagster or dbt; the adapter never loads
the exporters (openlineage, opentelemetry); the shared contract loads none of them.

Checked twice: statically, over every import statement in the source (also ones inside
functions, and ``importlib.import_module("...")`` with a literal name), and at run time, by
importing every module of a package in a fresh interpreter and looking at ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.environment import REPO_ROOT

# package directory -> top-level module name prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sidecar/floe_sidecar": ("dagster", "dbt", "floe_dagster", "floe_dbt"),
    "adapter/floe_dagster": ("openlineage", "opentelemetry", "floe_sidecar"),
    "adapter/floe_dbt": ("openlineage", "opentelemetry", "floe_sidecar", "dagster"),
    "shared/floe_core": (
        "dagster",
        "dbt",
        "openlineage",
        "opentelemetry",
        "floe_dagster",
        "floe_dbt",
        "floe_sidecar",
    ),
}


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    top = module.split(".")[0]
    return any(top == p or top.startswith(p + "_") or top.startswith(p) for p in prefixes)


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, wherever it is written."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value))
    return found


def violations(package_dir: Path, prefixes: tuple[str, ...]) -> list[str]:
    problems = []
    for file in sorted(package_dir.rglob("*.py")):
        for line, module in imported_names(file.read_text(encoding="utf-8")):
            if _matches(module, prefixes):
                problems.append(f"{file.relative_to(REPO_ROOT)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_import_statement(package: str) -> None:
    directory = REPO_ROOT / package
    assert directory.is_dir(), directory
    assert violations(directory, FORBIDDEN[package]) == []


def test_static_check_catches_a_lazy_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text(
        "import json\n"
        "def later():\n"
        "    from dagster import asset\n"
        "    import importlib\n"
        "    return importlib.import_module('dbt.cli.main')\n"
        "from . import sibling\n"
    )
    found = [m for _, m in imported_names((pkg / "mod.py").read_text())]
    assert found == ["json", "dagster", "importlib", "dbt.cli.main"]
    assert _matches("dagster_dbt", ("dagster",)) and _matches("dbt_common.x", ("dbt",))
    assert not _matches("floe_dbtx", ("dbt",))


_PROBE = """
import importlib, json, pkgutil, sys
roots = sys.argv[1].split(",")
failed = {}
for root in roots:
    package = importlib.import_module(root)
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # report, do not hide: the test shows it
            failed[info.name] = repr(exc)
print(json.dumps({"modules": sorted(sys.modules), "failed": failed}))
"""


@pytest.fixture(scope="module")
def compiled_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts + manifest of the example, so modules that build Dagster definitions at import
    (``floe_dagster.definitions``) import fully and their imports are seen too."""
    from floe_dbt.compile import compile_floe

    root = tmp_path_factory.mktemp("boundaries") / "shop"
    shutil.copytree(
        REPO_ROOT / "examples" / "shop",
        root,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*"),
    )
    artifacts = compile_floe(root / "floe.yaml", output_dir=root / ".floe")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "parse",
            "--project-dir",
            artifacts.dbt_project_path,
            "--profiles-dir",
            artifacts.dbt_profiles_path,
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return root / ".floe" / "compiled_artifacts.json"


def loaded_modules(
    *packages: str, artifacts: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if artifacts is not None:
        env["FLOE_ARTIFACTS"] = str(artifacts)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(packages)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return data["modules"], data["failed"]


def test_sidecar_loads_no_dagster_or_dbt() -> None:
    modules, failed = loaded_modules("floe_sidecar")
    assert failed == {}, failed
    assert [m for m in modules if _matches(m, FORBIDDEN["sidecar/floe_sidecar"])] == []


# dbt-common itself imports opentelemetry-api's context module (dbt_common/context.py), so
# at run time the adapter may hold `opentelemetry.context`; what it must never load is lineage
# or the OpenTelemetry SDK and exporters. Its own source may import no opentelemetry at all
# (static test above).
EXPORTER_MODULES = (
    "openlineage",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.proto",
    "opentelemetry.trace",
)


def test_adapter_and_core_load_no_exporters(compiled_example: Path) -> None:
    modules, failed = loaded_modules(
        "floe_core", "floe_dbt", "floe_dagster", artifacts=compiled_example
    )
    assert failed == {}, failed
    assert "floe_dagster.definitions" in modules and "dagster" in modules
    loaded = [m for m in modules if any(m == p or m.startswith(p + ".") for p in EXPORTER_MODULES)]
    assert loaded == []
    otel = [m for m in modules if m.split(".")[0] == "opentelemetry"]
    assert all(
        m == "opentelemetry"
        or m.startswith(
            ("opentelemetry.context", "opentelemetry.environment_variables", "opentelemetry.util")
        )
        for m in otel
    ), otel


def test_core_loads_nothing_heavy() -> None:
    modules, failed = loaded_modules("floe_core")
    assert failed == {}, failed
    assert [m for m in modules if _matches(m, FORBIDDEN["shared/floe_core"])] == []
