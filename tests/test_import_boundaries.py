"""The layers and the process boundaries hold, and no module imports itself round a circle.

Layers, strictly one way: ``floe_core`` <- ``floe_dbt`` <- ``floe_dagster`` <- ``floe_cli``, and
``floe_sidecar`` <- ``floe_core`` only. Process boundaries: the sidecar never loads dagster or dbt;
the adapter and the CLI never load the exporters (openlineage, opentelemetry); the shared contract
loads none of them.

Checked twice: statically, over every import statement in the source (also ones inside functions
and under ``TYPE_CHECKING``, relative ones, and ``importlib.import_module("...")`` with a literal
name), which also builds the import graph of every first-party module and looks for circles; and
at run time, by importing every module of a package in a fresh interpreter and looking at
``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from support.environment import REPO_ROOT

# package -> (its directory, the first-party packages it may import: itself and the layers below)
LAYERS: dict[str, tuple[str, frozenset[str]]] = {
    "floe_core": ("shared/floe_core", frozenset({"floe_core"})),
    "floe_dbt": ("adapter/floe_dbt", frozenset({"floe_core", "floe_dbt"})),
    "floe_dagster": ("adapter/floe_dagster", frozenset({"floe_core", "floe_dbt", "floe_dagster"})),
    "floe_cli": (
        "cli/floe_cli",
        frozenset({"floe_core", "floe_dbt", "floe_dagster", "floe_cli"}),
    ),
    "floe_sidecar": ("sidecar/floe_sidecar", frozenset({"floe_core", "floe_sidecar"})),
}
FIRST_PARTY = frozenset(LAYERS)

# package directory -> top-level module name prefixes (third-party) it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sidecar/floe_sidecar": ("dagster", "dbt"),
    "cli/floe_cli": ("openlineage", "opentelemetry"),
    "adapter/floe_dagster": ("openlineage", "opentelemetry"),
    "adapter/floe_dbt": ("openlineage", "opentelemetry", "dagster"),
    "shared/floe_core": ("dagster", "dbt", "openlineage", "opentelemetry"),
}


def _matches(module: str, prefixes: Iterable[str]) -> bool:
    top = module.split(".")[0]
    return any(top == p or top.startswith(p + "_") or top.startswith(p) for p in prefixes)


def imported_names(
    source: str,
    module: str = "",
    is_package: bool = False,
    known: frozenset[str] | None = None,
) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, wherever it is written, in line order.

    Relative imports are resolved against ``module`` (the importing module's dotted name).
    ``from A import b`` gives ``A`` and ``A.b`` (``b`` may be a submodule); with ``known`` (every
    module there is), only what is imported: ``A.b`` when it is a module (``A``, its package, is
    then only a parent, as with ``import A.b``), else ``A``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                if keep <= 0 or not module:
                    continue
                base = ".".join([*parts[:keep], *([base] if base else [])])
            names = [f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*"]
            if known is None:
                found.extend((node.lineno, name) for name in [base, *names] if name)
                continue
            submodules = [name for name in names if name in known]
            found.extend((node.lineno, name) for name in submodules)
            if base and len(submodules) < len(names):
                found.append((node.lineno, base))
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
    return sorted(found, key=lambda item: item[0])


def first_party_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of every first-party package."""
    modules: dict[str, Path] = {}
    for package, (directory, _) in LAYERS.items():
        root = REPO_ROOT / directory
        for file in sorted(root.rglob("*.py")):
            parts = [package, *file.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = file
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the first-party modules it imports (only names that are modules)."""
    known = frozenset(modules)
    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        source = file.read_text(encoding="utf-8")
        is_package = file.name == "__init__.py"
        graph[name] = {
            target
            for _, target in imported_names(source, name, is_package, known)
            if target in known and target != name
        }
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other round a circle (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Imports of a first-party package that its layer may not import."""
    problems = []
    for name, file in modules.items():
        package = name.split(".")[0]
        allowed = LAYERS[package][1]
        is_package = file.name == "__init__.py"
        for line, target in imported_names(file.read_text(encoding="utf-8"), name, is_package):
            top = target.split(".")[0]
            if top in FIRST_PARTY and top not in allowed:
                problems.append(f"{file.relative_to(REPO_ROOT)}:{line} imports {target}")
    return problems


def violations(package_dir: Path, prefixes: tuple[str, ...]) -> list[str]:
    problems = []
    for file in sorted(package_dir.rglob("*.py")):
        for line, module in imported_names(file.read_text(encoding="utf-8")):
            if _matches(module, prefixes):
                problems.append(f"{file.relative_to(REPO_ROOT)}:{line} imports {module}")
    return problems


def test_every_package_is_checked() -> None:
    listed = {directory for directory, _ in LAYERS.values()}
    on_disk = {
        str(init.parent.relative_to(REPO_ROOT))
        for init in REPO_ROOT.glob("*/*/__init__.py")
        if init.parent.name.startswith("floe_")
    }
    assert on_disk == listed == set(FORBIDDEN)


def test_layers_import_only_downwards() -> None:
    assert upward_imports(first_party_modules()) == []


def test_no_import_circle() -> None:
    modules = first_party_modules()
    graph = import_graph(modules)
    assert sum(len(t) for t in graph.values()) > 100  # the graph really was built
    assert circles(graph) == []


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
    found = [m for _, m in imported_names((pkg / "mod.py").read_text(), "pkg.mod")]
    assert found == [
        "json",
        "dagster",
        "dagster.asset",
        "importlib",
        "dbt.cli.main",
        "pkg",
        "pkg.sibling",
    ]
    assert _matches("dagster_dbt", ("dagster",)) and _matches("dbt_common.x", ("dbt",))
    assert not _matches("floe_dbtx", ("dbt",))


def test_the_checks_catch_an_upward_import_and_a_circle() -> None:
    """The checks can fail: a lazy upward import and a lazy two-module circle are both found."""
    lower = "def later():\n    from floe_cli.main import main\n    return main\n"
    assert [m for _, m in imported_names(lower, "floe_dbt.x")] == [
        "floe_cli.main",
        "floe_cli.main.main",
    ]
    graph = {
        "floe_dbt.a": {"floe_dbt.b"},
        "floe_dbt.b": {"floe_dbt.c"},
        "floe_dbt.c": {"floe_dbt.a"},
        "floe_dbt.d": {"floe_dbt.a"},
    }
    assert circles(graph) == [["floe_dbt.a", "floe_dbt.b", "floe_dbt.c"]]
    assert circles({"x": {"y"}, "y": set()}) == []


def test_the_sidecar_public_surface_is_enough_for_a_plugin() -> None:
    """What plugin authors import (``floe_sidecar``'s ``__all__``) exists, and the tests' own
    plugin sinks need nothing else from the sidecar."""
    import floe_sidecar

    assert all(hasattr(floe_sidecar, name) for name in floe_sidecar.__all__)
    source = (REPO_ROOT / "tests" / "support" / "plugins.py").read_text()
    used = {m for _, m in imported_names(source) if m.startswith("floe_sidecar")}
    assert used == {"floe_sidecar"} | {f"floe_sidecar.{n}" for n in used_names(source)}


def used_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "floe_sidecar":
            names.update(alias.name for alias in node.names)
    return names


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
    forbidden = (*FORBIDDEN["sidecar/floe_sidecar"], "floe_dbt", "floe_dagster", "floe_cli")
    assert [m for m in modules if _matches(m, forbidden)] == []


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
        "floe_core", "floe_dbt", "floe_dagster", "floe_cli", artifacts=compiled_example
    )
    assert failed == {}, failed
    assert "floe_dagster.definitions" in modules and "dagster" in modules
    assert "floe_cli.run" in modules and not [m for m in modules if m.startswith("floe_sidecar")]
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
    forbidden = (*FORBIDDEN["shared/floe_core"], "floe_dbt", "floe_dagster", "floe_cli")
    assert [m for m in modules if _matches(m, (*forbidden, "floe_sidecar"))] == []
