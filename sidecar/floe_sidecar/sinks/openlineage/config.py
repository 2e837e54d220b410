"""Where lineage goes, from the configuration OpenLineage users already know.

Resolution, first match wins (the same precedence as openlineage-python's own client):

1. ``OPENLINEAGE_DISABLED=true``, or ``observability.lineage: false`` in the compiled artifacts:
   lineage is off.
2. A transport from ``openlineage.yml`` (the file ``OPENLINEAGE_CONFIG`` names, else
   ``./openlineage.yml``, else ``$HOME/.openlineage/openlineage.yml``) merged under the
   ``OPENLINEAGE__TRANSPORT__...`` variables (``OPENLINEAGE__TRANSPORT__TYPE=http``,
   ``OPENLINEAGE__TRANSPORT__URL=...``; values are JSON when they parse as JSON). With a composite
   transport, ``OPENLINEAGE_URL`` adds an http child named ``default_http``, as the client does.
3. ``OPENLINEAGE_URL`` (+ ``OPENLINEAGE_ENDPOINT``, ``OPENLINEAGE_API_KEY``): http.
4. ``observability.lineage_endpoint`` from floe.yaml (+ ``OPENLINEAGE_API_KEY``): http. A URL whose
   path ends in ``/lineage`` is the full endpoint; otherwise it is the backend's base URL.
5. Nothing configured but lineage on in floe.yaml: the embedded default, OpenLineage NDJSON
   appended to ``<local output dir>/lineage/openlineage.ndjson``.
   Without compiled artifacts and without any OpenLineage configuration, lineage is off.

The job namespace is ``OPENLINEAGE_NAMESPACE``, else dbt-ol's default ``dbt``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from floe_core.errors import LineageConfigError
from floe_core.layout import LINEAGE_FILE
from floe_core.mappings import deep_merge
from floe_core.yamlload import safe_load
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.openlineage.naming import DEFAULT_JOB_NAMESPACE

__all__ = ["LineageConfig", "LineageConfigError", "resolve_lineage_config"]

_ENV_PREFIX = "OPENLINEAGE__"
_DEFAULT_ENDPOINT = "api/v1/lineage"


@dataclass(frozen=True)
class LineageConfig:
    #: An openlineage-python transport config (``type`` plus that transport's keys).
    transport: dict[str, Any]
    namespace: str
    #: Where the transport came from, for logs (never holds a secret).
    source: str


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def resolve_lineage_config(settings: SidecarSettings) -> LineageConfig | None:
    env = settings.environ
    if _truthy(env.get("OPENLINEAGE_DISABLED")):
        return None
    artifacts = settings.artifacts
    if artifacts is not None and not artifacts.observability.lineage:
        return None
    namespace = env.get("OPENLINEAGE_NAMESPACE") or DEFAULT_JOB_NAMESPACE

    file_path = _find_config_file(env)
    config: dict[str, Any] = _read_config_file(file_path) if file_path is not None else {}
    from_env = _config_from_env(env)
    if from_env:
        config = deep_merge(config, from_env)
    transport = config.get("transport")
    if transport is not None and not isinstance(transport, dict):
        raise LineageConfigError(
            f"{file_path or 'OPENLINEAGE__TRANSPORT'}: `transport` must be a mapping with a `type`"
        )
    if transport and transport.get("type"):
        transport = dict(transport)
        if transport["type"] == "composite" and env.get("OPENLINEAGE_URL"):
            transport = _with_default_http(transport, env)
        where = f"openlineage.yml at {file_path}" if file_path else "OPENLINEAGE__TRANSPORT__*"
        return LineageConfig(transport, namespace, where)

    if env.get("OPENLINEAGE_URL"):
        return LineageConfig(_http_from_env(env), namespace, "OPENLINEAGE_URL")
    endpoint = artifacts.observability.lineage_endpoint if artifacts is not None else None
    if endpoint:
        return LineageConfig(
            _http_from_endpoint(endpoint, env), namespace, "observability.lineage_endpoint"
        )
    if artifacts is None:
        return None
    path = settings.local_output_dir / LINEAGE_FILE
    return LineageConfig(
        {"type": "file", "log_file_path": str(path), "append": True},
        namespace,
        f"embedded default ({path})",
    )


def _find_config_file(env: Mapping[str, str]) -> Path | None:
    named = env.get("OPENLINEAGE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise LineageConfigError(f"OPENLINEAGE_CONFIG={named}: no such file")
        return path
    candidates = [Path.cwd() / "openlineage.yml"]
    if env.get("HOME"):
        candidates.append(Path(env["HOME"]) / ".openlineage" / "openlineage.yml")
    return next((path for path in candidates if path.is_file()), None)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        loaded = safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LineageConfigError(f"{path}: cannot read the OpenLineage config ({exc})") from exc
    except yaml.YAMLError as exc:
        raise LineageConfigError(f"{path}: not valid YAML ({exc})") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise LineageConfigError(f"{path}: the OpenLineage config must be a mapping")
    return loaded


def _config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``OPENLINEAGE__A__B=v`` as ``{"a": {"b": v}}``; shorter keys are applied last and win."""
    config: dict[str, Any] = {}
    for key, raw in sorted(
        ((k, v) for k, v in env.items() if k.startswith(_ENV_PREFIX)), reverse=True
    ):
        path = [part.lower() for part in key[len(_ENV_PREFIX) :].split("__")]
        value: Any
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = config
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return config


def _api_key_auth(env: Mapping[str, str]) -> dict[str, str] | None:
    key = env.get("OPENLINEAGE_API_KEY")
    return {"type": "api_key", "apiKey": key} if key else None


def _http_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    transport: dict[str, Any] = {
        "type": "http",
        "url": env["OPENLINEAGE_URL"],
        "endpoint": env.get("OPENLINEAGE_ENDPOINT") or _DEFAULT_ENDPOINT,
    }
    if auth := _api_key_auth(env):
        transport["auth"] = auth
    return transport


def _http_from_endpoint(endpoint: str, env: Mapping[str, str]) -> dict[str, Any]:
    parts = urlsplit(endpoint)
    if not parts.scheme or not parts.netloc:
        raise LineageConfigError(
            f"observability.lineage_endpoint={endpoint!r}: not an http(s) URL "
            "(e.g. http://marquez:5000)"
        )
    path = parts.path.rstrip("/")
    transport: dict[str, Any]
    if path.endswith("/lineage"):
        url = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        transport = {"type": "http", "url": url, "endpoint": path.lstrip("/")}
    else:
        transport = {"type": "http", "url": endpoint, "endpoint": _DEFAULT_ENDPOINT}
    if auth := _api_key_auth(env):
        transport["auth"] = auth
    return transport


def _with_default_http(transport: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    children = transport.get("transports") or []
    http = _http_from_env(env)
    if isinstance(children, dict):
        if not any(name.lower() == "default_http" for name in children):
            children = {**children, "default_http": http}
    elif not any(isinstance(c, dict) and c.get("name") == "default_http" for c in children):
        children = [*children, {**http, "name": "default_http"}]
    return {**transport, "transports": children}
