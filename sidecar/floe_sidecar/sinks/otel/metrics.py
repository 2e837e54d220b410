"""Events in, metric samples out (pure), and the cumulative totals they add up to.

**Instruments** (:data:`INSTRUMENTS`; OpenTelemetry semantic conventions where one exists, the
rest ``dbt.*`` for what dbt reports and ``floe.*`` for what floe adds):

=============================  =========  ========  ===========================================
name                           kind       unit      one sample per
=============================  =========  ========  ===========================================
``dbt.node.duration``          histogram  s         finished node that ran (dbt's execution
                                                    time, as in ``run_results.json``)
``dbt.node.executions``        counter    {node}    finished or aborted node (any status)
``dbt.node.rows_affected``     counter    {row}     node whose adapter reported rows affected
``dbt.test.failures``          counter    {test}    test that failed (status ``fail``/``error``)
``dbt.test.warnings``          counter    {test}    test that warned
``dbt.test.failing_rows``      counter    {row}     test that reported failing rows
``dbt.invocation.duration``    histogram  s         dbt invocation
``cicd.pipeline.run.duration`` histogram  s         Dagster run with a known start (semconv)
``cicd.pipeline.run.errors``   counter    {error}   failed Dagster run (semconv)
``floe.pipeline.runs``         counter    {run}     finished Dagster run (any result)
=============================  =========  ========  ===========================================

Node attributes: ``dbt.unique_id`` (the model, seed, snapshot or test), ``dbt.resource_type``,
``dbt.status`` (dbt's), ``cicd.pipeline.task.run.result`` (success, failure, error, skip),
``floe.compute_target``, ``dbt.project_name``; tests add ``dbt.test.attached_unique_id``. Runs:
``cicd.pipeline.name`` (the Dagster job) and ``cicd.pipeline.result``; failed runs ``error.type``.
The resource is the spans' (service, tenant attributes, ``deployment.environment.name``). No run
or invocation id is an attribute: that would make a new series per run.

**Cumulative temporality, and why a batch delivered twice counts once.** :class:`Totals` holds,
per series, its total since a start time that never changes while the series lives, and the ids
of the events already counted (per run, for the last :data:`REMEMBERED_RUNS` runs). The sink
exports each touched series' total, not the increment, and keeps ``Totals`` in its cursor, saved
in the same atomic write as its position in the spool. A series starts at the time of the first
event it counts, and each point is stamped with the time of the latest (when the node finished,
not when the sidecar got round to exporting it, hours later after an outage), so exporting the
same totals again gives the very same points. So:

- a batch exported, then the sidecar killed before the cursor moved (or the cursor write failed
  and the engine retries): the cursor's totals (from before that batch) and positions agree;
  the batch is read again and exported again with the same points as the first time. A backend
  that got the first export sees the same cumulative point twice, which changes nothing;
- the same event twice in the spool (the adapter spooled a line the sidecar had already taken
  but not acknowledged yet): its id is already counted, so it adds nothing;
- the cursor lost (deleted by hand): totals start again from zero with a new start time, which
  every backend reads as a counter reset, not as a drop.

Delta temporality could not give this (an increment exported twice is counted twice), which is
why it is refused in the configuration.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import msgspec

from floe_core.events import (
    Event,
    Invocation,
    InvocationFinished,
    Node,
    NodeFinished,
    RunFinished,
)
from floe_core.outcome import node_outcome
from floe_sidecar.sinks.otel.translate import ENVIRONMENT_ATTRIBUTE, to_unix_nanos

__all__ = [
    "INSTRUMENTS",
    "REMEMBERED_RUNS",
    "Instrument",
    "MetricTranslator",
    "Sample",
    "Series",
    "Totals",
]

Kind = Literal["counter", "histogram"]
Value = str | int | bool
#: Seconds: a dbt node takes from milliseconds to hours.
NODE_BOUNDS: Final = (
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    *(30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
RUN_BOUNDS: Final = (
    *(1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    *(600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0),
)
REMEMBERED_RUNS: Final = 64
#: Series beyond this many are not created (a runaway attribute would otherwise grow the cursor).
MAX_SERIES: Final = 100_000


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    bounds: tuple[float, ...] = ()


INSTRUMENTS: Final[dict[str, Instrument]] = {
    i.name: i
    for i in (
        Instrument(
            "dbt.node.duration", "histogram", "s", "dbt's execution time of a node", NODE_BOUNDS
        ),
        Instrument("dbt.node.executions", "counter", "{node}", "dbt nodes finished, by status"),
        Instrument("dbt.node.rows_affected", "counter", "{row}", "rows a node affected"),
        Instrument("dbt.test.failures", "counter", "{test}", "dbt tests that failed"),
        Instrument("dbt.test.warnings", "counter", "{test}", "dbt tests that warned"),
        Instrument("dbt.test.failing_rows", "counter", "{row}", "failing rows dbt tests found"),
        Instrument(
            "dbt.invocation.duration", "histogram", "s", "duration of a dbt invocation", RUN_BOUNDS
        ),
        Instrument(
            "cicd.pipeline.run.duration",
            "histogram",
            "s",
            "duration of a Dagster run's dbt work",
            RUN_BOUNDS,
        ),
        Instrument("cicd.pipeline.run.errors", "counter", "{error}", "Dagster runs that failed"),
        Instrument("floe.pipeline.runs", "counter", "{run}", "Dagster runs finished, by result"),
    )
}

_RESULTS: Final = {"success": "success", "failure": "failure", "error": "error", "skipped": "skip"}


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One measurement of one event; the sink adds it to its series' cumulative total."""

    metric: str
    attributes: tuple[tuple[str, Value], ...]  # sorted: with the resource, the series key
    resource: tuple[tuple[str, str], ...]
    value: float | int
    event_id: str  # an event counts once, however often it is delivered
    run_id: str
    time_ns: int  # when it was measured: the event's time (a node's finish)
    index: int = 0  # position among the samples of its event: 0 starts one copy of the event


