"""Databricks: personal access token, or OAuth machine-to-machine (a service principal's client
id and secret). Chosen by ``auth_type`` (absent = token, ``oauth``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe_dbt.profiles._base import AuthMethod, TargetProfile


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "host": output.get("host"),
        "database": output.get("catalog", output.get("database")),
        "schema": output.get("schema"),
    }


PROFILE = TargetProfile(
    target="databricks",
    adapter_type="databricks",
    defaults={"threads": 4},
    methods={
        "token": AuthMethod("token", credentials={"token": "TOKEN"}),
        "oauth": AuthMethod(
            "oauth",
            settings={"auth_type": "oauth"},
            credentials={"client_id": "CLIENT_ID", "client_secret": "CLIENT_SECRET"},
        ),
    },
    method_key="auth_type",
    method_values={"token": "token"},
    default_method="token",
    drop_method_key=frozenset({"token"}),
    required=(("host",), ("http_path",), ("schema",)),
    identity=_identity,
)
