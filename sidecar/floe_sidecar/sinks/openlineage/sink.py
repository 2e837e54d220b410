"""The OpenLineage sink: floe events in, RunEvents out through the configured transport.

``translate`` is the pure translation; ``deliver`` encodes a batch once and hands it to the
delivery chosen by the configuration (see :mod:`.config` and :mod:`.delivery`). It raises when
the batch did not get through, so the engine keeps its cursor and retries from the spool, and
returns the events a backend refused for good, with its answer, for the dead-letter file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from floe_core.events import Event
from floe_core.layout import LINEAGE_SINK
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.openlineage.config import LineageConfig, resolve_lineage_config
from floe_sidecar.sinks.openlineage.delivery import Delivery, build_delivery
from floe_sidecar.sinks.openlineage.translate import RunEvent, translate_event

__all__ = ["OpenLineageSink", "build_openlineage_sink"]

log = logging.getLogger(__name__)


class OpenLineageSink:
    name = LINEAGE_SINK

    def __init__(self, delivery: Delivery, namespace: str, *, max_batch: int = 200) -> None:
        self.delivery = delivery
        self.namespace = namespace
        self.max_batch = max_batch
        self._encode = msgspec.json.Encoder().encode

    @classmethod
    def from_config(cls, config: LineageConfig, *, max_batch: int = 200) -> OpenLineageSink:
        return cls(build_delivery(config.transport), config.namespace, max_batch=max_batch)

    def translate(self, event: Event) -> Sequence[RunEvent]:
        return translate_event(event, self.namespace)

    def deliver(self, batch: Sequence[RunEvent]) -> Sequence[Rejection]:
        return self.delivery.deliver([self._encode(event) for event in batch])

    def close(self) -> None:
        self.delivery.close()


def build_openlineage_sink(settings: SidecarSettings) -> OpenLineageSink | None:
    """The lineage sink the settings ask for, or None when lineage is off."""
    config = resolve_lineage_config(settings)
    if config is None:
        log.info("lineage off")
        return None
    sink = OpenLineageSink.from_config(config)
    log.info(
        "lineage: %s transport from %s, job namespace %r",
        config.transport.get("type"),
        config.source,
        config.namespace,
    )
    return sink