def _sorted(attributes: Mapping[str, Value]) -> tuple[tuple[str, Value], ...]:
    return tuple(sorted(attributes.items()))


class MetricTranslator:
    """Turns one event into its samples; ``base_resource`` as for spans."""

    def __init__(self, base_resource: Mapping[str, str]) -> None:
        self._base_resource = dict(base_resource)

    def translate(self, event: Event) -> tuple[Sample, ...]:
        if isinstance(event, NodeFinished):
            return tuple(self._node(event))
        if isinstance(event, InvocationFinished):
            return tuple(self._invocation(event))
        if isinstance(event, RunFinished):
            return tuple(self._run(event))
        return ()

    def _resource(
        self, environment: str | None, attributes: Mapping[str, str]
    ) -> tuple[tuple[str, str], ...]:
        resource = dict(self._base_resource)
        resource.update(attributes)
        if environment:
            resource[ENVIRONMENT_ATTRIBUTE] = environment
        return tuple(sorted(resource.items()))

    @staticmethod
    def _node_attributes(
        invocation: Invocation, node: Node, status: str, result: str
    ) -> dict[str, Value]:
        attributes: dict[str, Value] = {
            "dbt.unique_id": node.unique_id,
            "dbt.resource_type": node.resource_type,
            "dbt.status": status,
            "cicd.pipeline.task.run.result": result,
            "floe.compute_target": invocation.connection.target,
            "dbt.project_name": invocation.project_name,
        }
        if node.test is not None and node.test.attached_unique_id:
            attributes["dbt.test.attached_unique_id"] = node.test.attached_unique_id
        return attributes

    def _samples(
        self,
        event: Event,
        run_id: str,
        when: datetime,
        resource: tuple[tuple[str, str], ...],
        measurements: Iterable[tuple[str, float | int, Mapping[str, Value]]],
    ) -> list[Sample]:
        time_ns = to_unix_nanos(when)
        return [
            Sample(
                metric=metric,
                attributes=_sorted(attributes),
                resource=resource,
                value=value,
                event_id=event.event_id,
                run_id=run_id,
                time_ns=time_ns,
                index=index,
            )
            for index, (metric, value, attributes) in enumerate(measurements)
        ]

    def _node(self, event: NodeFinished) -> list[Sample]:
        invocation, node = event.invocation, event.node
        outcome = node_outcome(event.status, event.error)
        attributes = self._node_attributes(invocation, node, event.status, _RESULTS[outcome])
        found: list[tuple[str, float | int, Mapping[str, Value]]] = [
            ("dbt.node.executions", 1, attributes)
        ]
        if event.started_at is not None:
            seconds = event.execution_time_s
            if seconds is None:
                seconds = (event.finished_at - event.started_at).total_seconds()
            if math.isfinite(seconds):
                found.append(("dbt.node.duration", max(0.0, seconds), attributes))
        if event.rows_affected is not None:
            found.append(("dbt.node.rows_affected", event.rows_affected, attributes))
        if node.resource_type == "test":
            status = event.status.strip().lower()
            if outcome in ("failure", "error"):
                found.append(("dbt.test.failures", 1, attributes))
            elif status == "warn":
                found.append(("dbt.test.warnings", 1, attributes))
            if event.failures:
                found.append(("dbt.test.failing_rows", event.failures, attributes))
        resource = self._resource(invocation.environment, invocation.attributes)
        return self._samples(event, invocation.run.run_id, event.finished_at, resource, found)

    def _invocation(self, event: InvocationFinished) -> list[Sample]:
        invocation = event.invocation
        resource = self._resource(invocation.environment, invocation.attributes)
        seconds = (event.finished_at - event.started_at).total_seconds()
        found: list[tuple[str, float | int, Mapping[str, Value]]] = [
            (
                "dbt.invocation.duration",
                max(0.0, seconds),
                {
                    "cicd.pipeline.task.run.result": "success" if event.success else "error",
                    "floe.compute_target": invocation.connection.target,
                    "dbt.project_name": invocation.project_name,
                },
            )
        ]
        for unfinished in event.unfinished:  # closed as aborted: they count as executions
            attributes = self._node_attributes(invocation, unfinished.node, "aborted", "error")
            found.append(("dbt.node.executions", 1, attributes))
        return self._samples(event, invocation.run.run_id, event.finished_at, resource, found)

    def _run(self, event: RunFinished) -> list[Sample]:
        run = event.run
        result = "success" if event.success else "failure"
        attributes: dict[str, Value] = {
            "cicd.pipeline.name": run.job_name,
            "cicd.pipeline.result": result,
        }
        found: list[tuple[str, float | int, Mapping[str, Value]]] = [
            ("floe.pipeline.runs", 1, attributes)
        ]
        if run.started_at is not None:
            seconds = (event.finished_at - run.started_at).total_seconds()
            found.append(("cicd.pipeline.run.duration", max(0.0, seconds), attributes))
        if not event.success:
            errors = {"cicd.pipeline.name": run.job_name, "error.type": "dagster_run_failure"}
            found.append(("cicd.pipeline.run.errors", 1, errors))
        resource = self._resource(event.environment, event.attributes)
        return self._samples(event, run.run_id, event.finished_at, resource, found)


