"""Apache Spark: Thrift server, HTTP (Databricks clusters/endpoints, token), ODBC (token) or an
in-process session. Chosen by ``method``; Thrift with ``auth: LDAP`` also reads a password."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe_dbt.profiles._base import AuthMethod, TargetProfile


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    return {
        # a session runs in process: its `host` is a placeholder dbt-spark insists on
        "host": None if output.get("method") == "session" else output.get("host"),
        "port": output.get("port"),
        "schema": output.get("schema"),
    }


def _refine(method: AuthMethod, properties: Mapping[str, Any]) -> AuthMethod:
    auth = str(properties.get("auth", "")).upper()
    if method.name == "thrift" and auth in ("LDAP", "CUSTOM"):
        return _THRIFT_PASSWORD
    return method


_THRIFT_PASSWORD = AuthMethod(
    "thrift-ldap",
    settings={"method": "thrift"},
    credentials={"password": "PASSWORD"},
    required=(("host",), ("user",)),
)

PROFILE = TargetProfile(
    target="spark",
    adapter_type="spark",
    defaults={"threads": 4},
    methods={
        "thrift": AuthMethod("thrift", settings={"method": "thrift"}, required=(("host",),)),
        "http": AuthMethod(
            "http",
            settings={"method": "http"},
            credentials={"token": "TOKEN"},
            required=(("host",), ("cluster", "endpoint")),
        ),
        "odbc": AuthMethod(
            "odbc",
            settings={"method": "odbc"},
            credentials={"token": "TOKEN"},
            required=(("host",), ("driver",), ("cluster", "endpoint")),
        ),
        "session": AuthMethod("session", settings={"method": "session", "host": "NA"}),
    },
    method_key="method",
    default_method="thrift",
    required=(("schema",),),
    identity=_identity,
    refine=_refine,
)
