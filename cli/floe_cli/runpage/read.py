"""Reading a run back from what the sidecar left on disk: the I/O edge of the page.

Three places can hold a run, all in standard or floe's own documented formats:

* ``.floe/lineage/openlineage.ndjson``: OpenLineage RunEvents, one per line (embedded default);
* ``.floe/traces/otlp-traces.jsonl``: OTLP/JSON export requests, one per line;
* ``.floe/spool/*.ndjson``: floe events not delivered yet (an endpoint was down, or no sidecar
  ran). These go through the sidecar's own translation, ``floe-sidecar replay``, run as a child
  process (the adapter never imports the sidecar), so the page shows what the backends get.

Lines are first decoded into a small "head" (run id, time) so that a file holding many runs costs
one light pass; only the chosen run's lines are decoded in full.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from floe_cli.runpage.build import root_run_id
from floe_cli.runpage.model import SpanEvent, SpanRow
from floe_core.errors import NothingToShow
from floe_core.layout import LINEAGE_SINK, TRACES_SINK
from floe_core.spool import list_segments

__all__ = [
    "RunFiles",
    "RunInput",
    "RunNotFound",
    "otlp_attributes",
    "otlp_value",
    "read_run",
    "span_from_otlp",
    "span_from_record",
]

REPLAY_TIMEOUT_S = 300.0


class RunNotFound(NothingToShow):
    """No run to show: no file, no such run, or an ambiguous run id (the message says which)."""


@dataclass(frozen=True)
class RunFiles:
    lineage: Path | None
    traces: Path | None
    spool: Path | None = None
    artifacts: Path | None = None  # what ``floe-sidecar replay`` configures its sinks from
    cwd: Path | None = None


@dataclass
class RunInput:
    run_id: str
    trace_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    spans: list[SpanRow] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, for the user


# --- heads: which run a line belongs to, and when ---------------------------------------------


class _RunRef(msgspec.Struct):
    runId: str | None = None


class _ParentFacet(msgspec.Struct):
    run: _RunRef | None = None
    root: _Parent | None = None


class _Parent(msgspec.Struct):
    run: _RunRef | None = None


class _RunFacets(msgspec.Struct):
    parent: _ParentFacet | None = None


class _Run(msgspec.Struct):
    runId: str | None = None
    facets: _RunFacets | None = None


class _LineageHead(msgspec.Struct):
    eventTime: str | None = None
    run: _Run | None = None


class _SpanHead(msgspec.Struct):
    traceId: str | None = None
    endTimeUnixNano: int | str | None = None


class _ScopeHead(msgspec.Struct):
    spans: list[_SpanHead] = []


class _ResourceHead(msgspec.Struct):
    scopeSpans: list[_ScopeHead] = []


class _TracesHead(msgspec.Struct):
    resourceSpans: list[_ResourceHead] = []


_lineage_head = msgspec.json.Decoder(_LineageHead)
_traces_head = msgspec.json.Decoder(_TracesHead)
_any = msgspec.json.Decoder()


def _lineage_root(head: _LineageHead) -> str | None:
    run = head.run
    if run is None:
        return None
    parent = run.facets.parent if run.facets else None
    for candidate in (
        parent.root.run.runId if parent and parent.root and parent.root.run else None,
        parent.run.runId if parent and parent.run else None,
        run.runId,
    ):
        if candidate:
            return candidate.lower()
    return None


def _epoch_ns(text: str | None) -> int:
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n") and raw.strip():
                yield raw  # a torn last line (the sidecar is writing) is skipped


def run_id_of_trace(trace_id: str) -> str:
    """The Dagster run id (a UUID) whose trace id this is; floe's trace id is the run id's bits."""
    try:
        return str(uuid.UUID(hex=trace_id))
    except ValueError:
        return trace_id


def trace_id_of_run(run_id: str) -> str:
    from floe_core import ids

    return ids.trace_id_hex(run_id)


# --- spans in both shapes ----------------------------------------------------------------------


def otlp_value(value: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [otlp_value(v) for v in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return otlp_attributes((value["kvlistValue"] or {}).get("values"))
    return None


def otlp_attributes(raw: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for item in raw or ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            attributes[item["key"]] = otlp_value(item.get("value") or {})
    return attributes


_OTLP_STATUS = {2: "error", "STATUS_CODE_ERROR": "error", 1: "ok", "STATUS_CODE_OK": "ok"}


def span_from_otlp(raw: Mapping[str, Any]) -> SpanRow | None:
    """One span of an OTLP/JSON export request."""
    try:
        status = raw.get("status") or {}
        state = _OTLP_STATUS.get(status.get("code"), "unset")
        return SpanRow(
            span_id=str(raw["spanId"]).lower(),
            parent_id=str(raw["parentSpanId"]).lower() if raw.get("parentSpanId") else None,
            depth=0,
            name=str(raw.get("name") or "?"),
            start_ns=int(raw["startTimeUnixNano"]),
            end_ns=int(raw["endTimeUnixNano"]),
            status=state,
            message=(status.get("message") or None) if state == "error" else None,
            attributes=otlp_attributes(raw.get("attributes")),
            events=[
                SpanEvent(
                    name=str(e.get("name") or "?"),
                    time_ns=int(e.get("timeUnixNano") or 0),
                    attributes=otlp_attributes(e.get("attributes")),
                )
                for e in raw.get("events") or ()
                if isinstance(e, dict)
            ],
        )
    except (KeyError, TypeError, ValueError):
        return None


def span_from_record(raw: Mapping[str, Any]) -> SpanRow | None:
    """One span as ``floe-sidecar replay`` shows the trace sink's translation."""
    try:
        status = str(raw.get("status") or "unset")
        return SpanRow(
            span_id=str(raw["span_id"]).lower(),
            parent_id=str(raw["parent_span_id"]).lower() if raw.get("parent_span_id") else None,
            depth=0,
            name=str(raw.get("name") or "?"),
            start_ns=int(raw["start_ns"]),
            end_ns=int(raw["end_ns"]),
            status=status if status in ("ok", "error") else "unset",
            message=(raw.get("status_message") or None) if status == "error" else None,
            attributes=dict(raw.get("attributes") or {}),
            events=[
                SpanEvent(
                    name=str(e.get("name") or "?"),
                    time_ns=int(e.get("time_ns") or 0),
                    attributes=dict(e.get("attributes") or {}),
                )
                for e in raw.get("events") or ()
                if isinstance(e, dict)
            ],
        )
    except (KeyError, TypeError, ValueError):
        return None


