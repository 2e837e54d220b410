"""The warehouse identity of a compiled pipeline, for stamping events (never a credential).

:func:`connection_identity` reads the target output floe compiled (``artifacts.compute``) and
keeps only identifying fields: host, port, database, schema, account, project, path. A field
written as ``{{ env_var('NAME') }}`` (or with a default) is resolved from ``environ``: only
these non-secret fields are ever resolved; credentials are not even looked at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Connection
from floe_dbt.profiles import TARGETS

__all__ = ["connection_identity", "resolve_env_refs"]

_REF = re.compile(
    r"""\{\{\s*env_var\(\s*(['"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)\1"""
    r"""(?:\s*,\s*(['"])(?P<default>.*?)\3)?\s*\)\s*\}\}"""
)


def resolve_env_refs(value: str, environ: Mapping[str, str]) -> str | None:
    """``value`` with each ``{{ env_var('X'[, 'default']) }}`` replaced; None if one is unset
    and has no default."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        name, default = match.group("name"), match.group("default")
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing = True
        return ""

    result = _REF.sub(substitute, value)
    return None if missing else result


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
