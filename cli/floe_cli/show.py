"""``floe show lineage|traces|logs [--run ID]``: a run's lineage, span waterfall or log lines, in
the terminal.

Reads the embedded default outputs of the sidecar, standard formats all: OpenLineage RunEvents as
NDJSON (``.floe/lineage/openlineage.ndjson``) and OTLP/JSON lines (``.floe/traces/
otlp-traces.jsonl``, ``.floe/logs/otlp-logs.jsonl``). Plain JSON reading: no OpenLineage or
OpenTelemetry library is needed. The default run is the most recent one in the file. Delivery is
at least once, so duplicates (the same runId and state, the same span id, the same log record
uid) are shown once. ``floe show logs --node NAME`` keeps one dbt node's lines (its unique id, or
its name).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from floe_core.errors import NothingToShow
from floe_core.linefile import bounded_lines, loads_or_none

__all__ = [
    "LogEntry",
    "NothingToShow",
    "Span",
    "load_logs",
    "load_spans",
    "render_lineage",
    "render_logs",
    "render_waterfall",
    "show_lineage",
    "show_logs",
    "show_traces",
]

BAR_WIDTH = 40
NAME_WIDTH = 48


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NothingToShow(
            f"{path} does not exist: the sidecar writes it when floe.yaml turns this output on "
            "and no endpoint is configured (the embedded default). Run `floe run` first."
        ) from None
    with handle:
        # Bounded lines and a decode that cannot raise: a torn last line while the sidecar
        # writes, a line nested deeper than the decoder's stack, a file with no newline at all
        # (``--file /dev/zero``) are skipped, never held whole.
        for _, raw, _ in bounded_lines(handle):
            value = loads_or_none(raw) if raw is not None else None
            if isinstance(value, dict):
                yield value


# --- traces ----------------------------------------------------------------------------------


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)


def load_spans(path: Path) -> dict[str, dict[str, Span]]:
    """trace id -> span id -> span, from an OTLP/JSON lines file."""
    from floe_cli.runpage.read import span_from_otlp

    traces: dict[str, dict[str, Span]] = {}
    for request in _json_lines(path):
        for resource in request.get("resourceSpans") or ():
            for scope in resource.get("scopeSpans") or ():
                for raw in scope.get("spans") or ():
                    row = span_from_otlp(raw) if isinstance(raw, dict) else None
                    if row is None:
                        continue
                    span = Span(
                        trace_id=str(raw["traceId"]).lower(),
                        span_id=row.span_id,
                        parent_id=row.parent_id,
                        name=row.name,
                        start_ns=row.start_ns,
                        end_ns=row.end_ns,
                        error=(row.message or "error") if row.status == "error" else None,
                        attributes=row.attributes,
                    )
                    traces.setdefault(span.trace_id, {})[span.span_id] = span
    return traces


def _trace_key(run_id: str) -> str:
    """A Dagster run id (UUID, dashes or not) as the 32 hex digits of its trace id."""
    from floe_core import ids

    return ids.trace_id_hex(run_id.strip())


def render_waterfall(spans: dict[str, Span], width: int = BAR_WIDTH) -> list[str]:
    """One line per span, children under parents, bars placed on the run's time axis."""
    for span in spans.values():
        span.children.clear()
    roots: list[Span] = []
    for span in spans.values():
        parent = spans.get(span.parent_id) if span.parent_id else None
        (parent.children if parent is not None else roots).append(span)
    start = min(s.start_ns for s in spans.values())
    end = max(s.end_ns for s in spans.values())
    total = max(end - start, 1)
    lines = [f"{'SPAN':<{NAME_WIDTH}} {'':<{width}} {'DURATION':>9}"]

    def walk(span: Span, depth: int) -> None:
        name = ("  " * depth + span.name)[:NAME_WIDTH]
        first = int((span.start_ns - start) / total * width)
        length = max(1, round((span.end_ns - span.start_ns) / total * width))
        first = min(first, width - 1)
        bar = (" " * first + "#" * length)[:width]
        seconds = (span.end_ns - span.start_ns) / 1e9
        line = f"{name:<{NAME_WIDTH}} {bar:<{width}} {seconds:8.2f}s"
        if span.error:
            line += f"  ERROR {span.error.strip().splitlines()[0][:80]}"
        lines.append(line)
        for child in sorted(span.children, key=lambda s: (s.start_ns, s.name)):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: (s.start_ns, s.name)):
        walk(root, 0)
    return lines