# --- the totals -----------------------------------------------------------------------------


class Series(msgspec.Struct, kw_only=True):
    """One series' total since ``start_ns`` (its first event's time) up to ``updated_ns`` (its
    latest event's time): a counter's sum, or a histogram's."""

    metric: str
    attributes: tuple[tuple[str, Value], ...]
    resource: tuple[tuple[str, str], ...]
    start_ns: int
    updated_ns: int
    count: int = 0
    total: float | int = 0
    buckets: tuple[int, ...] = ()  # histograms: len(bounds) + 1 counts
    min: float | None = None
    max: float | None = None

    def key(self) -> tuple[str, tuple[tuple[str, Value], ...], tuple[tuple[str, str], ...]]:
        return self.metric, self.attributes, self.resource

    def add(self, value: float | int, time_ns: int) -> Series:
        """A copy with ``value`` added (the committed totals are never changed in place)."""
        instrument = INSTRUMENTS[self.metric]
        buckets = self.buckets
        low, high = self.min, self.max
        if instrument.kind == "histogram":
            counts = list(buckets or (0,) * (len(instrument.bounds) + 1))
            counts[bisect.bisect_left(instrument.bounds, value)] += 1
            buckets = tuple(counts)
            low = value if low is None else min(low, value)
            high = value if high is None else max(high, value)
        return msgspec.structs.replace(
            self,
            count=self.count + 1,
            total=self.total + value,
            buckets=buckets,
            min=low,
            max=high,
            updated_ns=max(self.updated_ns, time_ns),
        )


