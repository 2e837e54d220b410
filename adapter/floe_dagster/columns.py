"""A finished node's real columns -> the event's ``output_columns`` and ``column_lineage``.

The seam for the warehouse: whatever can ask the warehouse for a relation's columns while dbt
runs (dbt's own adapter, inside the dbt process: DuckDB's file lock allows no other connection)
hands :meth:`RunColumns.describe` the output relation's real columns and, where it has them, the
upstream relations'. Everything else is here, pure apart from the run's memory:

- the real columns get the manifest's descriptions, tags and declared classifications;
- the column lineage comes from the compiled SQL (``floe_core.column_lineage``) against the
  upstream relations' columns: as given, else as an earlier node of this run finished with them,
  else the columns the manifest documents;
- classifications follow it (``floe_core.classification``), and the result is remembered for the
  nodes downstream, so an inherited classification names where it was declared, through the run.

Computed once, here, because Dagster's metadata needs it too; the sidecar only maps it.

The parser's share (parse, qualify, walk: all of the cost) needs only the compiled SQL and the
upstream columns, which are known when the node starts executing (dbt has written its compiled
SQL and every upstream node has finished). :class:`LineageWorker` does it then, in a thread of
its own, while the warehouse builds the relation; when the node's columns arrive,
:meth:`RunColumns.describe` takes the prepared half if it was computed from the very same SQL and
upstream columns and only names the real output columns, else it computes it all as before.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from floe_core.classification import propagate
from floe_core.column_lineage import PreparedLineage, prepare_lineage, sql_dialect
from floe_core.events import (
    Column,
    ColumnLineage,
    FieldLineage,
    InputField,
    Node,
    Relation,
    Transformation,
)
from floe_dagster.manifest import ManifestIndex

__all__ = [
    "CapturedColumns",
    "ColumnCapture",
    "LineageInput",
    "LineageWorker",
    "PreparedFor",
    "RunColumns",
]

log = logging.getLogger("floe_dagster.columns")

# Resource types whose column lineage comes from their compiled SQL (a seed has none).
_FROM_SQL = frozenset({"model", "snapshot"})
_IDENTITY = (Transformation(type="DIRECT", subtype="IDENTITY"),)
# A statement with what the lineage walk meets most (CTEs, ``*``, a join, an aggregate, a window,
# a ``case``): computed once when a run starts, so the parser's first-use cost (its dialect's
# tables, the optimizer's rules) is not paid by the first node that finishes.
_WARM_UP_SQL = """
with a as (select * from s.t), b as (select k, sum(v) as total from s.t group by k)
select a.k, coalesce(b.total, 0) as total, case when a.v > 0 then 'p' else 'n' end as sign,
    row_number() over (partition by a.k order by a.v) as position, md5(cast(a.v as varchar)) as h
from a left join b on a.k = b.k where a.v is not null
"""
_WARM_UP_RELATION = Relation(database=None, schema="s", identifier="t")


@dataclass(frozen=True)
class CapturedColumns:
    """What the warehouse says after a node ran: its relation's columns (name, type), in order,
    and those of any upstream relation it was asked about."""

    output: tuple[Column, ...]
    upstream: Mapping[Relation, tuple[Column, ...]] = field(default_factory=dict)


#: Asks the warehouse about a finished node (its relation and upstream relations); None if it
#: cannot. Runs where dbt's connection is; must not raise (a raise is caught and logged once).
ColumnCapture = Callable[[Node], CapturedColumns | None]


@dataclass(frozen=True, eq=True)
class LineageInput:
    """Everything the SQL half of a node's column lineage is computed from."""

    compiled_sql: str
    dialect: str | None
    upstream: Mapping[Relation, tuple[Column, ...]]
    default_relation: Relation | None

    def prepare(self) -> PreparedLineage:
        return prepare_lineage(
            self.compiled_sql,
            dialect=self.dialect,
            upstream=self.upstream,
            default_relation=self.default_relation,
        )