def show_traces(path: Path, run_id: str | None, out: IO[str]) -> None:
    traces = load_spans(path)
    if not traces:
        raise NothingToShow(f"{path} holds no spans yet")
    if run_id:
        key = _trace_key(run_id)
        if key not in traces:
            raise NothingToShow(f"no trace for run {run_id} in {path} ({len(traces)} traces)")
    else:
        key = max(traces, key=lambda t: max(s.end_ns for s in traces[t].values()))
    spans = traces[key]
    run = next(
        (s.attributes.get("cicd.pipeline.run.id") for s in spans.values() if s.parent_id is None),
        None,
    )
    seconds = (
        max(s.end_ns for s in spans.values()) - min(s.start_ns for s in spans.values())
    ) / 1e9
    errors = sum(1 for s in spans.values() if s.error)
    title = f"trace {key}" + (f" (Dagster run {run})" if run else "")
    print(f"{title}: {len(spans)} spans, {seconds:.2f}s, {errors} with errors", file=out)
    for line in render_waterfall(spans):
        print(line, file=out)


# --- logs ------------------------------------------------------------------------------------


@dataclass
class LogEntry:
    trace_id: str
    span_id: str
    time_ns: int
    severity: str
    body: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def unique_id(self) -> str | None:
        value = self.attributes.get("dbt.unique_id")
        return str(value) if value else None

    @property
    def node_name(self) -> str | None:
        """The node's name as dbt prints it (a test's unique id ends in a hash)."""
        value = self.attributes.get("dbt.node_info.node_name")
        if value:
            return str(value)
        unique_id = self.unique_id
        return unique_id.split(".")[2] if unique_id and unique_id.count(".") >= 2 else unique_id


def load_logs(path: Path) -> dict[str, list[LogEntry]]:
    """trace id -> its log records, oldest first, each once (by ``log.record.uid``)."""
    traces: dict[str, list[LogEntry]] = {}
    seen: set[str] = set()
    for request in _json_lines(path):
        for resource in request.get("resourceLogs") or ():
            for scope in resource.get("scopeLogs") or ():
                for raw in scope.get("logRecords") or ():
                    entry = _log_entry(raw)
                    if entry is None:
                        continue
                    uid = entry.attributes.get("log.record.uid")
                    if uid is not None:
                        if uid in seen:
                            continue
                        seen.add(str(uid))
                    traces.setdefault(entry.trace_id, []).append(entry)
    for entries in traces.values():
        entries.sort(key=lambda e: e.time_ns)
    return traces


