"""floe-sidecar: floe events in (the Unix socket, the spool), OpenLineage and OpenTelemetry (traces,
logs, metrics) out.

Laid out as the OpenTelemetry Collector and Vector are: ``sources/`` (the socket intake, the
spool watcher), ``engine/`` (the durable pipeline: reader, cursors, retries, retention, the
dead-letter file), ``sinks/`` (console, file, openlineage, otel; each split into config,
translate and deliver). It imports neither dagster nor dbt.

The public surface, for whoever writes a sink of their own (``--sink python:MODULE:FACTORY``,
where ``FACTORY(settings: SidecarSettings) -> Sink | None``), is what this module exports;
everything else is internal and may change between releases:

- :class:`Sink` (the protocol: ``name``, ``max_batch``, a pure ``translate``, a blocking
  ``deliver``, ``close``) and :class:`Rejection` (an item the endpoint refused for good);
- :class:`SidecarSettings`, what a factory is given;
- :class:`DeliveryError`, raised by ``deliver`` when the batch should be retried (any exception
  retries it; this one says so), and :class:`SinkConfigError`, raised by a factory;
- the event contract (:data:`Event` and its types, in :mod:`floe_core.events`);
- :class:`ConsoleSink` and :class:`FileSink`, the built-in raw-event sinks.
"""

from floe_core.errors import DeliveryError, SinkConfigError
from floe_core.events import (
    Event,
    InvocationFinished,
    InvocationStarted,
    LogLine,
    NodeFinished,
    NodeStarted,
    RunFinished,
)
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection, Sink
from floe_sidecar.sinks.console import ConsoleSink
from floe_sidecar.sinks.file import FileSink

__all__ = [
    "ConsoleSink",
    "DeliveryError",
    "Event",
    "FileSink",
    "InvocationFinished",
    "InvocationStarted",
    "LogLine",
    "NodeFinished",
    "NodeStarted",
    "Rejection",
    "RunFinished",
    "SidecarSettings",
    "Sink",
    "SinkConfigError",
]
