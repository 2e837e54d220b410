"""The warehouse identity of a compiled pipeline, for stamping events (never a credential).

:func:`connection_identity` reads the target output floe compiled (``artifacts.compute``) and
keeps only identifying fields: host, port, database, schema, account, project, path. A field
written as ``{{ env_var('NAME') }}`` (or with a default) is resolved from ``environ``, unless the
variable is a secret: one the profile reads a credential from (``compute.secret_env_vars``), one
dbt treats as secret (``DBT_ENV_SECRET_*``) or one named like a credential. Such a field is left
out rather than rendered. Every value then loses its URL user info and query string
(``md:db?motherduck_token=...`` is ``md:db``), and any known secret value still in it is
redacted: an identity ends up in every dataset namespace, span and log record of the run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Connection
from floe_core.redaction import Redactor, is_secret_variable, strip_url_credentials
from floe_dbt.env_vars import env_var_names, resolve_env_refs
from floe_dbt.profiles import TARGETS

__all__ = ["connection_identity"]


def connection_identity(
    artifacts: CompiledArtifacts, environ: Mapping[str, str] | None = None
) -> Connection:
    """The :class:`Connection` (target, adapter type and identifying fields) of ``artifacts``."""
    env = os.environ if environ is None else environ
    compute = artifacts.compute
    profile = TARGETS.get(compute.target)
    fields: dict[str, Any] = profile.identity(compute.properties) if profile else {}
    secret_vars = set(compute.secret_env_vars)
    redactor = Redactor.from_environment(env, compute.secret_env_vars)
    resolved: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            value = _resolve(value, env, secret_vars, redactor)
        if value is None or value == "":
            continue
        if key == "port":
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        else:
            value = str(value)
        resolved[key] = value
    return Connection(target=compute.target, adapter_type=compute.adapter_type, **resolved)


def _resolve(
    value: str, env: Mapping[str, str], secret_vars: set[str], redactor: Redactor
) -> str | None:
    """One identity field rendered without a secret in it; None when it cannot be."""
    names = env_var_names(value)
    if any(name in secret_vars or is_secret_variable(name) for name in names):
        # Whatever the secret is part of (a URL, a connection string), drop only what follows
        # the query mark; a field that is not a URL is left out altogether.
        value = strip_url_credentials(value)
        if any(env_var_names(value)):
            return None
    rendered = resolve_env_refs(value, env) if names else value
    if rendered is None:
        return None
    return redactor.redact(strip_url_credentials(rendered)) or None