# --- the run ----------------------------------------------------------------------------------


@dataclass
class _Found:
    """Lines grouped by run, with the latest time seen for each run."""

    latest: dict[str, int] = field(default_factory=dict)
    lineage: dict[str, list[bytes]] = field(default_factory=dict)
    traces: dict[str, list[bytes]] = field(default_factory=dict)  # by trace id
    replayed_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replayed_spans: dict[str, list[SpanRow]] = field(default_factory=dict)  # by trace id

    def seen(self, run_id: str, when: int) -> None:
        self.latest[run_id] = max(self.latest.get(run_id, 0), when)


def _scan_lineage(path: Path, found: _Found) -> None:
    for line in _lines(path):
        try:
            head = _lineage_head.decode(line)
        except msgspec.DecodeError:
            continue
        run_id = _lineage_root(head)
        if run_id:
            found.lineage.setdefault(run_id, []).append(line)
            found.seen(run_id, _epoch_ns(head.eventTime))


def _scan_traces(path: Path, found: _Found) -> None:
    for line in _lines(path):
        try:
            head = _traces_head.decode(line)
        except msgspec.DecodeError:
            continue
        traces: dict[str, int] = {}
        for resource in head.resourceSpans:
            for scope in resource.scopeSpans:
                for span in scope.spans:
                    if span.traceId:
                        trace = span.traceId.lower()
                        try:
                            end = int(span.endTimeUnixNano or 0)
                        except ValueError:
                            end = 0
                        traces[trace] = max(traces.get(trace, 0), end)
        for trace, end in traces.items():
            found.traces.setdefault(trace, []).append(line)
            found.seen(run_id_of_trace(trace), end)


