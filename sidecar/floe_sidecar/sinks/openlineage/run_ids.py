"""OpenLineage run ids, derived from what the events name, so a replay yields the same runIds.

Each must be computable from any single event of that run (events are translated one by one):

* the Dagster run's lineage run **is** the Dagster run id (a UUID), the id users already hold, and
  the bits of the trace id;
* a dbt invocation's run is dbt's ``invocation_id`` (also a UUID), the id in dbt's own logs and
  ``run_results.json``;
* a node's run is a UUIDv7 whose time is the node's start (dbt's ``node_started_at``, which the
  start, the finish and an abort all carry) and whose remaining bits hash the run, invocation and
  node ids. A node dbt never started (skipped) has only an end: its time is the end.

An id that is not a UUID (a custom Dagster run id) is hashed into a version-5 style UUID instead.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

__all__ = ["invocation_run_id", "node_run_id", "root_run_id"]

_NAMESPACE = uuid.UUID("5a0a3a55-6f4c-5b1e-9f0d-6c6f65666c6f")


def _as_uuid(value: str, kind: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, f"{kind}\x1f{value}"))


def root_run_id(dagster_run_id: str) -> str:
    return _as_uuid(dagster_run_id, "run")


def invocation_run_id(dagster_run_id: str, invocation_id: str) -> str:
    try:
        return str(uuid.UUID(invocation_id))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, f"invocation\x1f{dagster_run_id}\x1f{invocation_id}"))


def node_run_id(dagster_run_id: str, invocation_id: str, unique_id: str, started: datetime) -> str:
    """UUIDv7 (RFC 9562 layout): 48 bits of Unix milliseconds, then 74 bits of a hash."""
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    millis = int(started.timestamp() * 1000) & 0xFFFF_FFFF_FFFF
    digest = hashlib.blake2b(
        f"node\x1f{dagster_run_id}\x1f{invocation_id}\x1f{unique_id}".encode(), digest_size=10
    ).digest()
    rand = int.from_bytes(digest, "big")  # 80 bits; 6 are overwritten by version and variant
    value = (millis << 80) | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
