"""Identifiers that the adapter, the sidecar and any replay derive alike.

The trace id *is* the Dagster run id (a UUID, 128 bits), so a user holding a run id, a log line or
a lineage event finds the trace. Span ids and event ids are hashes of what they name, never random,
so the same spool replayed twice yields the same spans and the same lineage run ids.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = [
    "event_id",
    "invocation_span_id",
    "node_span_id",
    "run_span_id",
    "span_id_hex",
    "trace_id",
    "trace_id_hex",
]


def trace_id(run_id: str) -> int:
    """128-bit trace id of a Dagster run: the run id's own UUID bits."""
    try:
        value = uuid.UUID(run_id).int
    except ValueError:
        # Not a UUID (a custom run id): hash it into 128 bits instead.
        value = int.from_bytes(_digest("trace", run_id)[:16], "big")
    return value or 1  # all-zero ids are invalid in OTel


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()


def _span_id(*parts: str) -> int:
    return int.from_bytes(_digest(*parts)[:8], "big") or 1


def run_span_id(run_id: str) -> int:
    """The root span of a Dagster run."""
    return _span_id("run", run_id)


def invocation_span_id(run_id: str, invocation_id: str) -> int:
    """One dbt invocation (``dbt build`` in a Dagster step), child of the run span."""
    return _span_id("invocation", run_id, invocation_id)


def node_span_id(run_id: str, invocation_id: str, unique_id: str) -> int:
    """One executed dbt node, child of its invocation span."""
    return _span_id("node", run_id, invocation_id, unique_id)


def trace_id_hex(run_id: str) -> str:
    return f"{trace_id(run_id):032x}"


def span_id_hex(span_id: int) -> str:
    return f"{span_id:016x}"


def event_id(kind: str, run_id: str, *parts: str) -> str:
    """A stable UUID for one logical event: the same event re-sent keeps its id."""
    return str(uuid.UUID(bytes=_digest("event", kind, run_id, *parts)))