def _replay_spool(files: RunFiles, found: _Found, notes: list[str]) -> list[str]:
    """The spool's undelivered events through ``floe-sidecar replay``; the segments read."""
    if files.spool is None:
        return []
    segments = []
    for segment in list_segments(files.spool):
        if segment.is_symlink():  # never read outside the spool through a link
            notes.append(f"{segment} is a symbolic link: not read")
        elif segment.is_file():
            segments.append(segment)
    if not segments:
        return []
    import importlib.util

    if importlib.util.find_spec("floe_sidecar") is None:
        notes.append(
            f"{len(segments)} spool segments in {files.spool} were not read: translating them "
            "needs the sidecar (install floe with the `sidecar` extra)"
        )
        return []
    with tempfile.TemporaryDirectory(prefix="floe-page-") as scratch:
        output = Path(scratch) / "replay.ndjson"
        argv = [sys.executable, "-m", "floe_sidecar.cli", "replay", *map(str, segments)]
        argv += ["--to", "file", "--output", str(output), "--output-dir", scratch]
        argv += ["--log-level", "error"]
        if files.artifacts is not None and files.artifacts.is_file():
            argv += ["--artifacts", str(files.artifacts)]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=REPLAY_TIMEOUT_S,
                check=False,
                cwd=files.cwd,
                env=dict(os.environ),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            notes.append(f"the spool in {files.spool} could not be replayed: {exc}")
            return []
        if result.returncode != 0 or not output.is_file():
            notes.append(
                f"the spool in {files.spool} could not be replayed: "
                f"{result.stderr.strip()[-500:] or f'exit status {result.returncode}'}"
            )
            return []
        for line in _lines(output):
            try:
                record = _any.decode(line)
            except msgspec.DecodeError:
                continue
            item = record.get("item") if isinstance(record, dict) else None
            if not isinstance(item, dict):
                continue
            if record.get("sink") == LINEAGE_SINK:
                run_id = root_run_id(item)
                if run_id:
                    found.replayed_events.setdefault(run_id, []).append(item)
                    found.seen(run_id, _epoch_ns(item.get("eventTime")))
            elif record.get("sink") == TRACES_SINK:
                span = span_from_record(item)
                trace = str(item.get("trace_id") or "").lower()
                if span is not None and trace:
                    found.replayed_spans.setdefault(trace, []).append(span)
                    found.seen(run_id_of_trace(trace), span.end_ns)
    return [str(s) for s in segments]


def _shown(path: Path, root: Path | None) -> str:
    """A path as the page names it: relative to the project when inside it."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _choose(found: _Found, wanted: str | None, where: str) -> str:
    if not found.latest:
        raise RunNotFound(f"no run in {where}: run `floe run` first")
    if wanted is None:
        return max(found.latest, key=lambda r: (found.latest[r], r))
    key = wanted.strip().lower()
    if key in found.latest:
        return key
    flat = key.replace("-", "")
    matches = sorted(r for r in found.latest if r.replace("-", "").startswith(flat))
    if len(matches) == 1 and flat:
        return matches[0]
    recent = sorted(found.latest, key=lambda r: found.latest[r], reverse=True)[:5]
    if len(matches) > 1:
        raise RunNotFound(
            f"run id {wanted!r} is ambiguous in {where}: {', '.join(matches[:5])}; give more of it"
        )
    raise RunNotFound(f"no run {wanted!r} in {where}; the latest runs there: {', '.join(recent)}")


def read_run(files: RunFiles, run_id: str | None = None) -> RunInput:
    """The events and spans of run ``run_id`` (default: the latest run found anywhere)."""
    found = _Found()
    notes: list[str] = []
    read: list[str] = []
    for path, scan in ((files.lineage, _scan_lineage), (files.traces, _scan_traces)):
        if path is not None and path.is_file():
            scan(path, found)
            read.append(_shown(path, files.cwd))
    segments = _replay_spool(files, found, notes)
    if segments and files.spool is not None:
        spool = _shown(files.spool, files.cwd)
        read.append(f"{spool} ({len(segments)} undelivered spool segments)")
    where = ", ".join(read) or ", ".join(
        str(p) for p in (files.lineage, files.traces, files.spool) if p is not None
    )
    if not read:
        raise RunNotFound(
            f"nothing to read: {where} do not exist. The sidecar writes the local files when "
            "floe.yaml turns lineage or traces on and no endpoint is configured; run `floe run`"
        )
    chosen = _choose(found, run_id, where)
    trace = trace_id_of_run(chosen)
    events = [_any.decode(line) for line in found.lineage.get(chosen, ())]
    events += found.replayed_events.get(chosen, [])
    spans: list[SpanRow] = []
    for line in found.traces.get(trace, ()):
        request = _any.decode(line)
        for resource in request.get("resourceSpans") or ():
            for scope in resource.get("scopeSpans") or ():
                for raw in scope.get("spans") or ():
                    if str(raw.get("traceId") or "").lower() == trace:
                        span = span_from_otlp(raw)
                        if span is not None:
                            spans.append(span)
    spans += found.replayed_spans.get(trace, [])
    return RunInput(
        run_id=chosen,
        trace_id=trace,
        events=[e for e in events if isinstance(e, dict)],
        spans=spans,
        sources=read,
        notes=notes,
    )
