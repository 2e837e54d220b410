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

from floe_core.events import Column, Node
from floe_dagster.columns import CapturedColumns
from floe_dbt.column_note import ColumnNote, decode

__all__ = ["ColumnCaptureError", "NotedColumns"]


class ColumnCaptureError(RuntimeError):
    """The dbt process could not describe a node's relation (its note says why)."""


class NotedColumns:
    """The column notes seen so far in one dbt invocation's stream, by node."""

    def __init__(self) -> None:
        self._notes: dict[str, ColumnNote] = {}
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
        return CapturedColumns(
            output=tuple(Column(name=name, data_type=kind) for name, kind in note.columns)
        )