#: Hands :meth:`RunColumns.describe` a lineage prepared ahead from exactly this input, or None.
PreparedFor = Callable[[LineageInput], PreparedLineage | None]


class RunColumns:
    """The columns every node of one dbt invocation finished with, and what derives them."""

    def __init__(self, index: ManifestIndex, adapter_type: str | None) -> None:
        self.index = index
        self.dialect = sql_dialect(adapter_type)
        self._known: dict[Relation, tuple[Column, ...]] = {}

    def known(self, relation: Relation) -> tuple[Column, ...] | None:
        return self._known.get(relation)

    def upstream_columns(
        self, node: Node, given: Mapping[Relation, Sequence[Column]] | None = None
    ) -> dict[Relation, tuple[Column, ...]]:
        """Each upstream relation's columns: given > finished earlier in the run > documented."""
        given = given or {}
        out: dict[Relation, tuple[Column, ...]] = {}
        ids = node.upstream_ids if len(node.upstream_ids) == len(node.upstream) else ()
        for position, relation in enumerate(node.upstream):
            known = self._known.get(relation)
            if relation in given:
                # The warehouse's names and types; what the run derived (classifications
                # followed back to where they were declared), else what the manifest documents.
                documented = known or self._documented(ids[position] if ids else None)
                out[relation] = _merge_docs(tuple(given[relation]), documented)
            elif known is not None:
                out[relation] = known
            else:
                out[relation] = self._documented(ids[position] if ids else None)
        return out

    @staticmethod
    def lineage_from_sql(node: Node) -> bool:
        """Whether the node's column lineage comes from its compiled SQL (models, snapshots)."""
        return node.resource_type in _FROM_SQL

    def lineage_input(
        self,
        node: Node,
        compiled_sql: str | None,
        given: Mapping[Relation, Sequence[Column]] | None = None,
    ) -> LineageInput | None:
        """What the node's column lineage is computed from; None if it has none from SQL."""
        if node.resource_type not in _FROM_SQL or not compiled_sql:
            return None
        return self._lineage_input(node, compiled_sql, self.upstream_columns(node, given))

    def _lineage_input(
        self, node: Node, compiled_sql: str, upstream: Mapping[Relation, tuple[Column, ...]]
    ) -> LineageInput:
        return LineageInput(
            compiled_sql=compiled_sql,
            dialect=self.dialect,
            upstream=upstream,
            default_relation=node.relation,
        )

    def describe(
        self,
        node: Node,
        compiled_sql: str | None,
        captured: CapturedColumns,
        prepared_for: PreparedFor | None = None,
    ) -> tuple[tuple[Column, ...], ColumnLineage | None]:
        """The node's output columns (typed, documented, classified) and its column lineage.

        ``prepared_for``: where the lineage's SQL half may have been computed ahead (see
        :class:`LineageWorker`); used only if it was computed from the same input."""
        columns = _merge_docs(captured.output, node.columns)
        upstream = self.upstream_columns(node, captured.upstream)
        lineage: ColumnLineage | None = None
        if node.resource_type in _FROM_SQL and compiled_sql:
            wanted = self._lineage_input(node, compiled_sql, upstream)
            prepared = prepared_for(wanted) if prepared_for is not None else None
            lineage = (prepared or wanted.prepare()).complete(columns)
        elif node.resource_type == "snapshot" and len(upstream) == 1:
            lineage = _snapshot_lineage(columns, upstream)
        described = propagate(columns, lineage, upstream)
        if node.relation is not None:
            self._known[node.relation] = described
        return described, lineage

    def _documented(self, unique_id: str | None) -> tuple[Column, ...]:
        node = self.index.node(unique_id) if unique_id else None
        return node.columns if node is not None else ()


