"""Snowflake: password, key pair, external browser (SSO) or OAuth.

Chosen by ``authenticator`` in compute.properties, as in a dbt profile: absent (or
``snowflake``) = password; ``snowflake_jwt`` = key pair (private_key_path + passphrase, dbt
infers the method from the key, so the selector is not written); ``externalbrowser``; ``oauth``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe_dbt.profiles._base import AuthMethod, TargetProfile


def _identity(output: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "account": output.get("account"),
        "host": output.get("host"),
        "database": output.get("database"),
        "schema": output.get("schema"),
    }


PROFILE = TargetProfile(
    target="snowflake",
    adapter_type="snowflake",
    defaults={"threads": 4, "client_session_keep_alive": False},
    methods={
        "password": AuthMethod(
            "password", credentials={"password": "PASSWORD"}, required=(("user",),)
        ),
        "keypair": AuthMethod(
            "keypair",
            credentials={
                "private_key_path": "PRIVATE_KEY_PATH",
                "private_key_passphrase": "PRIVATE_KEY_PASSPHRASE",
            },
            required=(("user",),),
        ),
        "externalbrowser": AuthMethod(
            "externalbrowser", settings={"authenticator": "externalbrowser"}, required=(("user",),)
        ),
        "oauth": AuthMethod(
            "oauth",
            settings={"authenticator": "oauth"},
            credentials={
                "token": "TOKEN",
                "oauth_client_id": "OAUTH_CLIENT_ID",
                "oauth_client_secret": "OAUTH_CLIENT_SECRET",
            },
        ),
    },
    method_key="authenticator",
    method_values={"snowflake": "password", "snowflake_jwt": "keypair"},
    default_method="password",
    drop_method_key=frozenset({"password", "keypair"}),
    required=(("account",), ("database",), ("warehouse",), ("schema",)),
    path_keys=("private_key_path",),
    identity=_identity,
)
