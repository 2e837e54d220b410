"""PostgreSQL: user + password (the password from the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe_dbt.profiles._base import AuthMethod, TargetProfile


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "host": output.get("host"),
        "port": output.get("port"),
        "database": output.get("dbname", output.get("database")),
        "schema": output.get("schema"),
    }


PROFILE = TargetProfile(
    target="postgres",
    adapter_type="postgres",
    defaults={"host": "localhost", "port": 5432, "schema": "public", "threads": 4},
    methods={
        "password": AuthMethod("password", credentials={"password": "PASSWORD"}),
    },
    default_method="password",
    required=(("user",), ("dbname", "database")),
    path_keys=("sslcert", "sslkey", "sslrootcert"),
    identity=_identity,
)