def _merge_docs(real: tuple[Column, ...], documented: Sequence[Column]) -> tuple[Column, ...]:
    """Real columns (names and types from the warehouse) with the manifest's documentation."""
    docs = {c.name.casefold(): c for c in documented}
    out = []
    for column in real:
        doc = docs.get(column.name.casefold())
        if doc is None:
            out.append(column)
            continue
        out.append(
            Column(
                name=column.name,
                data_type=column.data_type or doc.data_type,
                description=column.description or doc.description,
                classification=column.classification or doc.classification,
                tags=column.tags or doc.tags,
                classifications=column.classifications or doc.classifications,
            )
        )
    return tuple(out)


def _snapshot_lineage(
    columns: Sequence[Column], upstream: Mapping[Relation, Sequence[Column]]
) -> ColumnLineage:
    """A YAML snapshot (no compiled SQL) copies its relation; dbt adds its ``dbt_*`` columns."""
    [(relation, source)] = upstream.items()
    names = {c.name.casefold(): c.name for c in source}
    return ColumnLineage(
        columns=tuple(
            FieldLineage(
                column=c.name,
                inputs=(
                    (InputField(relation=relation, column=names[key], transformations=_IDENTITY),)
                    if (key := c.name.casefold()) in names
                    else ()
                ),
            )
            for c in columns
        )
    )


class LineageWorker:
    """One thread that prepares column lineage ahead (see the module's docstring).

    :meth:`submit` queues a node's input; :meth:`prepared_for` hands it back when the node's
    columns arrive: done, or being computed (then it waits for it: no slower than computing it
    now), or still queued (then it is withdrawn and None returned: computed now, by the caller).
    A failure only costs the ahead-of-time result. The thread ends when closed or after a minute
    without work, and starts again with the next one.
    """

    IDLE_S = 60.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[PreparedLineage], LineageInput] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ahead: dict[str, tuple[LineageInput, Future[PreparedLineage]]] = {}

    def warm_up(self, dialect: str | None) -> None:
        """Pay the parser's first-use cost now, in the thread, before any node finishes."""
        self._put(
            LineageInput(
                compiled_sql=_WARM_UP_SQL,
                dialect=dialect,
                upstream={_WARM_UP_RELATION: (Column(name="k"), Column(name="v"))},
                default_relation=None,
            )
        )

    def submit(self, unique_id: str, wanted: LineageInput) -> None:
        """Start preparing ``unique_id``'s lineage from ``wanted`` (replacing an earlier one)."""
        earlier = self._ahead.pop(unique_id, None)
        if earlier is not None:
            earlier[1].cancel()
        self._ahead[unique_id] = (wanted, self._put(wanted))

    def prepared_for(self, unique_id: str) -> PreparedFor:
        """What :meth:`RunColumns.describe` asks for ``unique_id``'s prepared lineage."""

        def find(wanted: LineageInput) -> PreparedLineage | None:
            entry = self._ahead.pop(unique_id, None)
            if entry is None:
                return None
            ahead, future = entry
            if ahead != wanted or future.cancel():
                future.cancel()
                return None
            try:
                return future.result()
            except Exception:  # prepare_lineage never raises; this is only belt and braces
                log.debug("floe: column lineage prepared ahead failed", exc_info=True)
                return None

        return find

    def forget(self, unique_id: str) -> None:
        """The node ended without columns to describe: its prepared lineage is not needed."""
        entry = self._ahead.pop(unique_id, None)
        if entry is not None:
            entry[1].cancel()

    def close(self) -> None:
        """No more work is coming: the thread ends once the queue is empty."""
        for _, future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)

    def _put(self, wanted: LineageInput) -> Future[PreparedLineage]:
        future: Future[PreparedLineage] = Future()
        with self._lock:
            self._queue.put((future, wanted))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="floe-column-lineage", daemon=True
                )
                self._thread.start()
        return future

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.IDLE_S)
            except queue.Empty:
                item = None
            if item is None:  # idle, or closed
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            future, wanted = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(wanted.prepare())
            except BaseException as exc:  # handed to whoever waits for it
                future.set_exception(exc)
