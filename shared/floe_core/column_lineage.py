"""Column-level lineage from a model's compiled SQL: pure, bounded, never raising.

:func:`column_lineage` takes one compiled ``SELECT`` (what dbt writes for a model), the target's
SQL dialect, the columns of the relations it reads (names, and types when known) and, when
known, the output relation's real columns; it returns a :class:`~floe_core.events.ColumnLineage`:
for each output column the input columns it is computed from, each edge typed as OpenLineage's
ColumnLineage facet 1-2-0 types it, plus the INDIRECT inputs that shape every row, plus what
could not be resolved.

How: sqlglot parses the SQL in the target's dialect and qualifies it once against the upstream
schemas (``select *`` through CTEs is expanded, every column gets its table); then one walk over
its scopes follows every output column back to physical columns, memoising each CTE and
subquery, so the cost is one parse, one qualify and one pass per model (``sqlglot.lineage``
re-qualifies the whole statement for every column it is asked about).

The edge types:

- DIRECT IDENTITY: the value is copied (``c.email``, through any number of CTEs);
- DIRECT TRANSFORMATION: computed from the input (``cast(x as date)``, ``a + b``,
  ``coalesce(x, 0)``, ``payload:id``);
- DIRECT AGGREGATION: aggregated (``sum(x)``; window aggregates too);
- INDIRECT CONDITIONAL (a ``case when`` / ``if`` condition) and WINDOW (``partition by`` /
  ``order by`` of a window): per output column;
- INDIRECT JOIN, FILTER (``where``, ``having``, ``qualify``), GROUP_BY, SORT: dataset-wide,
  in ``ColumnLineage.dataset``.

Along a chain of CTEs the strongest wins (IDENTITY < TRANSFORMATION < AGGREGATION; INDIRECT over
DIRECT). ``masking`` marks an edge whose value reaches the output only through a hash
(``md5``, ``sha2``, ``hash``, ``farm_fingerprint``, ...) or a count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope
from sqlglot.schema import MappingSchema, normalize_name

from floe_core.events import (
    Column,
    ColumnLineage,
    FieldLineage,
    InputField,
    Relation,
    Transformation,
)

__all__ = [
    "DEFAULT_TIME_BUDGET_S",
    "MAX_SQL_CHARS",
    "SQL_DIALECTS",
    "PreparedLineage",
    "column_lineage",
    "prepare_lineage",
    "sql_dialect",
]

#: sqlglot's dialect for each dbt adapter type (floe's seven targets).
SQL_DIALECTS: dict[str, str] = {
    "duckdb": "duckdb",
    "postgres": "postgres",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "databricks": "databricks",
    "spark": "spark",
}
#: Longer statements are not parsed (the adapter already cuts compiled SQL at 256 KiB).
MAX_SQL_CHARS = 1_000_000
#: Wall-clock budget of one computation; past it, the walk stops and says so.
DEFAULT_TIME_BUDGET_S = 2.0

# Functions whose output does not reveal their input: hashes of every target's dialect.
_MASKING_CLASSES: tuple[type[exp.Expression], ...] = tuple(
    cls
    for name in (
        "MD5",
        "MD5Digest",
        "MD5NumberLower64",
        "MD5NumberUpper64",
        "SHA",
        "SHA1Digest",
        "SHA2",
        "SHA2Digest",
        "StandardHash",
        "FarmFingerprint",
        "CityHash64",
        "HashAgg",
        "Minhash",
    )
    if isinstance(cls := getattr(exp, name, None), type)
)
_MASKING_NAMES = frozenset(
    {
        "md5",
        "md5_hex",
        "md5_binary",
        "md5_number_lower64",
        "md5_number_upper64",
        "sha",
        "sha1",
        "sha1_hex",
        "sha1_binary",
        "sha2",
        "sha2_hex",
        "sha2_binary",
        "sha224",
        "sha256",
        "sha384",
        "sha512",
        "func_sha1",
        "hash",
        "hash_agg",
        "hashtext",
        "hashtextextended",
        "digest",
        "hmac",
        "farm_fingerprint",
        "fnv_hash",
        "xxhash64",
        "xxhash32",
        "murmur_hash",
        "murmurhash3_32",
        "crc32",
        "blake3",
        "cityhash64",
        "standard_hash",
    }
)
# Aggregates that count values without passing them on (masking, like OpenLineage's).
_COUNTING_CLASSES: tuple[type[exp.Expression], ...] = tuple(
    cls
    for name in ("Count", "CountIf", "ApproxDistinct", "Hll")
    if isinstance(cls := getattr(exp, name, None), type)
)
_COUNTING_NAMES = frozenset({"count", "count_if", "approx_count_distinct", "hll_count"})
# Window functions that copy a value from another row: a transformation, not an aggregation.
_VALUE_WINDOW_CLASSES: tuple[type[exp.Expression], ...] = tuple(
    cls
    for name in ("Lag", "Lead", "FirstValue", "LastValue", "NthValue")
    if isinstance(cls := getattr(exp, name, None), type)
)

_DIRECT, _INDIRECT = "DIRECT", "INDIRECT"
_IDENTITY, _TRANSFORMATION, _AGGREGATION = "IDENTITY", "TRANSFORMATION", "AGGREGATION"
_RANK = {_IDENTITY: 0, _TRANSFORMATION: 1, _AGGREGATION: 2}

# An edge while walking: (type, subtype, masking). Turned into Transformation structs at the end.
_Edge = tuple[str, str, bool]
# A physical input column: (index of its relation in the upstream list, column name as written).
_Origin = tuple[int, str]
_Deps = dict[_Origin, set[_Edge]]

_START: _Edge = (_DIRECT, _IDENTITY, False)
_CLAUSES = (
    ("where", "FILTER"),
    ("having", "FILTER"),
    ("qualify", "FILTER"),
    ("group", "GROUP_BY"),
    ("order", "SORT"),
)


def sql_dialect(adapter_type: str | None) -> str | None:
    """sqlglot's dialect name for a dbt adapter type; None (sqlglot's generic SQL) if unknown."""
    return SQL_DIALECTS.get(adapter_type or "")


class _OutOfTime(Exception):
    pass


def column_lineage(
    sql: str,
    *,
    dialect: str | None,
    upstream: Mapping[Relation, Sequence[Column]],
    output_columns: Sequence[Column] | None = None,
    default_relation: Relation | None = None,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> ColumnLineage:
    """The column lineage of one compiled ``SELECT``; never raises.

    ``upstream``: every relation the statement reads, with its columns (an empty sequence when
    they are unknown: explicit references still resolve, a ``*`` over it cannot).
    ``output_columns``: the output relation's real columns, when known; the result then names
    exactly those (in that order) and reports a SQL column the relation does not have.
    ``default_relation``: whose database and schema an unqualified table name is in (the
    model's own relation). Anything unresolved is in ``errors``; what was resolved is kept.
    """
    return prepare_lineage(
        sql,
        dialect=dialect,
        upstream=upstream,
        default_relation=default_relation,
        time_budget_s=time_budget_s,
    ).complete(output_columns)


class PreparedLineage:
    """The SQL half of :func:`column_lineage`: the statement parsed, qualified and walked.

    All the parser's work is done by :func:`prepare_lineage`, which needs only the SQL and the
    upstream columns, so it can run before the output relation exists (while the warehouse
    builds it); :meth:`complete` then names the output relation's real columns, cheaply, and may
    be called any number of times.
    """

    def __init__(self, extractor: _Extractor, outputs: list[tuple[str, _Deps]]) -> None:
        self._extractor = extractor
        self._outputs = outputs

    def complete(self, output_columns: Sequence[Column] | None = None) -> ColumnLineage:
        """The column lineage, for the output relation's real columns when they are known."""
        try:
            return self._extractor.result(self._outputs, output_columns)
        except Exception as exc:  # a bug here must cost lineage, never the caller
            return ColumnLineage(errors=(f"column lineage failed: {type(exc).__name__}: {exc}",))


class _Failed(PreparedLineage):
    def __init__(self, error: str) -> None:
        self._error = error

    def complete(self, output_columns: Sequence[Column] | None = None) -> ColumnLineage:
        return ColumnLineage(errors=(self._error,))


def prepare_lineage(
    sql: str,
    *,
    dialect: str | None,
    upstream: Mapping[Relation, Sequence[Column]],
    default_relation: Relation | None = None,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> PreparedLineage:
    """Parse, qualify and walk ``sql`` (see :func:`column_lineage`); never raises."""
    try:
        extractor = _Extractor(dialect, upstream, default_relation, time_budget_s)
        return PreparedLineage(extractor, extractor.run(sql))
    except Exception as exc:  # a bug here must cost lineage, never the caller
        return _Failed(f"column lineage failed: {type(exc).__name__}: {exc}")


class _Extractor:
    def __init__(
        self,
        dialect: str | None,
        upstream: Mapping[Relation, Sequence[Column]],
        default_relation: Relation | None,
        time_budget_s: float,
    ) -> None:
        self.dialect = dialect
        self.relations: list[Relation] = list(upstream)
        self.columns: list[Sequence[Column]] = [upstream[r] for r in self.relations]
        self.default_relation = default_relation
        self.deadline = time.monotonic() + time_budget_s
        self.errors: list[str] = []
        self._error_set: set[str] = set()
        # depth of relation names the schema is keyed by: database.schema.table, or fewer
        self.depth = _depth(self.relations)
        self.by_key: dict[tuple[str, ...], int] = {}
        self.by_folded_key: dict[tuple[str, ...], int] = {}
        self.real_names: list[dict[str, str]] = []  # per relation: casefolded -> real name
        self._scope_outputs: dict[int, list[tuple[str, _Deps]]] = {}
        self._scope_done: set[int] = set()
        self.dataset: dict[_Origin, set[_Edge]] = {}
        self._using: dict[int, frozenset[str]] = {}
        self._udtf: dict[int, _Deps] = {}
        self.unread = False  # no SQL to read (or too much): the result is the error alone

    # --- errors and time --------------------------------------------------------------------

    def error(self, message: str) -> None:
        if message not in self._error_set:
            self._error_set.add(message)
            self.errors.append(message)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _OutOfTime

    # --- the pipeline -------------------------------------------------------------------------

    def run(self, sql: str) -> list[tuple[str, _Deps]]:
        """Each output column the SQL selects, with its inputs (errors kept in ``errors``)."""
        if not sql or not sql.strip():
            self.error("no compiled SQL")
            self.unread = True
            return []
        if len(sql) > MAX_SQL_CHARS:
            self.error(f"compiled SQL is {len(sql)} characters, over {MAX_SQL_CHARS}: not parsed")
            self.unread = True
            return []
        query = self._parse(sql)
        if query is None:
            return []
        schema = self._schema()
        qualified = self._qualify(query, schema)
        if qualified is None:
            return []
        root = build_scope(qualified)
        if root is None:
            self.error("the statement has no SELECT to follow")
            return []
        try:
            self.tick()
            return self._outputs(root)
        except _OutOfTime:
            self.error("column lineage stopped: over its time budget")
        except RecursionError:
            self.error("column lineage stopped: the statement nests too deeply")
        return []

    def _parse(self, sql: str) -> exp.Query | None:
        try:
            statements = [s for s in sqlglot.parse(sql, dialect=self.dialect) if s is not None]
        except SqlglotError as exc:
            self.error(f"cannot parse the compiled SQL ({self.dialect or 'generic'}): {exc}")
            return None
        queries = [s for s in statements if isinstance(s, exp.Query)]
        if not queries:
            kinds = ", ".join(sorted({type(s).__name__ for s in statements})) or "nothing"
            self.error(f"the compiled SQL is not a query (parsed as {kinds})")
            return None
        if len(statements) > 1:
            self.error(f"{len(statements)} statements; lineage follows the last query only")
        query = queries[-1]
        # USING columns: qualify rewrites ``select *`` over them into ``coalesce(a.k, b.k)``,
        # which is the join key itself, not a transformation of it.
        for select in query.find_all(exp.Select):
            names = {
                ident.name
                for join in select.args.get("joins") or ()
                for ident in join.args.get("using") or ()
                if isinstance(ident, exp.Expression)
            }
            if names:
                self._using[id(select)] = frozenset(names)
        return query

    def _schema(self) -> MappingSchema | None:
        nested: dict[str, Any] = {}
        for index, (relation, columns) in enumerate(zip(self.relations, self.columns, strict=True)):
            parts = _parts(relation, self.depth)
            key = tuple(self._normal(part, is_table=True) for part in parts)
            self.by_key.setdefault(key, index)
            self.by_folded_key.setdefault(tuple(p.casefold() for p in parts), index)
            self.real_names.append({c.name.casefold(): c.name for c in columns})
            if not columns:
                continue  # unknown columns: qualify infers what the SQL references
            level = nested
            for part in key[:-1]:
                level = level.setdefault(part, {})
            level[key[-1]] = {self._normal(c.name): "UNKNOWN" for c in columns}
        if not nested:
            return None
        try:
            return MappingSchema(nested, dialect=self.dialect, normalize=False)
        except SqlglotError as exc:
            self.error(f"upstream schemas unusable: {exc}")
            return None

    def _normal(self, name: str, *, is_table: bool = False) -> str:
        return normalize_name(exp.to_identifier(name), dialect=self.dialect, is_table=is_table).name

    def _qualify(self, query: exp.Query, schema: MappingSchema | None) -> exp.Expression | None:
        default = self.default_relation
        catalog = default.database if default is not None and self.depth == 3 else None
        db = default.schema if default is not None and self.depth >= 2 else None
        try:
            qualified = qualify(
                query,
                dialect=self.dialect,
                schema=schema,
                catalog=catalog,
                db=db,
                validate_qualify_columns=False,
                quote_identifiers=False,
                identify=False,
            )
            return qualified if isinstance(qualified, exp.Expression) else None
        except (SqlglotError, KeyError, ValueError) as exc:
            self.error(f"cannot resolve the columns of the compiled SQL: {exc}")
            return None

    # --- scopes -------------------------------------------------------------------------------

    def _outputs(self, scope: Scope) -> list[tuple[str, _Deps]]:
        """Each output column of a scope, in order, with the physical columns it comes from."""
        key = id(scope)
        found = self._scope_outputs.get(key)
        if found is not None:
            return found
        self.tick()
        expression = scope.expression
        outputs: list[tuple[str, _Deps]] = []
        # sqlglot 26+ names a set operation's branches set_operation_scopes, 25 union_scopes.
        branch_scopes = getattr(scope, "set_operation_scopes", None) or getattr(
            scope, "union_scopes", None
        )
        if isinstance(expression, exp.SetOperation) and branch_scopes:
            branches = [self._outputs(branch) for branch in branch_scopes]
            first = branches[0]
            for position, (name, deps) in enumerate(first):
                merged: _Deps = {o: set(e) for o, e in deps.items()}
                for other in branches[1:]:
                    if position < len(other):
                        _merge(merged, other[position][1])
                outputs.append((name, merged))
        elif isinstance(expression, exp.Select):
            for projection in expression.selects:
                if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    self.error(
                        f"cannot expand {projection.sql(dialect=self.dialect)}: "
                        "the columns of its relation are unknown"
                    )
                    continue
                if isinstance(projection, exp.Star):
                    self.error("cannot expand *: the columns of a relation it reads are unknown")
                    continue
                name = projection.alias_or_name
                value = projection.this if isinstance(projection, exp.Alias) else projection
                found_deps: _Deps = {}
                if isinstance(value, exp.Expression):
                    self._walk(value, _START, scope, found_deps, expression)
                outputs.append((name, found_deps))
        self._scope_outputs[key] = outputs
        if key not in self._scope_done:
            self._scope_done.add(key)
            self._clauses(scope, outputs)
        return outputs

    def _clauses(self, scope: Scope, outputs: list[tuple[str, _Deps]]) -> None:
        """Dataset-wide INDIRECT inputs: joins, filters, group by and sort of a scope."""
        select = scope.expression
        if not isinstance(select, exp.Select):
            return
        aliases = dict(outputs)
        for arg, subtype in _CLAUSES:
            clause = select.args.get(arg)
            if clause is not None:
                self._indirect(clause, subtype, scope, aliases)
        group = select.args.get("group")
        if isinstance(group, exp.Group) and group.args.get("all"):  # GROUP BY ALL
            for projection, (_, deps) in zip(select.selects, outputs, strict=False):
                if projection.find(exp.AggFunc) is None:
                    _merge(self.dataset, _compose((_INDIRECT, "GROUP_BY", False), deps))
        for join in select.args.get("joins") or ():
            on = join.args.get("on")  # qualify has turned USING into ON
            if on is not None:
                self._indirect(on, "JOIN", scope, aliases)

    def _indirect(
        self, clause: exp.Expression, subtype: str, scope: Scope, aliases: Mapping[str, _Deps]
    ) -> None:
        deps: _Deps = {}
        self._walk(clause, (_INDIRECT, subtype, False), scope, deps, None, aliases)
        _merge(self.dataset, deps)

    # --- expressions --------------------------------------------------------------------------

    def _walk(
        self,
        node: exp.Expression,
        edge: _Edge,
        scope: Scope,
        out: _Deps,
        select: exp.Expression | None,
        aliases: Mapping[str, _Deps] | None = None,
    ) -> None:
        """Every physical column under ``node``, with how it reaches the value (``edge``)."""
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return  # count(t.*) and the like: no one column
            self._column(node, edge, scope, out, aliases)
            return
        if isinstance(node, exp.Subquery | exp.Select | exp.SetOperation):
            self._subquery(node, edge, scope, out)
            return
        if isinstance(node, exp.Window):
            self._walk_child(node.this, edge, scope, out, select, aliases)
            window: _Edge = (_INDIRECT, "WINDOW", False) if edge[0] == _DIRECT else edge
            for key in ("partition_by", "order"):
                value = node.args.get(key)
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        self._walk(child, window, scope, out, None, aliases)
            return
        if isinstance(node, exp.Case | exp.If):
            self._conditional(node, edge, scope, out, select, aliases)
            return
        if (
            isinstance(node, exp.Coalesce)
            and select is not None
            and self._is_using_key(node, select)
        ):
            for child in node.iter_expressions():
                self._walk(child, edge, scope, out, select, aliases)
            return
        child_edge = self._child_edge(node, edge)
        for child in node.iter_expressions():
            self._walk(child, child_edge, scope, out, select, aliases)

    def _walk_child(
        self,
        node: object,
        edge: _Edge,
        scope: Scope,
        out: _Deps,
        select: exp.Expression | None,
        aliases: Mapping[str, _Deps] | None,
    ) -> None:
        if isinstance(node, exp.Expression):
            self._walk(node, edge, scope, out, select, aliases)

    def _child_edge(self, node: exp.Expression, edge: _Edge) -> _Edge:
        """How the children of ``node`` reach the value, given how ``node`` reaches it."""
        if isinstance(node, exp.Alias | exp.Paren | exp.Distinct | exp.Ordered | exp.Filter):
            return edge
        if isinstance(node, exp.Identifier | exp.Literal | exp.DataType):
            return edge
        kind, subtype, masking = edge
        if kind == _INDIRECT:
            return edge
        if isinstance(node, _VALUE_WINDOW_CLASSES):
            return (_DIRECT, _TRANSFORMATION if subtype == _IDENTITY else subtype, masking)
        if isinstance(node, exp.AggFunc) or _is_anonymous(node, _COUNTING_NAMES):
            counting = isinstance(node, _COUNTING_CLASSES) or _is_anonymous(node, _COUNTING_NAMES)
            return (_DIRECT, _AGGREGATION, masking or counting)
        masks = isinstance(node, _MASKING_CLASSES) or _is_anonymous(node, _MASKING_NAMES)
        if subtype == _IDENTITY:
            subtype = _TRANSFORMATION
        return (kind, subtype, masking or masks)

    def _conditional(
        self,
        node: exp.Case | exp.If,
        edge: _Edge,
        scope: Scope,
        out: _Deps,
        select: exp.Expression | None,
        aliases: Mapping[str, _Deps] | None,
    ) -> None:
        value_edge = self._child_edge(node, edge)
        condition: _Edge = (_INDIRECT, "CONDITIONAL", False) if edge[0] == _DIRECT else edge
        if isinstance(node, exp.Case):
            subject = node.args.get("this")  # case <subject> when <value> ...
            if isinstance(subject, exp.Expression):
                self._walk(subject, condition, scope, out, None, aliases)
            for branch in node.args.get("ifs") or ():
                self._walk_child(branch.this, condition, scope, out, None, aliases)
                self._walk_child(branch.args.get("true"), value_edge, scope, out, select, aliases)
            self._walk_child(node.args.get("default"), value_edge, scope, out, select, aliases)
            return
        self._walk_child(node.this, condition, scope, out, None, aliases)
        self._walk_child(node.args.get("true"), value_edge, scope, out, select, aliases)
        self._walk_child(node.args.get("false"), value_edge, scope, out, select, aliases)

    def _is_using_key(self, node: exp.Coalesce, select: exp.Expression) -> bool:
        keys = self._using.get(id(select))
        if not keys:
            return False
        args = [node.this, *(node.expressions or ())]
        names = {a.name for a in args if isinstance(a, exp.Column)}
        return len(names) == 1 and all(isinstance(a, exp.Column) for a in args) and names <= keys

    def _subquery(self, node: exp.Expression, edge: _Edge, scope: Scope, out: _Deps) -> None:
        """A scalar subquery (or ``in``/``exists``): its first column flows into the value."""
        while isinstance(node, exp.Subquery):
            node = node.this
        sub = self._scope_of(node, scope)
        if sub is None:
            self.error(f"cannot follow a subquery: {node.sql(dialect=self.dialect)[:200]}")
            return
        outputs = self._outputs(sub)
        if outputs:
            _merge(out, _compose(edge, outputs[0][1]))

    def _scope_of(self, node: exp.Expression, scope: Scope) -> Scope | None:
        for candidate in scope.subquery_scopes:
            if candidate.expression is node:
                return candidate
        for candidate in scope.traverse():
            if candidate.expression is node:
                return candidate
        return None

    # --- columns ------------------------------------------------------------------------------

    def _column(
        self,
        column: exp.Column,
        edge: _Edge,
        scope: Scope,
        out: _Deps,
        aliases: Mapping[str, _Deps] | None,
    ) -> None:
        table = column.table
        name = column.name
        if not table:
            if aliases is not None and name in aliases:  # ORDER BY / GROUP BY an output alias
                _merge(out, _compose(edge, aliases[name]))
                return
            selected = list(scope.selected_sources.values())
            if len(selected) == 1:
                _merge(out, self._resolve_in_source(selected[0][1], name, edge))
                return
            self.error(f"column {name!r} could not be resolved to one relation")
            return
        source = self._source(scope, table)
        if source is None:
            # ``a.s.f`` read as column ``s`` of table ``a``... qualify leaves struct fields as
            # ``Dot``; a table part that is no source is a struct or JSON path on a column.
            parent = column.args.get("db")
            owner = self._source(scope, parent.name) if isinstance(parent, exp.Expression) else None
            if owner is not None:
                nested = (edge[0], max(edge[1], _TRANSFORMATION, key=_rank), edge[2])
                _merge(out, self._resolve_in_source(owner, table, nested))
                return
            self.error(f"column {column.sql(dialect=self.dialect)!r}: no relation {table!r}")
            return
        _merge(out, self._resolve_in_source(source, name, edge))

    def _source(self, scope: Scope | None, alias: str) -> exp.Table | Scope | None:
        while scope is not None:
            source = scope.sources.get(alias)
            if isinstance(source, exp.Table | Scope):
                return source
            scope = scope.parent
        return None

    def _resolve_in_source(self, source: object, name: str, edge: _Edge) -> _Deps:
        if isinstance(source, Scope) and source.is_udtf:
            return _compose(edge, self._table_function(source))
        if isinstance(source, Scope):
            for output, deps in self._outputs(source):
                if output == name:
                    return _compose(edge, deps)
            if any(output.casefold() == name.casefold() for output, _ in self._outputs(source)):
                folded = name.casefold()
                for output, deps in self._outputs(source):
                    if output.casefold() == folded:
                        return _compose(edge, deps)
            self.error(f"column {name!r} is not an output of the subquery or CTE that reads it")
            return {}
        if isinstance(source, exp.Table):
            index = self._relation_of(source)
            if index is None:
                self.error(f"reads {source.sql(dialect=self.dialect)}, not an upstream relation")
                return {}
            real = self.real_names[index]
            if real:
                found = real.get(name.casefold())
                if found is None:
                    self.error(
                        f"column {name!r} is not a column of {_dotted(self.relations[index])}"
                    )
                    return {}
                name = found
            return {(index, name): {edge}}
        self.error(f"column {name!r} comes from a table function; not followed")
        return {}

    def _table_function(self, scope: Scope) -> _Deps:
        """What any column of ``unnest(...)`` / ``lateral flatten(...)`` is computed from."""
        key = id(scope)
        found = self._udtf.get(key)
        if found is None:
            found = {}
            for name, child in scope.expression.args.items():
                if name == "alias":
                    continue
                for item in child if isinstance(child, list) else [child]:
                    if isinstance(item, exp.Expression):
                        self._walk(item, (_DIRECT, _TRANSFORMATION, False), scope, found, None)
            self._udtf[key] = found
        return found

    def _relation_of(self, table: exp.Table) -> int | None:
        parts = [p for p in (table.catalog, table.db, table.name) if p][-self.depth :]
        index = self.by_key.get(tuple(parts))
        if index is None:
            index = self.by_folded_key.get(tuple(p.casefold() for p in parts))
        return index

    # --- the result -----------------------------------------------------------------------------

    def result(
        self, outputs: list[tuple[str, _Deps]], output_columns: Sequence[Column] | None
    ) -> ColumnLineage:
        """The lineage of ``outputs``, named as the output relation's real columns (if known).

        Leaves the extractor as it was, so a prepared lineage can be completed again."""
        errors = list(self.errors)
        if self.unread:
            return ColumnLineage(errors=tuple(errors))
        produced = outputs
        if output_columns is not None:
            by_name: dict[str, _Deps] = {}
            for name, deps in outputs:
                by_name.setdefault(name.casefold(), {}).update(deps)
            real = {c.name.casefold() for c in output_columns}
            for name, _ in outputs:
                message = f"the SQL selects {name!r}, which the output relation does not have"
                if name.casefold() not in real and message not in errors:
                    errors.append(message)
            produced = [(c.name, by_name.get(c.name.casefold(), {})) for c in output_columns]
        columns = tuple(
            FieldLineage(column=name, inputs=self._inputs(deps)) for name, deps in produced
        )
        return ColumnLineage(
            columns=columns, dataset=self._inputs(self.dataset), errors=tuple(errors)
        )

    def _inputs(self, deps: Mapping[_Origin, Iterable[_Edge]]) -> tuple[InputField, ...]:
        return tuple(
            InputField(
                relation=self.relations[index],
                column=column,
                transformations=tuple(
                    Transformation(type=kind, subtype=subtype, masking=masking)
                    for kind, subtype, masking in sorted(edges)
                ),
            )
            for (index, column), edges in sorted(deps.items())
        )


def _rank(subtype: str) -> int:
    return _RANK.get(subtype, 3)


def _compose(outer: _Edge, inner: _Deps) -> _Deps:
    """What reaches the outer value when it uses a column computed as ``inner``."""
    out: _Deps = {}
    for origin, edges in inner.items():
        composed = out.setdefault(origin, set())
        for edge in edges:
            composed.add(_chain(outer, edge))
    return out


def _chain(outer: _Edge, inner: _Edge) -> _Edge:
    if outer[0] == _INDIRECT:
        return (_INDIRECT, outer[1], False)
    if inner[0] == _INDIRECT:
        return (_INDIRECT, inner[1], False)
    subtype = outer[1] if _rank(outer[1]) >= _rank(inner[1]) else inner[1]
    return (_DIRECT, subtype, outer[2] or inner[2])


def _merge(into: _Deps, deps: Mapping[_Origin, Iterable[_Edge]]) -> None:
    for origin, edges in deps.items():
        into.setdefault(origin, set()).update(edges)


def _is_anonymous(node: exp.Expression, names: frozenset[str]) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).casefold() in names


def _depth(relations: Sequence[Relation]) -> int:
    if relations and all(r.database and r.schema for r in relations):
        return 3
    if relations and all(r.schema for r in relations):
        return 2
    return 1 if relations else 3


def _parts(relation: Relation, depth: int) -> tuple[str, ...]:
    parts = (relation.database or "", relation.schema or "", relation.identifier)
    return parts[-depth:]


def _dotted(relation: Relation) -> str:
    return ".".join(p for p in (relation.database, relation.schema, relation.identifier) if p)
