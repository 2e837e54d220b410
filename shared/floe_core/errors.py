"""Every error floe raises on purpose, in one hierarchy (as httpx's ``_exceptions.py``).

::

    FloeError                   the base: anything floe raises on purpose
    ├── ConfigError             something configured cannot be used; the message names the
    │   │                       file, field or variable and the fix
    │   ├── FloeConfigError     floe.yaml (file, line, field, expected, found, fix)
    │   ├── ArtifactsError      compiled_artifacts.json is missing, unreadable or stale
    │   ├── ManifestError       the dbt manifest is missing or unreadable, or `dbt parse` failed
    │   │   └── ManifestNotFoundError
    │   ├── SinkConfigError     a sidecar sink cannot be built (names the sink)
    │   ├── LineageConfigError  the OpenLineage configuration (openlineage.yml, OPENLINEAGE_*)
    │   └── TraceConfigError    the OpenTelemetry configuration of traces, logs or metrics
    │                           (OTEL_*, observability.otlp_endpoint)
    ├── UsageError              a command cannot do what it was asked
    │   ├── SelectionError      --select / --exclude matched nothing
    │   ├── NothingToShow       floe show: no file, or no run in it
    │   ├── SpoolBusyError      another floe-sidecar serves this spool
    │   └── SocketInStateError  the socket path is taken
    │   (floe_cli.errors.CliError: the floe command's own)
    ├── EventError              a line that is not a valid event of a known version
    │   └── UnsupportedEvent    a well-formed event from a newer writer
    └── DeliveryError           a sink did not get a batch through; the engine retries it
        │                       (or, when ``permanent``, dead-letters the items at fault)
        ├── ThrottledError      the endpoint asked to wait (HTTP 429/503 with Retry-After)
        └── OtlpExportError     the OTLP endpoint did not accept a batch of logs or metrics
            └── TraceExportError    ... of spans

The command-line tools catch :class:`FloeError` only: its message is printed as one line (exit
status 2); anything else is a bug and shows its traceback. Each error is raised (and exported)
where it happens: ``floe_core.config.FloeConfigError``, ``floe_sidecar.DeliveryError``, ...
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ArtifactsError",
    "ConfigError",
    "DeliveryError",
    "EventError",
    "FloeConfigError",
    "FloeError",
    "LineageConfigError",
    "ManifestError",
    "ManifestNotFoundError",
    "NothingToShow",
    "OtlpExportError",
    "SelectionError",
    "SinkConfigError",
    "SocketInStateError",
    "SpoolBusyError",
    "ThrottledError",
    "TraceConfigError",
    "TraceExportError",
    "UnsupportedEvent",
    "UsageError",
]


class FloeError(Exception):
    """The base of every error floe raises on purpose; its message is meant for a person."""


# --- configuration --------------------------------------------------------------------------


class ConfigError(FloeError):
    """Something configured cannot be used; the message names where it is and the fix."""


class FloeConfigError(ConfigError):
    """A floe.yaml problem, with everything needed to fix it in the message."""

    def __init__(
        self,
        file: Path | str,
        field: str,
        problem: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        self.expected = expected
        self.found = found
        self.fix = fix
        self.line = line
        where = self.file if line is None else f"{self.file}:{line}"
        parts = [f"{where}: {field or '(document)'}: {problem}"]
        if expected is not None:
            parts.append(f"  expected: {expected}")
        if found is not None:
            parts.append(f"  found:    {found}")
        if fix is not None:
            parts.append(f"  fix:      {fix}")
        super().__init__("\n".join(parts))


class ArtifactsError(ConfigError):
    """compiled_artifacts.json is missing, unreadable or from another floe version: the message
    says what to run."""


class ManifestError(ConfigError):
    """The dbt manifest cannot be read, or ``dbt parse`` failed (its output is in the message)."""


class ManifestNotFoundError(ManifestError):
    """The dbt manifest does not exist yet: the message says which command writes it."""


class SinkConfigError(ConfigError):
    """A sidecar sink could not be configured; the message names the sink."""


class LineageConfigError(ConfigError):
    """The OpenLineage configuration cannot be used; the message names the file or variable."""


class TraceConfigError(ConfigError):
    """An OpenTelemetry setting (of traces, logs or metrics) is unusable; the message names the
    variable or field and the fix."""


# --- usage ----------------------------------------------------------------------------------


class UsageError(FloeError):
    """A command cannot do what it was asked; the message says why."""


class SelectionError(UsageError):
    """``--select`` / ``--exclude`` matched no dbt model, seed or snapshot."""


class NothingToShow(UsageError):
    """``floe show``: no file, or no run in it (the message says which and why)."""


class SpoolBusyError(UsageError):
    """Another floe-sidecar already serves this spool."""


class SocketInStateError(UsageError):
    """The socket path is taken (another sidecar listens there, or it is not a socket)."""


# --- data and delivery ----------------------------------------------------------------------


class EventError(FloeError):
    """A line that is not a valid event of a schema version this reader knows."""


class UnsupportedEvent(EventError):
    """A well-formed event from a newer writer (future version or unknown type)."""


class DeliveryError(FloeError):
    """A sink did not get a batch through (backend down, slow or refusing everyone); the engine
    keeps its cursor and retries the batch with backoff.

    ``retry_after``: seconds the endpoint asked the client to wait before trying again (an HTTP
    ``Retry-After``); the engine waits at least that long, within its throttle limit.

    ``permanent``: no retry can get this batch through, because of what is in it (an item the
    exporter cannot encode), not because of the endpoint; the engine then finds the items at
    fault, dead-letters them with this message, and delivers the rest (as the OpenTelemetry
    Collector's permanent errors).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class ThrottledError(DeliveryError):
    """The endpoint answered 429 or 503 and said when to come back (``retry_after``)."""


class OtlpExportError(DeliveryError):
    """The OTLP endpoint did not accept a batch (of log records or data points)."""


class TraceExportError(OtlpExportError):
    """The OTLP endpoint did not accept a batch of spans."""
