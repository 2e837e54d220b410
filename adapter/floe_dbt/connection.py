"""The warehouse identity of a compiled pipeline, for stamping events (never a credential).

:func:`connection_identity` reads the target output floe compiled (``artifacts.compute``) and
keeps only identifying fields: host, port, database, schema, account, project, path. A field
written as ``{{ env_var('NAME') }}`` (or with a default) is resolved from ``environ``: only
these non-secret fields are ever resolved; credentials are not even looked at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Connection
from floe_dbt.env_vars import resolve_env_refs
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
    resolved: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            value = resolve_env_refs(value, env)
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
