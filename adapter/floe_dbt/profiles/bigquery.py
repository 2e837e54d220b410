"""BigQuery: OAuth (gcloud application-default login), a service-account key file, the key
file's JSON from the environment, or OAuth refresh-token secrets. Chosen by ``method``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe_dbt.env_vars import env_var
from floe_dbt.profiles._base import AuthMethod, TargetProfile

_PROJECT = ("project", "database")
_DATASET = ("dataset", "schema")


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    project = output.get("project", output.get("database"))
    return {
        "project": project,
        "database": project,
        "schema": output.get("dataset", output.get("schema")),
    }


def keyfile_json(private_key_var: str, private_key_id_var: str) -> dict[str, Any]:
    """A service-account key as dbt's ``keyfile_json``: the key parts come from the env."""
    return {
        "type": "service_account",
        "private_key_id": env_var(private_key_id_var),
        "private_key": env_var(private_key_var),
    }


PROFILE = TargetProfile(
    target="bigquery",
    adapter_type="bigquery",
    defaults={"threads": 4, "location": "US", "priority": "interactive", "job_retries": 1},
    methods={
        "oauth": AuthMethod("oauth", settings={"method": "oauth"}),
        "service-account": AuthMethod(
            "service-account",
            settings={"method": "service-account"},
            credentials={"keyfile": "KEYFILE"},
        ),
        "service-account-json": AuthMethod(
            "service-account-json",
            settings={"method": "service-account-json"},
            # keyfile_json is assembled by the builder (see keyfile_json); the user adds the
            # non-secret parts (client_email, client_id, project_id, token_uri) under
            # keyfile_json in compute.properties.
            credentials={
                "keyfile_json.private_key": "PRIVATE_KEY",
                "keyfile_json.private_key_id": "PRIVATE_KEY_ID",
            },
            required=(("keyfile_json.client_email",),),
        ),
        "oauth-secrets": AuthMethod(
            "oauth-secrets",
            settings={
                "method": "oauth-secrets",
                "token_uri": "https://oauth2.googleapis.com/token",
            },
            credentials={
                "refresh_token": "REFRESH_TOKEN",
                "client_id": "CLIENT_ID",
                "client_secret": "CLIENT_SECRET",
            },
        ),
    },
    method_key="method",
    default_method="oauth",
    required=(_PROJECT, _DATASET),
    path_keys=("keyfile",),
    identity=_identity,
)
