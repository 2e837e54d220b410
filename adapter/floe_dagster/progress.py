"""What a Dagster run is doing, seen from its events while it runs.

:class:`RunWatcher` turns the events a user cares about (an asset materialized, a check failed,
dbt reported an error, the step failed) into lines for the terminal, and keeps the counts for the
summary. ``floe run`` executes the run in this process, so the watcher listens to the instance's
own event stream: the step thread only appends each event to a queue, and a background thread
formats the lines. Reading the events back from the event log instead (the fallback, for an
instance without listeners) re-reads and decodes every record from storage while the step writes
to it: at 1,000 models that was the largest cost floe added to the run's process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import DagsterInstance, EventLogEntry

__all__ = ["RunTally", "RunWatcher"]


@dataclass
class RunTally:
    """What happened in one run, as seen in its event log."""

    planned: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Events the adapter could hand to neither the sidecar nor the spool (disk full, read-only).
    events_dropped: int = 0
    events_drop_reason: str | None = None

    @property
    def not_materialized(self) -> list[str]:
        done = set(self.materialized)
        return [key for key in self.planned if key not in done]


class RunWatcher:
    """Follows one run's events in a thread; ``say`` gets one line per noteworthy event."""

    def __init__(
        self,
        instance: DagsterInstance,
        run_id: str,
        say: Callable[[str], None],
        *,
        interval_s: float = 0.25,
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.say = say
        self.interval_s = interval_s
        self.tally = RunTally()
        self._cursor: str | None = None
        # Events handed over by the instance's listener (None: read the event log instead).
        self._heard: deque[EventLogEntry] | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="floe-run-progress", daemon=True)

    def start(self) -> None:
        """Follow the run; call before it starts, so no event (the planned ones first) is missed."""
        self._started = time.monotonic()
        listen = getattr(self.instance, "add_event_listener", None)
        if callable(listen):
            heard: deque[EventLogEntry] = deque()
            self._heard = heard

            def hear(entry: EventLogEntry) -> None:
                # Runs on the step's thread, inside Dagster's event handling: O(1), never raises.
                if not self._stop.is_set():
                    heard.append(entry)

            listen(self.run_id, hear)
        self._thread.start()

    def stop(self) -> RunTally:
        """Stop following and read what is left, so the tally is complete."""
        self._stop.set()
        self._thread.join()
        self._poll()
        return self.tally

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._poll()
            except Exception as exc:  # the display must never break the run
                self.say(f"  (progress display stopped: {type(exc).__name__}: {exc})")
                return

    def _poll(self) -> None:
        if self._heard is not None:
            while self._heard:
                self._handle(self._heard.popleft())
            return
        while True:
            connection = self.instance.get_records_for_run(
                self.run_id, cursor=self._cursor, limit=500
            )
            for record in connection.records:
                self._handle(record.event_log_entry)
            self._cursor = connection.cursor
            if not connection.has_more:
                return

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._started:6.1f}s"

    def _handle(self, entry: EventLogEntry) -> None:
        from dagster import DagsterEventType

        event = entry.dagster_event
        if event is None:
            level = (
                entry.level if isinstance(entry.level, int) else logging.getLevelName(entry.level)
            )
            if isinstance(level, int) and level >= logging.ERROR and entry.user_message:
                lines = _lines(_TRACE_SUFFIX.sub("", entry.user_message))[:_ERROR_LINES]
                self.tally.errors.append(" ".join(lines))
                self.say(f"{self._elapsed()}  ERROR  {lines[0] if lines else ''}")
                for line in lines[1:]:
                    self.say(f"{'':>7}         {line}")
            return
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            key = event.asset_key
            if key is not None:
                self.tally.planned.append(key.to_user_string())
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            key = event.asset_key
            if key is not None:
                name = key.to_user_string()
                self.tally.materialized.append(name)
                self.say(f"{self._elapsed()}  ok     {name}{_duration(event)}")
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            passed = bool(getattr(evaluation, "passed", False))
            name = _check_name(evaluation)
            if passed:
                self.tally.checks_passed += 1
            else:
                self.tally.checks_failed.append(name)
                self.say(f"{self._elapsed()}  FAIL   check {name}")
        elif kind == DagsterEventType.STEP_START:
            self.say(f"{self._elapsed()}  dbt started ({len(self.tally.planned)} assets planned)")
        elif kind == DagsterEventType.STEP_FAILURE:
            error = getattr(event.event_specific_data, "error", None)
            cls_name = getattr(error, "cls_name", None) or "error"
            self.say(f"{self._elapsed()}  FAIL   step {event.step_key} failed ({cls_name})")


_ERROR_LINES = 3  # dbt's error: what failed, then why
_TRACE_SUFFIX = re.compile(r"\s*\[trace_id=[0-9a-f]+ span_id=[0-9a-f]+\]\s*$")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def _check_name(evaluation: Any) -> str:
    key = getattr(evaluation, "asset_key", None)
    check = getattr(evaluation, "check_name", "?")
    return f"{key.to_user_string()}:{check}" if key is not None else str(check)


def _duration(event: Any) -> str:
    """dbt's own execution time of the node, when dagster-dbt recorded it."""
    materialization = getattr(event.event_specific_data, "materialization", None)
    metadata = getattr(materialization, "metadata", None) or {}
    value = metadata.get("Execution Duration")
    seconds = getattr(value, "value", value)
    return f"  ({seconds:.1f}s)" if isinstance(seconds, int | float) else ""
