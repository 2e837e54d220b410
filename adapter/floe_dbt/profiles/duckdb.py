"""DuckDB: an embedded database file; no credentials (secrets for S3 etc. only as env_var())."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from floe_dbt.profiles._base import AuthMethod, TargetProfile


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    path = output.get("path")
    database = output.get("database")
    if database is None and isinstance(path, str) and path not in ("", ":memory:"):
        database = PurePath(path.split("?", 1)[0]).stem  # how dbt-duckdb names the catalog
    return {"path": path, "database": database or "memory", "schema": output.get("schema")}


PROFILE = TargetProfile(
    target="duckdb",
    adapter_type="duckdb",
    defaults={"path": "{name}_{environment}.duckdb", "schema": "main", "threads": 4},
    methods={"none": AuthMethod("none")},  # a local file: no credentials
    default_method="none",
    path_keys=("path",),
    identity=_identity,
)
