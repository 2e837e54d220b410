"""What the three OTel sinks share when they deliver: the instrumentation scope, SDK resources
by attribute set, one blocking export that succeeds or raises, and the reason an export failed.

No SDK processor or reader is used (``BatchSpanProcessor``, ``BatchLogRecordProcessor``,
``PeriodicExportingMetricReader``): each drops data when its queue is full and swallows export
failures. Each sink calls its exporter itself, on its worker thread, and raises unless the
endpoint took the batch, so the engine keeps the cursor and retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from floe_core.errors import DeliveryError
from floe_sidecar.sinks.otel.config import FileExport, SignalConfig
from floe_sidecar.sinks.otel.exporters import Exporter, Throttle

__all__ = ["SCOPE", "ResourceCache", "destination", "export_or_raise", "is_encoding_error"]

try:
    _FLOE_VERSION: str | None = version("floe")
except PackageNotFoundError:
    _FLOE_VERSION = None
#: The instrumentation scope of everything floe exports. Its name is written into every span,
#: log record and metric, so it stays as it was first published, wherever the code lives.
SCOPE: Final = InstrumentationScope("floe_sidecar.otel", _FLOE_VERSION)


class ResourceCache:
    """SDK Resources by attribute set: items sharing one are grouped under one resource."""

    _LIMIT = 256

    def __init__(self) -> None:
        self._by_items: dict[tuple[tuple[str, str], ...], Resource] = {}

    def get(self, attributes: Mapping[str, str]) -> Resource:
        key = tuple(sorted(attributes.items()))
        resource = self._by_items.get(key)
        if resource is None:
            if len(self._by_items) >= self._LIMIT:
                self._by_items.clear()
            # The plain constructor: no detectors, no environment, exactly these attributes.
            resource = self._by_items[key] = Resource(dict(key))
        return resource


class _LastExportError(logging.Handler):
    """Keeps what an exporter last complained about on this thread, so a retry says why.

    The final error alone can be vague ("max retries"), so the last warning before it (the
    transient error with its status) is kept too.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        slot = "error" if record.levelno >= logging.ERROR else "warning"
        setattr(self._local, slot, record.getMessage())

    def take(self) -> str | None:
        error: str | None = getattr(self._local, "error", None)
        warning: str | None = getattr(self._local, "warning", None)
        self._local.error = self._local.warning = None
        if error and warning:
            return f"{error} (last attempt: {warning})"
        return error or warning


_last_error = _LastExportError()
for _name in ("opentelemetry.exporter", "floe_sidecar.sinks.otel.exporters"):
    logging.getLogger(_name).addHandler(_last_error)


def destination(config: SignalConfig) -> str:
    """Where a signal goes, fit for logs and errors (no password in a URL)."""
    export = config.export
    return str(export.path) if isinstance(export, FileExport) else export.display_endpoint


#: How the OpenTelemetry SDK exporters begin the message they log when a batch cannot be encoded
#: ("Failed to encode span batch: Value out of range: ...").
ENCODE_FAILURE_PREFIX = "Failed to encode"


def is_encoding_error(exc: BaseException) -> bool:
    """The exporter could not encode the batch (a timestamp past 2554 overflows OTLP's uint64
    nanoseconds: ``ValueError: Value out of range``): the data is at fault, not the endpoint, so
    retrying the same items can never succeed."""
    return isinstance(exc, ValueError | TypeError | OverflowError) and not isinstance(exc, OSError)


def export_or_raise(
    exporter: Exporter,
    batch: Any,
    *,
    lock: threading.Lock,
    throttle: Throttle | None,
    describe: str,
    error: Callable[..., DeliveryError],
) -> None:
    """Export ``batch`` with one blocking call; raise ``error`` unless it succeeded.

    ``describe`` names the batch (``"12 log records to http://..."``). When the endpoint's last
    answer was a 429 or 503 with ``Retry-After``, the error carries it (``retry_after``).
    """
    with lock:
        _last_error.take()
        if throttle is not None:
            throttle.clear()
        try:
            result = exporter.export(batch)
        except Exception as exc:
            # Some exporter releases (HTTP, 1.35) let a timeout escape instead of reporting
            # FAILURE: the same failure, so the cursor stays and the engine retries.
            _last_error.take()
            if throttle is not None:
                throttle.take()
            raise error(
                f"exporting {describe} failed: {type(exc).__name__}: {exc}",
                permanent=is_encoding_error(exc),
            ) from exc
        reason = _last_error.take()
        last = throttle.take() if throttle is not None else None
    # The SDK exporters' results are enums of their own (SpanExportResult, MetricExportResult,
    # LogExportResult / LogRecordExportResult, by SDK version): SUCCESS by name; a file: True.
    if result is True or getattr(result, "name", None) == "SUCCESS":
        return
    retry_after = last[1] if last is not None else None
    status = f"HTTP {last[0]}; " if last is not None and last[0] >= 400 else ""
    if retry_after is not None:
        status += f"Retry-After {retry_after:g}s; "
    raise error(
        f"exporting {describe} failed: {status}{reason or 'the exporter reported a failure'}",
        retry_after=retry_after,
        # The SDK exporters log an item they cannot encode and report FAILURE: no retry helps.
        permanent=reason is not None and reason.startswith(ENCODE_FAILURE_PREFIX),
    )
