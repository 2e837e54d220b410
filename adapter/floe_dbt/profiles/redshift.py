"""Amazon Redshift: database password, or IAM (temporary credentials from AWS access keys).
Chosen by ``method`` (``database`` or ``iam``)."""

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
    target="redshift",
    adapter_type="redshift",
    defaults={"port": 5439, "threads": 4, "sslmode": "prefer"},
    methods={
        "database": AuthMethod(
            "database",
            settings={"method": "database"},
            credentials={"password": "PASSWORD"},
            required=(("user",),),
        ),
        "iam": AuthMethod(
            "iam",
            settings={"method": "iam"},
            credentials={
                "access_key_id": "AWS_ACCESS_KEY_ID",
                "secret_access_key": "AWS_SECRET_ACCESS_KEY",
            },
            required=(("user",), ("cluster_id", "serverless_work_group")),
        ),
    },
    method_key="method",
    default_method="database",
    required=(("host",), ("dbname", "database"), ("schema",)),
    identity=_identity,
)
