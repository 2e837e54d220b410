"""The CLI paths that need neither Dagster nor dbt never import them (each is seconds of start-up).

Each command runs in a fresh interpreter, which then lists what it imported of dagster,
dagster_dbt and dbt (``floe compile`` has its own check in test_compile.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.adapter import copy_example, prepare

PROBE = (
    "import sys\n"
    "from floe_cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = ('dagster', 'dagster_dbt', 'dbt')\n"
    "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
    "print(bad[:5])\n"
    "sys.exit(3 if bad else 0)\n"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop, compiled and parsed (what ``floe show`` reads next to)."""
    shop = copy_example(tmp_path_factory.mktemp("lazy") / "shop")
    prepare(shop)
    return shop


def imports_nothing_heavy(args: list[str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["show", "lineage"],
        ["show", "traces"],
        ["show", "logs"],
        ["show", "--html", "-o", "page.html"],
    ],
)
def test_cli_path_does_not_import_dagster_or_dbt(args: list[str], project: Path) -> None:
    code, output = imports_nothing_heavy(args, project)
    assert code != 3, output