class _State(msgspec.Struct, kw_only=True):
    version: int = 1
    series: list[Series] = []
    # run id -> short ids of the events of that run already counted (oldest run first).
    counted: dict[str, list[str]] = {}


_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(_State)

SeriesKey = tuple[str, tuple[tuple[str, Value], ...], tuple[tuple[str, str], ...]]


def _short(event_id: str) -> str:
    return event_id.replace("-", "")[:16]


class Totals:
    """Cumulative totals per series, and which events they already count; immutable in use:
    :meth:`add` returns new totals and the series it touched."""

    def __init__(
        self,
        series: Mapping[SeriesKey, Series] | None = None,
        counted: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.series: dict[SeriesKey, Series] = dict(series or {})
        self.counted: dict[str, frozenset[str]] = dict(counted or {})
        self.refused_series = 0

    @classmethod
    def decode(cls, data: bytes | None) -> Totals:
        if not data:
            return cls()
        state = _state_decoder.decode(data)
        return cls(
            {s.key(): s for s in state.series},
            {run: frozenset(ids) for run, ids in state.counted.items()},
        )

    def encode(self) -> bytes:
        state = _State(
            series=list(self.series.values()),
            counted={run: sorted(ids) for run, ids in self.counted.items()},
        )
        return _state_encoder.encode(state)

    def add(self, samples: Sequence[Sample]) -> tuple[Totals, list[Series]]:
        """These totals plus ``samples`` (events already counted skipped), and the series the
        samples touched, in first-touched order."""
        series = dict(self.series)
        counted = dict(self.counted)
        touched: dict[SeriesKey, None] = {}
        adding: dict[str, set[str]] = {}  # run -> events counted by this call
        refused = 0
        skipping = False
        for sample in samples:
            if sample.index == 0:  # the first sample of one copy of an event
                short = _short(sample.event_id)
                run_ids = adding.setdefault(sample.run_id, set())
                skipping = short in counted.get(sample.run_id, frozenset()) or short in run_ids
                run_ids.add(short)
            if skipping:
                continue  # that event is counted already: this copy is a duplicate
            key = (sample.metric, sample.attributes, sample.resource)
            current = series.get(key)
            if current is None:
                if len(series) >= MAX_SERIES:
                    refused += 1
                    continue
                current = Series(
                    metric=sample.metric,
                    attributes=sample.attributes,
                    resource=sample.resource,
                    start_ns=sample.time_ns,
                    updated_ns=sample.time_ns,
                )
            series[key] = current.add(sample.value, sample.time_ns)
            touched[key] = None
        for run, shorts in adding.items():
            counted[run] = counted.get(run, frozenset()) | frozenset(shorts)
            counted[run] = counted.pop(run)  # most recent run last
        while len(counted) > REMEMBERED_RUNS:
            del counted[next(iter(counted))]
        result = Totals(series, counted)
        result.refused_series = refused
        return result, [series[key] for key in touched]
