"""What a dbt node's final status means: one reading, shared by the adapter, lineage and traces.

dbt reports ``success``, ``pass``, ``warn``, ``fail``, ``error``, ``runtime error``, ``skipped``
and, across versions and adapters, statuses this list does not know. :func:`node_outcome` maps
each to one of four outcomes; for a status it does not know, dbt's error text decides, so a
failure is never reported as a success (in a span or in a lineage run alike).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["NodeOutcome", "failed", "node_outcome"]

#: ``success``: it ran and did what it should (a test passed, or only warned);
#: ``failure``: a test found failing rows; ``error``: the node could not run to the end;
#: ``skipped``: dbt did not run it because something upstream failed.
NodeOutcome = Literal["success", "failure", "error", "skipped"]

_KNOWN: Final[dict[str, NodeOutcome]] = {
    "success": "success",
    "pass": "success",
    "warn": "success",
    "fail": "failure",
    "error": "error",
    "runtime error": "error",
    "skipped": "skipped",
}


def node_outcome(status: str, error: str | None = None) -> NodeOutcome:
    """The outcome of a node dbt finished with ``status`` (and ``error``, its error text)."""
    known = _KNOWN.get(status.strip().lower())
    if known is not None:
        return known
    return "error" if error else "success"


def failed(outcome: NodeOutcome) -> bool:
    """Whether the node failed (a failing test or an error): its error text is worth keeping."""
    return outcome in ("failure", "error")
