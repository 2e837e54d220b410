"""OpenLineage from floe events: pure translation (``translate``), naming, facets, and a sink
that delivers RunEvents through the transports openlineage-python users already configure."""

from floe_sidecar.sinks.openlineage.translate import RunEvent, translate_event

__all__ = ["RunEvent", "translate_event"]
