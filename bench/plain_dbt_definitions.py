"""Plain dagster-dbt, as its docs show it: the peer of floe in tax_bench and definitions_bench.

``@dbt_assets`` over the project's ``target/manifest.json`` + ``DbtCliResource`` +
``yield from dbt.cli(["build"], context=context).stream()``; nothing of floe. Loaded the way a
user loads a definitions file (``dagster asset materialize -f``, ``dagster definitions validate
-f``, ``dagster dev -f``); which project it describes comes from the environment, so one file
serves every generated project:

- ``PLAIN_DBT_PROJECT_DIR``: the dbt project (its ``target/manifest.json`` must exist);
- ``PLAIN_DBT_PROFILES_DIR``: the directory of the profiles.yml to run with.
"""

# No ``from __future__ import annotations``: Dagster reads the context annotation at runtime.
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Definitions
from dagster_dbt import DbtCliResource, dbt_assets

__all__ = ["PROFILES_DIR_ENV", "PROJECT_DIR_ENV", "defs"]

PROJECT_DIR_ENV = "PLAIN_DBT_PROJECT_DIR"
PROFILES_DIR_ENV = "PLAIN_DBT_PROFILES_DIR"

project_dir = Path(os.environ[PROJECT_DIR_ENV])


@dbt_assets(manifest=project_dir / "target" / "manifest.json")
def plain_dbt(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Every model, seed, snapshot and test of the project in one ``dbt build``."""
    yield from dbt.cli(["build"], context=context).stream()


defs = Definitions(
    assets=[plain_dbt],
    resources={
        "dbt": DbtCliResource(
            project_dir=os.fspath(project_dir), profiles_dir=os.environ[PROFILES_DIR_ENV]
        )
    },
)
