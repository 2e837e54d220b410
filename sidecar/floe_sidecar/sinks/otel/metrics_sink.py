"""The metrics sink: samples in, cumulative totals out, one blocking OTLP export per batch.

Each batch's samples are added to the totals the sink's cursor holds (:class:`Totals`, see
``metrics.py`` for why a batch delivered twice counts once); the touched series are exported as
cumulative data points (start: the series' first event; time: its latest), and only when the
endpoint took them do the new totals become the cursor's, in the same atomic write as its
position (the engine's :class:`~floe_sidecar.sinks.base.StatefulSink` protocol). No
``PeriodicExportingMetricReader``: it keeps totals in memory only, so a restart would count a
re-delivered batch again.

The sidecar's own health (per sink: delivered, pending, dead-lettered, the oldest pending
event's age) is sampled every ``OTEL_METRIC_EXPORT_INTERVAL`` and when the sidecar stops
(:meth:`MetricSink.observe`): gauges of the moment, and counters from the cursors' lifetime
totals (start: when each cursor began). Nothing about them needs the spool: a sample that does
not get through is superseded by the next.

Each sidecar is one ``service.instance.id`` (see :func:`build_metric_sink`): the single writer of
its cumulative series.

=================================  =======  ========  =========================================
name                               kind     unit      value, per ``floe.sink``
=================================  =======  ========  =========================================
``floe.sidecar.delivered``         counter  {item}    items delivered over the cursor's life
``floe.sidecar.dead_lettered``     counter  {item}    items dead-lettered over the cursor's life
``floe.sidecar.pending``           gauge    {event}   complete lines still ahead of the cursor
``floe.sidecar.pending.size``      gauge    By        bytes still ahead of the cursor
``floe.sidecar.pending.age``       gauge    s         age of the oldest pending event (0: none)
``floe.sidecar.deadletter.size``   gauge    {record}  records in the dead-letter file (no sink)
=================================  =======  ========  =========================================
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from floe_core.errors import OtlpExportError
from floe_core.events import Event
from floe_core.layout import METRICS_SINK
from floe_core.status import SidecarStatus
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.otel.config import FileExport, SignalConfig, resolve_signal_config
from floe_sidecar.sinks.otel.delivery import SCOPE, ResourceCache, destination, export_or_raise
from floe_sidecar.sinks.otel.exporters import (
    Exporter,
    JsonLinesFile,
    Throttle,
    grpc_compression,
    grpc_credentials,
    http_compression,
)
from floe_sidecar.sinks.otel.metrics import INSTRUMENTS, MetricTranslator, Sample, Series, Totals

__all__ = ["HEALTH_METRICS", "MetricSink", "build_metric_sink", "metrics_data"]

log = logging.getLogger(__name__)

_CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
#: The sidecar's own metrics: name -> (kind, unit, description).
HEALTH_METRICS: Final[dict[str, tuple[str, str, str]]] = {
    "floe.sidecar.delivered": ("counter", "{item}", "items a sink delivered"),
    "floe.sidecar.dead_lettered": ("counter", "{item}", "items a sink dead-lettered"),
    "floe.sidecar.pending": ("gauge", "{event}", "events still ahead of a sink's cursor"),
    "floe.sidecar.pending.size": ("gauge", "By", "bytes still ahead of a sink's cursor"),
    "floe.sidecar.pending.age": ("gauge", "s", "age of a sink's oldest pending event"),
    "floe.sidecar.deadletter.size": ("gauge", "{record}", "records in the dead-letter file"),
}


def _point(series: Series) -> NumberDataPoint | HistogramDataPoint:
    attributes = dict(series.attributes)
    time_ns = max(series.updated_ns, series.start_ns)
    instrument = INSTRUMENTS[series.metric]
    if instrument.kind == "histogram":
        return HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=series.start_ns,
            time_unix_nano=time_ns,
            count=series.count,
            sum=series.total,
            bucket_counts=list(series.buckets),
            explicit_bounds=list(instrument.bounds),
            min=series.min if series.min is not None else 0.0,
            max=series.max if series.max is not None else 0.0,
        )
    return NumberDataPoint(
        attributes=attributes,
        start_time_unix_nano=series.start_ns,
        time_unix_nano=time_ns,
        value=series.total,
    )


def _metric(name: str, points: list[Any]) -> Metric:
    instrument = INSTRUMENTS[name]
    data: Any
    if instrument.kind == "histogram":
        data = Histogram(data_points=points, aggregation_temporality=_CUMULATIVE)
    else:
        data = Sum(data_points=points, aggregation_temporality=_CUMULATIVE, is_monotonic=True)
    return Metric(name=name, description=instrument.description, unit=instrument.unit, data=data)


def metrics_data(series: Iterable[Series], resources: ResourceCache | None = None) -> MetricsData:
    """Cumulative data points of ``series``, grouped by resource and metric."""
    cache = resources or ResourceCache()
    grouped: dict[tuple[tuple[str, str], ...], dict[str, list[Any]]] = {}
    for item in series:
        grouped.setdefault(item.resource, {}).setdefault(item.metric, []).append(_point(item))
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=cache.get(dict(resource)),
                scope_metrics=[
                    ScopeMetrics(
                        scope=SCOPE,
                        metrics=[_metric(name, points) for name, points in metrics.items()],
                        schema_url="",
                    )
                ],
                schema_url="",
            )
            for resource, metrics in grouped.items()
        ]
    )


class _FileMetricExporter:
    """OTLP/JSON lines, one ExportMetricsServiceRequest per line (the embedded default)."""

    def __init__(self, file: JsonLinesFile) -> None:
        self._file = file

    def export(self, batch: MetricsData) -> bool:
        return self._file.append(encode_metrics(batch))

    def shutdown(self) -> None:
        """Nothing is held open between batches."""


def build_metric_exporter(config: SignalConfig, throttle: Throttle | None = None) -> Exporter:
    """The metric exporter a configuration asks for (cumulative temporality throughout)."""
    export = config.export
    if isinstance(export, FileExport):
        return _FileMetricExporter(JsonLinesFile(export.path))
    if export.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        exporter: Exporter = GrpcMetricExporter(
            endpoint=export.endpoint,
            insecure=export.insecure,
            credentials=grpc_credentials(export),
            headers=dict(export.headers) or None,
            timeout=export.timeout_s,
            compression=grpc_compression(export),
        )
        return exporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(
        endpoint=export.endpoint,
        certificate_file=export.certificate_file,
        client_key_file=export.client_key_file,
        client_certificate_file=export.client_certificate_file,
        headers=dict(export.headers),
        timeout=export.timeout_s,
        compression=http_compression(export),
        session=throttle.session() if throttle is not None else None,
    )


def build_metric_sink(settings: SidecarSettings) -> MetricSink | None:
    """The metrics sink the settings ask for, or ``None`` when metrics are off.

    Its resource gets a ``service.instance.id`` (unless ``OTEL_RESOURCE_ATTRIBUTES`` sets one):
    cumulative series need one writer each, and every sidecar keeps totals of its own (one per
    spool: a run pod's, a node's), so each is an instance, stable across its restarts (the host
    and the spool's path name it). Backends add the instances up.
    """
    config = resolve_signal_config(settings, "metrics")
    if config is None:
        return None
    if "service.instance.id" not in config.resource:
        instance = uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"floe-sidecar://{socket.gethostname()}{settings.spool_dir.resolve()}",
        )
        resource = {**config.resource, "service.instance.id": str(instance)}
        config = dataclasses.replace(config, resource=resource)
    return MetricSink(config)


def _now_ns() -> int:
    return time.time_ns()


class MetricSink:
    """Sink protocol implementation for OpenTelemetry metrics; also a
    :class:`~floe_sidecar.sinks.base.StatefulSink` and a
    :class:`~floe_sidecar.sinks.base.HealthObserver` (see ``sinks/base.py``)."""

    name: str = METRICS_SINK

    def __init__(
        self,
        config: SignalConfig,
        exporter: Exporter | None = None,
        clock: Callable[[], int] = _now_ns,
    ) -> None:
        self.config = config
        self.max_batch = config.max_batch
        self.health_interval = config.health_interval_s
        self._translator = MetricTranslator(config.resource)
        self._throttle = Throttle() if exporter is None else None
        self._exporter = exporter or build_metric_exporter(config, self._throttle)
        self._resources = ResourceCache()
        self._lock = threading.Lock()
        self._clock = clock
        self.destination = destination(config)
        self.totals = Totals()  # as the cursor on disk has them
        self._pending: Totals | None = None  # including the batch just delivered
        self._warned_series = False

    # -- the engine's state protocol --------------------------------------------------------

    def restore(self, state: bytes | None) -> None:
        try:
            self.totals = Totals.decode(state)
        except Exception as exc:  # an unreadable state must not stop the sidecar
            log.warning(
                "metric totals in the cursor are unreadable; counting from zero (a reset)",
                extra={"sink": self.name, "error": f"{type(exc).__name__}: {exc}"},
            )
            self.totals = Totals()
        self._pending = None

    def checkpoint(self) -> bytes | None:
        return (self._pending or self.totals).encode()

    def committed(self) -> None:
        if self._pending is not None:
            self.totals, self._pending = self._pending, None

    # -- the sink protocol --------------------------------------------------------------------

    def translate(self, event: Event) -> Sequence[Sample]:
        return self._translator.translate(event)

    def deliver(self, batch: Sequence[Sample]) -> Sequence[Rejection]:
        """Add the batch to the committed totals and export what it touched; raise unless the
        endpoint took it (the totals then stay as they were)."""
        self._pending = None
        if not batch:
            return ()
        totals, touched = self.totals.add(batch)
        if totals.refused_series and not self._warned_series:
            self._warned_series = True
            log.warning(
                "too many metric series; new ones are not counted",
                extra={"sink": self.name, "refused_samples": totals.refused_series},
            )
        if touched:
            data = metrics_data(touched, self._resources)
            export_or_raise(
                self._exporter,
                data,
                lock=self._lock,
                throttle=self._throttle,
                describe=f"{len(touched)} metric data points to {self.destination}",
                error=OtlpExportError,
            )
        self._pending = totals
        return ()

    def close(self) -> None:
        self._exporter.shutdown()

    # -- the sidecar's health -------------------------------------------------------------------

    def observe(self, status: SidecarStatus) -> None:
        """Export the sidecar's health now; raise if the endpoint did not take it."""
        now = self._clock()
        points: dict[str, list[NumberDataPoint]] = {name: [] for name in HEALTH_METRICS}

        def add(name: str, value: float | int, attributes: dict[str, str], since: int) -> None:
            points[name].append(
                NumberDataPoint(
                    attributes=attributes,
                    start_time_unix_nano=min(since, now),
                    time_unix_nano=now,
                    value=value,
                )
            )

        for sink in status.sinks:
            attributes = {"floe.sink": sink.name}
            # Lifetime totals count from when the cursor began (an old cursor: from now).
            since = int(sink.counting_since * 1e9) if sink.counting_since else now
            add("floe.sidecar.delivered", sink.delivered, attributes, since)
            add("floe.sidecar.dead_lettered", sink.dead_lettered, attributes, since)
            add("floe.sidecar.pending", sink.pending_events, attributes, now)
            add("floe.sidecar.pending.size", sink.pending_bytes, attributes, now)
            add("floe.sidecar.pending.age", sink.oldest_pending_age_s or 0.0, attributes, now)
        add("floe.sidecar.deadletter.size", status.deadletter_records, {}, now)
        metrics = []
        for name, data_points in points.items():
            if not data_points:
                continue
            kind, unit, description = HEALTH_METRICS[name]
            data: Any
            if kind == "counter":
                data = Sum(
                    data_points=data_points, aggregation_temporality=_CUMULATIVE, is_monotonic=True
                )
            else:
                data = Gauge(data_points=data_points)
            metrics.append(Metric(name=name, description=description, unit=unit, data=data))
        payload = MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=self._resources.get(self.config.resource),
                    scope_metrics=[ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")],
                    schema_url="",
                )
            ]
        )
        export_or_raise(
            self._exporter,
            payload,
            lock=self._lock,
            throttle=self._throttle,
            describe=f"the sidecar's health to {self.destination}",
            error=OtlpExportError,
        )