def _log_entry(raw: dict[str, Any]) -> LogEntry | None:
    from floe_cli.runpage.read import otlp_attributes, otlp_value

    try:
        body = raw.get("body") or {}
        return LogEntry(
            trace_id=str(raw["traceId"]).lower(),
            span_id=str(raw.get("spanId") or "").lower(),
            time_ns=int(raw.get("timeUnixNano") or raw.get("observedTimeUnixNano") or 0),
            severity=str(raw.get("severityText") or "INFO"),
            body=str(otlp_value(body) if isinstance(body, dict) else body or ""),
            attributes=otlp_attributes(raw.get("attributes")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _matches_node(entry: LogEntry, node: str) -> bool:
    return entry.unique_id is not None and node in (entry.unique_id, entry.node_name)


NODE_WIDTH = 28


def render_logs(entries: list[LogEntry]) -> list[str]:
    """One line per record (continuation lines indented): UTC time, severity, node, message."""
    from datetime import UTC, datetime

    lines = []
    indent = " " * (12 + 1 + 5 + 1 + NODE_WIDTH + 1)
    for entry in entries:
        moment = datetime.fromtimestamp(entry.time_ns / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3]
        node = (entry.node_name or "-")[:NODE_WIDTH]
        first, *rest = entry.body.splitlines() or [""]
        lines.append(f"{moment} {entry.severity:<5} {node:<{NODE_WIDTH}} {first}")
        lines.extend(f"{indent}{more}" for more in rest)
    return lines


def show_logs(path: Path, run_id: str | None, node: str | None, out: IO[str]) -> None:
    traces = load_logs(path)
    if not traces:
        raise NothingToShow(f"{path} holds no log records yet")
    if run_id:
        key = _trace_key(run_id)
        if key not in traces:
            raise NothingToShow(f"no log records of run {run_id} in {path} ({len(traces)} runs)")
    else:
        key = max(traces, key=lambda t: traces[t][-1].time_ns)
    entries = traces[key]
    run = next(
        (
            e.attributes["cicd.pipeline.run.id"]
            for e in entries
            if e.attributes.get("cicd.pipeline.run.id")
        ),
        None,
    )
    if node:
        entries = [e for e in entries if _matches_node(e, node)]
        if not entries:
            raise NothingToShow(f"no log records of node {node!r} in run {run or key}")
    errors = sum(1 for e in entries if e.severity in ("ERROR", "FATAL"))
    title = f"logs of trace {key}" + (f" (Dagster run {run})" if run else "")
    if node:
        title += f", node {node}"
    print(f"{title}: {len(entries)} records, {errors} errors", file=out)
    for line in render_logs(entries):
        print(line, file=out)


# --- lineage ---------------------------------------------------------------------------------


def _dataset(dataset: dict[str, Any]) -> str:
    return str(dataset.get("name") or "?")


def render_lineage(events: list[dict[str, Any]]) -> list[str]:
    """Per job run, in order of first appearance: its states, and what it read and wrote."""
    runs: dict[str, dict[str, Any]] = {}
    for event in events:
        run_id = (event.get("run") or {}).get("runId")
        if not run_id:
            continue
        entry = runs.setdefault(
            run_id,
            {"job": (event.get("job") or {}).get("name", "?"), "states": [], "in": {}, "out": {}},
        )
        state = event.get("eventType") or "?"
        if state not in entry["states"]:
            entry["states"].append(state)
        for dataset in event.get("inputs") or ():
            entry["in"][_dataset(dataset)] = None
        for dataset in event.get("outputs") or ():
            entry["out"][_dataset(dataset)] = None
        error = ((event.get("run") or {}).get("facets") or {}).get("errorMessage")
        if error:
            entry["error"] = str(error.get("message") or "").strip()
    lines = []
    for entry in runs.values():
        final = entry["states"][-1] if entry["states"] else "?"
        lines.append(f"{final:<9} {entry['job']}")
        if entry["in"]:
            lines.append(f"{'':<9}   reads:  {', '.join(entry['in'])}")
        if entry["out"]:
            lines.append(f"{'':<9}   writes: {', '.join(entry['out'])}")
        if entry.get("error"):
            lines.append(f"{'':<9}   error:  {entry['error'].splitlines()[0][:100]}")
    return lines


def show_lineage(path: Path, run_id: str | None, out: IO[str]) -> None:
    events = list(_json_lines(path))
    if not events:
        raise NothingToShow(f"{path} holds no lineage events yet")
    from floe_cli.runpage.build import root_run_id

    wanted = run_id.strip().lower() if run_id else root_run_id(events[-1])
    selected = [e for e in events if root_run_id(e) == wanted]
    if not selected:
        raise NothingToShow(f"no lineage events of run {run_id} in {path}")
    seen: set[tuple[str, str]] = set()
    unique = []
    for event in selected:
        key = ((event.get("run") or {}).get("runId", ""), event.get("eventType", ""))
        if key not in seen:
            seen.add(key)
            unique.append(event)
    namespace = (unique[0].get("job") or {}).get("namespace", "?")
    jobs = {(e.get("run") or {}).get("runId") for e in unique}
    print(
        f"lineage of Dagster run {wanted} (job namespace {namespace}): "
        f"{len(unique)} events, {len(jobs)} job runs",
        file=out,
    )
    for line in render_lineage(unique):
        print(line, file=out)
