"""Where traces go, resolved once from the compiled artifacts and the standard OTel variables.

Switches, in order: ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn traces off;
otherwise ``observability.traces`` from the compiled artifacts decides. Without compiled
artifacts, traces are on only when an OTLP endpoint variable is set.

Destination: the first of ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is),
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``observability.otlp_endpoint`` (base URLs: ``/v1/traces`` is
appended for HTTP). The environment wins over floe.yaml, so an operator can redirect traces
without recompiling. With traces on and no endpoint at all, spans go to an OTLP/JSON lines file
under the local output directory: nothing leaves the machine.

Protocol: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (only the
SDK's auto-configuration reads these, so floe does); when unset, port 4317 means ``grpc`` and
anything else ``http/protobuf`` (the specification's default). Timeouts
(``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT``) are milliseconds, as the specification says (the
Python SDK reads them as seconds); the default is short, because the sidecar retries with its
own backoff and a dead endpoint should fail fast.

Resource: ``service.name`` defaults to ``floe``; ``OTEL_RESOURCE_ATTRIBUTES`` adds to it and
``OTEL_SERVICE_NAME`` overrides its ``service.name``; ``observability.attributes`` and the
environment's name (``deployment.environment.name``) are laid over those, as the SDK's
``Resource.create`` lets code-given attributes win over the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry.util.re import parse_env_headers

from floe_core.errors import TraceConfigError
from floe_core.layout import TRACES_FILE
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.otel.translate import ENVIRONMENT_ATTRIBUTE

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_SERVICE_NAME",
    "DEFAULT_TIMEOUT_S",
    "FileExport",
    "OtlpExport",
    "OtlpProtocol",
    "TraceConfig",
    "TraceConfigError",
    "resolve_trace_config",
]

OtlpProtocol = Literal["grpc", "http/protobuf"]
Compression = Literal["none", "gzip", "deflate"]

DEFAULT_SERVICE_NAME: Final = "floe"
DEFAULT_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_BATCH: Final = 512
_GRPC_PORT: Final = 4317
_HTTP_TRACES_PATH: Final = "/v1/traces"
_TRUE: Final = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True)
class OtlpExport:
    """Export over OTLP to a collector or backend."""

    protocol: OtlpProtocol
    # grpc: the URL or host:port as configured; http/protobuf: the full URL of the traces path.
    endpoint: str
    insecure: bool  # grpc only: plaintext instead of TLS
    # Header values are often API keys: kept out of repr (and so out of logs).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    compression: Compression = "none"

    @property
    def display_endpoint(self) -> str:
        """The endpoint without any user:password part, for logs and errors."""
        parts = urlsplit(self.endpoint)
        if parts.scheme and "@" in parts.netloc:
            host = parts.netloc.rsplit("@", 1)[1]
            return urlunsplit(parts._replace(netloc=host))
        return self.endpoint


@dataclass(frozen=True)
class FileExport:
    """The embedded default: OTLP/JSON lines, one ExportTraceServiceRequest per line."""

    path: Path


@dataclass(frozen=True)
class TraceConfig:
    export: OtlpExport | FileExport
    # Resource attributes every span starts from (service.name always present).
    resource: Mapping[str, str]
    # Most spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, the usual knob).
    max_batch: int = DEFAULT_MAX_BATCH


def resolve_trace_config(settings: SidecarSettings) -> TraceConfig | None:
    """The trace configuration, or ``None`` when traces are switched off."""
    env = settings.environ
    if _flag(env, "OTEL_SDK_DISABLED"):
        return None
    exporters = {
        item.strip().lower() for item in env.get("OTEL_TRACES_EXPORTER", "").split(",")
    } - {""}
    if exporters == {"none"}:
        return None
    unsupported = exporters - {"otlp"}
    if unsupported:
        raise TraceConfigError(
            f"OTEL_TRACES_EXPORTER={env['OTEL_TRACES_EXPORTER']!r}: floe-sidecar exports traces "
            "over OTLP only; use 'otlp' or 'none'"
        )
    observability = settings.artifacts.observability if settings.artifacts else None
    signal_endpoint = _get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base_endpoint = _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if observability is not None:
        if not observability.traces:
            return None
        base_endpoint = base_endpoint or observability.otlp_endpoint
    elif not (signal_endpoint or base_endpoint):
        return None
    resource = _resource(settings)
    max_batch = _max_batch(env)
    if not (signal_endpoint or base_endpoint):
        path = settings.local_output_dir / TRACES_FILE
        return TraceConfig(export=FileExport(path=path), resource=resource, max_batch=max_batch)
    export = _otlp(env, signal_endpoint, base_endpoint)
    return TraceConfig(export=export, resource=resource, max_batch=max_batch)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _signal(env: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """``OTEL_EXPORTER_OTLP_TRACES_<suffix>`` or else ``OTEL_EXPORTER_OTLP_<suffix>``."""
    for name in (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        value = _get(env, name)
        if value is not None:
            return name, value
    return None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _otlp(env: Mapping[str, str], signal_endpoint: str | None, base: str | None) -> OtlpExport:
    configured = signal_endpoint or base
    assert configured is not None
    protocol = _protocol(env, configured)
    if protocol == "http/protobuf":
        endpoint = signal_endpoint or _traces_url(configured)
        if urlsplit(endpoint).scheme not in {"http", "https"}:
            raise TraceConfigError(
                f"OTLP endpoint {endpoint!r}: OTLP over HTTP needs an http:// or https:// URL"
            )
        insecure = urlsplit(endpoint).scheme == "http"
    else:
        endpoint = configured
        insecure = _grpc_insecure(env, endpoint)
    headers: dict[str, str] = {}
    found_headers = _signal(env, "HEADERS")
    if found_headers is not None:
        headers = dict(parse_env_headers(found_headers[1], liberal=True))
    return OtlpExport(
        protocol=protocol,
        endpoint=endpoint,
        insecure=insecure,
        headers=headers,
        certificate_file=_file(env, "CERTIFICATE"),
        client_key_file=_file(env, "CLIENT_KEY"),
        client_certificate_file=_file(env, "CLIENT_CERTIFICATE"),
        timeout_s=_timeout(env),
        compression=_compression(env, protocol),
    )


def _protocol(env: Mapping[str, str], endpoint: str) -> OtlpProtocol:
    found = _signal(env, "PROTOCOL")
    if found is None:
        return "grpc" if _port(endpoint) == _GRPC_PORT else "http/protobuf"
    name, value = found
    if value == "grpc":
        return "grpc"
    if value == "http/protobuf":
        return "http/protobuf"
    if value == "http/json":
        raise TraceConfigError(
            f"{name}=http/json: the OpenTelemetry Python exporters send OTLP as protobuf only; "
            "use grpc or http/protobuf (every OTLP receiver accepts both)"
        )
    raise TraceConfigError(f"{name}={value!r}: expected grpc or http/protobuf")


def _port(endpoint: str) -> int | None:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        return parts.port
    except ValueError:
        raise TraceConfigError(f"OTLP endpoint {endpoint!r}: the port is not a number") from None


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(_HTTP_TRACES_PATH) else base + _HTTP_TRACES_PATH


def _grpc_insecure(env: Mapping[str, str], endpoint: str) -> bool:
    scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
    if scheme == "https":
        return False
    if scheme == "http":
        return True
    # No scheme: OTEL_EXPORTER_OTLP[_TRACES]_INSECURE decides, TLS by default.
    found = _signal(env, "INSECURE")
    return found is not None and found[1].lower() in _TRUE


def _file(env: Mapping[str, str], suffix: str) -> str | None:
    found = _signal(env, suffix)
    if found is None:
        return None
    name, value = found
    if not Path(value).is_file():
        raise TraceConfigError(f"{name}={value}: no such file")
    return value


def _timeout(env: Mapping[str, str]) -> float:
    found = _signal(env, "TIMEOUT")
    if found is None:
        return DEFAULT_TIMEOUT_S
    name, value = found
    try:
        millis = float(value)
    except ValueError:
        raise TraceConfigError(f"{name}={value!r}: expected milliseconds, e.g. 5000") from None
    if millis <= 0:
        raise TraceConfigError(f"{name}={value!r}: the timeout must be positive (milliseconds)")
    return millis / 1000


def _max_batch(env: Mapping[str, str]) -> int:
    name = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
    value = _get(env, name)
    if value is None:
        return DEFAULT_MAX_BATCH
    if not value.isdigit() or int(value) < 1:
        raise TraceConfigError(f"{name}={value!r}: expected a positive whole number of spans")
    return int(value)


def _compression(env: Mapping[str, str], protocol: OtlpProtocol) -> Compression:
    found = _signal(env, "COMPRESSION")
    if found is None:
        return "none"
    name, value = found
    value = value.lower()
    allowed: tuple[Compression, ...] = (
        ("none", "gzip") if protocol == "grpc" else ("none", "gzip", "deflate")
    )
    for choice in allowed:
        if value == choice:
            return choice
    raise TraceConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def _resource(settings: SidecarSettings) -> dict[str, str]:
    env = settings.environ
    resource = {"service.name": DEFAULT_SERVICE_NAME}
    resource.update(_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    service_name = _get(env, "OTEL_SERVICE_NAME")
    if service_name:
        resource["service.name"] = service_name
    if settings.artifacts is not None:
        resource.update(settings.artifacts.observability.attributes)
        resource[ENVIRONMENT_ATTRIBUTE] = settings.artifacts.environment
    return resource


def _resource_attributes(raw: str) -> dict[str, str]:
    """``key=value`` pairs, comma-separated, values percent-encoded (the W3C Baggage format)."""
    attributes: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TraceConfigError(
                f"OTEL_RESOURCE_ATTRIBUTES: {item.strip()!r} is not key=value "
                "(pairs are comma-separated, values percent-encoded)"
            )
        attributes[key.strip()] = unquote(value.strip())
    return attributes
