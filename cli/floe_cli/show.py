"""``floe show lineage|traces [--run ID]``: a run's lineage and span waterfall, in the terminal.

Reads the embedded default outputs of the sidecar, standard formats both: OpenLineage RunEvents as
NDJSON (``.floe/lineage/openlineage.ndjson``) and OTLP/JSON lines (``.floe/traces/
otlp-traces.jsonl``). Plain JSON reading: no OpenLineage or OpenTelemetry library is needed. The
default run is the most recent one in the file. Delivery is at least once, so duplicates (the same
runId and state, the same span id) are shown once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from floe_core.errors import NothingToShow

__all__ = [
    "NothingToShow",
    "Span",
    "load_spans",
    "render_lineage",
    "render_waterfall",
    "show_lineage",
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
        for raw in handle:
            try:
                value = json.loads(raw)
            except ValueError:
                continue  # a torn last line while the sidecar writes: skip it
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
