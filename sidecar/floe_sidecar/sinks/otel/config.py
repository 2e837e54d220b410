"""Where each OpenTelemetry signal goes (traces, logs, metrics), resolved once from the compiled
artifacts and the standard OTel variables.

Switches, per signal, in order: ``OTEL_SDK_DISABLED=true`` or ``OTEL_<SIGNAL>_EXPORTER=none``
(``OTEL_TRACES_EXPORTER``, ``OTEL_LOGS_EXPORTER``, ``OTEL_METRICS_EXPORTER``) turn it off;
otherwise ``observability.<signal>`` from the compiled artifacts decides (floe.yaml's unset
``logs`` and ``metrics`` follow ``traces``). Without compiled artifacts, a signal is on only when
an OTLP endpoint variable is set.

Destination: the first of ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (used as is),
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``observability.otlp_endpoint`` (base URLs: ``/v1/traces``,
``/v1/logs`` or ``/v1/metrics`` is appended for HTTP). The environment wins over floe.yaml, so an
operator can redirect telemetry without recompiling. With a signal on and no endpoint at all, it
goes to an OTLP/JSON lines file under the local output directory (``traces/otlp-traces.jsonl``,
``logs/otlp-logs.jsonl``, ``metrics/otlp-metrics.jsonl``): nothing leaves the machine.

Protocol: ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (only the
SDK's auto-configuration reads these, so floe does); when unset, port 4317 means ``grpc`` and
anything else ``http/protobuf`` (the specification's default). Timeouts
(``OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT``) are milliseconds, as the specification says (the
Python SDK reads them as seconds); the default is short, because the sidecar retries with its
own backoff and a dead endpoint should fail fast. Headers, certificates and compression follow
the same signal-then-general rule.

Metrics are cumulative (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` may say
``cumulative``; ``delta`` is refused: see ``metrics.py`` for why), and the sidecar's own health is
sampled every ``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (default 60000).

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
from urllib.parse import unquote, urlsplit

from opentelemetry.util.re import parse_env_headers

from floe_core.errors import TraceConfigError
from floe_core.layout import LOGS_FILE, METRICS_FILE, TRACES_FILE
from floe_core.redaction import redact_url
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.otel.translate import ENVIRONMENT_ATTRIBUTE

__all__ = [
    "DEFAULT_HEALTH_INTERVAL_S",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_SERVICE_NAME",
    "DEFAULT_TIMEOUT_S",
    "FileExport",
    "OtlpExport",
    "OtlpProtocol",
    "Signal",
    "SignalConfig",
    "TraceConfig",
    "TraceConfigError",
    "resolve_signal_config",
    "resolve_trace_config",
]

OtlpProtocol = Literal["grpc", "http/protobuf"]
Compression = Literal["none", "gzip", "deflate"]
Signal = Literal["traces", "logs", "metrics"]

DEFAULT_SERVICE_NAME: Final = "floe"
DEFAULT_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_BATCH: Final = 512
DEFAULT_HEALTH_INTERVAL_S: Final = 60.0
_GRPC_PORT: Final = 4317
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_LOCAL_FILES: Final = {"traces": TRACES_FILE, "logs": LOGS_FILE, "metrics": METRICS_FILE}
# The variable each signal's batch size is read from (the SDK processors' usual knobs), and what
# a batch holds: spans, log records, data points.
_BATCH_VARIABLES: Final = {
    "traces": ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "spans"),
    "logs": ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "log records"),
    "metrics": (None, "data points"),
}
_DEFAULT_BATCH: Final = {"traces": DEFAULT_MAX_BATCH, "logs": DEFAULT_MAX_BATCH, "metrics": 2048}


@dataclass(frozen=True)
class OtlpExport:
    """Export over OTLP to a collector or backend."""

    protocol: OtlpProtocol
    # grpc: the URL or host:port as configured; http/protobuf: the full URL of the signal's path.
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
        """The endpoint without its credentials (no user info, secret query values redacted),
        for logs, errors and the status file."""
        return redact_url(self.endpoint, drop_userinfo=True)


@dataclass(frozen=True)
class FileExport:
    """The embedded default: OTLP/JSON lines, one export request (ExportTraceServiceRequest,
    ExportLogsServiceRequest, ExportMetricsServiceRequest) per line."""

    path: Path


@dataclass(frozen=True)
class SignalConfig:
    export: OtlpExport | FileExport
    # Resource attributes every span, log record or metric starts from (service.name always).
    resource: Mapping[str, str]
    # Most items per export request (OTEL_BSP_ / OTEL_BLRP_MAX_EXPORT_BATCH_SIZE).
    max_batch: int = DEFAULT_MAX_BATCH
    signal: Signal = "traces"
    # Metrics: how often the sidecar's own health is sampled (OTEL_METRIC_EXPORT_INTERVAL).
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S


#: The traces' configuration (the name the trace sink has always used).
TraceConfig = SignalConfig


def resolve_trace_config(settings: SidecarSettings) -> SignalConfig | None:
    """The trace configuration, or ``None`` when traces are switched off."""
    return resolve_signal_config(settings, "traces")


def resolve_signal_config(settings: SidecarSettings, signal: Signal) -> SignalConfig | None:
    """One signal's configuration, or ``None`` when that signal is switched off."""
    env = settings.environ
    if _flag(env, "OTEL_SDK_DISABLED"):
        return None
    switch = f"OTEL_{signal.upper()}_EXPORTER"
    exporters = {item.strip().lower() for item in env.get(switch, "").split(",")} - {""}
    if exporters == {"none"}:
        return None
    unsupported = exporters - {"otlp"}
    if unsupported:
        raise TraceConfigError(
            f"{switch}={env[switch]!r}: floe-sidecar exports {signal} over OTLP only; "
            "use 'otlp' or 'none'"
        )
    observability = settings.artifacts.observability if settings.artifacts else None
    signal_endpoint = _get(env, f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    base_endpoint = _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if observability is not None:
        if not getattr(observability, signal):
            return None
        base_endpoint = base_endpoint or observability.otlp_endpoint
    elif not (signal_endpoint or base_endpoint):
        return None
    if signal == "metrics":
        _check_temporality(env)
    resource = _resource(settings)
    max_batch = _max_batch(env, signal)
    interval = _health_interval(env) if signal == "metrics" else DEFAULT_HEALTH_INTERVAL_S
    export: OtlpExport | FileExport
    if not (signal_endpoint or base_endpoint):
        export = FileExport(path=settings.local_output_dir / _LOCAL_FILES[signal])
    else:
        export = _otlp(env, signal, signal_endpoint, base_endpoint)
    return SignalConfig(
        export=export,
        resource=resource,
        max_batch=max_batch,
        signal=signal,
        health_interval_s=interval,
    )


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _signal(env: Mapping[str, str], signal: Signal, suffix: str) -> tuple[str, str] | None:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_<suffix>`` or else ``OTEL_EXPORTER_OTLP_<suffix>``."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        value = _get(env, name)
        if value is not None:
            return name, value
    return None


def _check_temporality(env: Mapping[str, str]) -> None:
    name = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    value = (_get(env, name) or "cumulative").lower()
    if value != "cumulative":
        raise TraceConfigError(
            f"{name}={env[name]!r}: floe-sidecar exports cumulative metrics only (a batch "
            "delivered again after a restart must not count twice, which deltas would); use "
            "'cumulative', or convert in an OpenTelemetry Collector (cumulativetodelta processor)"
        )


def _health_interval(env: Mapping[str, str]) -> float:
    name = "OTEL_METRIC_EXPORT_INTERVAL"
    value = _get(env, name)
    if value is None:
        return DEFAULT_HEALTH_INTERVAL_S
    try:
        millis = float(value)
    except ValueError:
        raise TraceConfigError(f"{name}={value!r}: expected milliseconds, e.g. 60000") from None
    if millis <= 0:
        raise TraceConfigError(f"{name}={value!r}: the interval must be positive (milliseconds)")
    return millis / 1000


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _otlp(
    env: Mapping[str, str], signal: Signal, signal_endpoint: str | None, base: str | None
) -> OtlpExport:
    configured = signal_endpoint or base
    assert configured is not None
    protocol = _protocol(env, signal, configured)
    if protocol == "http/protobuf":
        endpoint = signal_endpoint or _signal_url(configured, signal)
        if urlsplit(endpoint).scheme not in {"http", "https"}:
            raise TraceConfigError(
                f"OTLP endpoint {endpoint!r}: OTLP over HTTP needs an http:// or https:// URL"
            )
        insecure = urlsplit(endpoint).scheme == "http"
    else:
        endpoint = configured
        insecure = _grpc_insecure(env, signal, endpoint)
    headers: dict[str, str] = {}
    found_headers = _signal(env, signal, "HEADERS")
    if found_headers is not None:
        headers = dict(parse_env_headers(found_headers[1], liberal=True))
    return OtlpExport(
        protocol=protocol,
        endpoint=endpoint,
        insecure=insecure,
        headers=headers,
        certificate_file=_file(env, signal, "CERTIFICATE"),
        client_key_file=_file(env, signal, "CLIENT_KEY"),
        client_certificate_file=_file(env, signal, "CLIENT_CERTIFICATE"),
        timeout_s=_timeout(env, signal),
        compression=_compression(env, signal, protocol),
    )


def _protocol(env: Mapping[str, str], signal: Signal, endpoint: str) -> OtlpProtocol:
    found = _signal(env, signal, "PROTOCOL")
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


def _signal_url(base: str, signal: Signal) -> str:
    path = f"/v1/{signal}"
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


def _grpc_insecure(env: Mapping[str, str], signal: Signal, endpoint: str) -> bool:
    scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
    if scheme == "https":
        return False
    if scheme == "http":
        return True
    # No scheme: OTEL_EXPORTER_OTLP[_<SIGNAL>]_INSECURE decides, TLS by default.
    found = _signal(env, signal, "INSECURE")
    return found is not None and found[1].lower() in _TRUE


def _file(env: Mapping[str, str], signal: Signal, suffix: str) -> str | None:
    found = _signal(env, signal, suffix)
    if found is None:
        return None
    name, value = found
    if not Path(value).is_file():
        raise TraceConfigError(f"{name}={value}: no such file")
    return value


def _timeout(env: Mapping[str, str], signal: Signal) -> float:
    found = _signal(env, signal, "TIMEOUT")
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


def _max_batch(env: Mapping[str, str], signal: Signal) -> int:
    name, items = _BATCH_VARIABLES[signal]
    value = _get(env, name) if name else None
    if name is None or value is None:
        return _DEFAULT_BATCH[signal]
    if not value.isdigit() or int(value) < 1:
        raise TraceConfigError(f"{name}={value!r}: expected a positive whole number of {items}")
    return int(value)


def _compression(env: Mapping[str, str], signal: Signal, protocol: OtlpProtocol) -> Compression:
    found = _signal(env, signal, "COMPRESSION")
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
