"""The dbt process's column notes -> :class:`CapturedColumns`, for the event builder's capture.

:mod:`floe_dbt.runner` fires a floe-marked dbt ``Note`` with a node's real columns just before
the node's ``NodeFinished`` line (see :mod:`floe_dbt.column_note`). :meth:`NotedColumns.take`
keeps each one (and tells the caller the line is spent: it is no dbt log line to export), and the
builder's ``capture_columns`` (this object, called with the finished node) hands them over once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from floe_core.events import Column, Node, Relation
from floe_dagster.columns import CapturedColumns
from floe_dagster.manifest import ManifestIndex
from floe_dbt.column_note import CapturedRelation, ColumnNote, SourcePlan, decode

__all__ = ["ColumnCaptureError", "NotedColumns", "source_plan"]

# What reads a source directly (through ephemeral models included) and is described itself.
_READERS = frozenset({"model", "snapshot"})


class ColumnCaptureError(RuntimeError):
    """The dbt process could not describe a node's relation (its note says why)."""


class NotedColumns:
    """The column notes seen so far in one dbt invocation's stream, by node."""

    def __init__(self) -> None:
        self._notes: dict[str, ColumnNote] = {}
        self._sources: dict[str, ColumnNote] = {}  # kept: every node that reads one needs it
        self._lock = threading.Lock()
        self.seconds = 0.0  # time the dbt process spent asking, over every note
        self.count = 0

    def take(self, line: Mapping[str, Any]) -> bool:
        """Keep ``line`` if it is a floe column note (True), else leave it (False)."""
        info = line.get("info")
        if not isinstance(info, Mapping) or info.get("name") != "Note":
            return False
        note = decode(info.get("msg"))
        if note is None:
            return False
        with self._lock:
            if note.unique_id.startswith("source."):
                self._sources[note.unique_id] = note
            else:
                self._notes[note.unique_id] = note
            self.seconds += note.seconds
            self.count += 1
        return True

    def __call__(self, node: Node) -> CapturedColumns | None:
        """The finished node's columns as the warehouse reported them; None if never noted."""
        with self._lock:
            note = self._notes.pop(node.unique_id, None)
        if note is None:
            return None
        if note.error is not None:
            raise ColumnCaptureError(f"dbt could not describe {node.unique_id}: {note.error}")
        return CapturedColumns(output=_columns(note), upstream=self._upstream_sources(node))

    def _upstream_sources(self, node: Node) -> dict[Relation, tuple[Column, ...]]:
        """The warehouse's columns of the sources ``node`` reads, where they were described."""
        if len(node.upstream_ids) != len(node.upstream):
            return {}
        found: dict[Relation, tuple[Column, ...]] = {}
        with self._lock:
            for relation, unique_id in zip(node.upstream, node.upstream_ids, strict=True):
                note = self._sources.get(unique_id)
                if note is not None and note.error is None and note.columns:
                    found[relation] = _columns(note)
        return found


def _columns(note: ColumnNote) -> tuple[Column, ...]:
    return tuple(Column(name=name, data_type=kind) for name, kind in note.columns)


def source_plan(index: ManifestIndex) -> SourcePlan:
    """Which sources each model and snapshot reads, for the dbt process to describe them."""
    nodes = index.manifest.get("nodes") or {}
    sources: dict[str, CapturedRelation] = {}
    reads: dict[str, tuple[str, ...]] = {}
    for unique_id, props in nodes.items():
        if not isinstance(props, Mapping) or props.get("resource_type") not in _READERS:
            continue
        read = []
        for upstream in index.upstream_ids(unique_id):
            if not upstream.startswith("source."):
                continue
            relation = index.relation(upstream)
            if relation is None:
                continue
            sources[upstream] = CapturedRelation(
                database=relation.database,
                schema=relation.schema,
                identifier=relation.identifier,
            )
            read.append(upstream)
        if read:
            reads[unique_id] = tuple(read)
    return SourcePlan(sources=sources, reads=reads)
