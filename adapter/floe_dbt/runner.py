"""dbt, run by dbt's programmatic runner, as the dbt process of a floe step.

``python -m floe_dbt.runner <dbt args>`` is ``dbt <dbt args>``: ``dbtRunner().invoke(args)`` in
this interpreter, with dbt's own logger writing the same ``--log-format json`` lines to stdout
that the ``dbt`` command writes (dagster-dbt and floe's event builder read them unchanged), and
the same exit codes (0 success, 1 a node failed, 2 dbt could not run).

What the ``dbt`` command cannot do: with :data:`~floe_dbt.column_note.CAPTURE_COLUMNS_ENV` set,
a dbt event callback asks dbt's own adapter (this process's connection and credentials; DuckDB's
file lock allows no second process) for the columns of every model, seed and snapshot it
builds, and hands them to the parent as a floe-marked dbt ``Note`` (see
:mod:`floe_dbt.column_note`), ahead of the node's result line and ``NodeFinished`` (see
:class:`ColumnCapture`). A capture never fails the node: an error becomes the note's ``error``,
and the node goes on as dbt decides.

With :data:`RELAY_ENV` set, dbt's stdout stays at its ``info`` level and :class:`NodeEventRelay`
writes only the few ``debug``-level events floe reads (:data:`RELAYED_EVENTS`, and floe's own
column notes) to stdout, as dbt's JSON logger would have. At ``debug`` dbt writes about 14 times
as many lines (every SQL statement, connection and commit: 17,005 lines against 1,222 for 500
models), and the step parses each one on the cores dbt runs on.

With :data:`~floe_dbt.warm.WARM_ENV` set, the runner is started ahead of its command (``floe
run`` does so as it begins): it imports dbt, then takes its arguments, environment and working
directory from one line on stdin (see :mod:`floe_dbt.warm`).

The same runner is the ``floe-dbt`` command (a console script of the package): dagster-dbt's
public ``DbtCliResource.cli()`` can only start an executable, so where floe takes that path
(dagster-dbt 0.25 - 0.28) it starts ``floe-dbt`` instead of ``dbt`` (see
:func:`runner_executable`), and the capture works there too.

Beyond ``dbtRunner`` the capture relies on dbt internals that may move between versions: the
``ConnectionClosed`` event, the adapter registry (``dbt.adapters.factory.FACTORY``) and the
connection manager's ``get_if_exists``/``rollback_if_open``. Where one is missing the note says
so in its ``error``, the parent logs it once, and the events go out without columns.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from floe_dbt.column_note import (
    CAPTURE_COLUMNS_ENV,
    CAPTURE_SOURCES_ENV,
    MARKER,
    CapturedRelation,
    ColumnNote,
    SourcePlan,
    decode_plan,
    encode,
)
from floe_dbt.warm import WARM_ENV, wait_for_command

__all__ = [
    "RELAYED_EVENTS",
    "RELAY_ENV",
    "RESULT_EVENTS",
    "RUNNER_ENV",
    "RUNNER_MODULE",
    "RUNNER_SCRIPT",
    "ColumnCapture",
    "NodeEventRelay",
    "exit_code",
    "main",
    "runner_command",
    "runner_executable",
]

log = logging.getLogger("floe_dbt.runner")

#: ``subprocess`` here makes floe start the ``dbt`` command instead of this runner.
RUNNER_ENV = "FLOE_DBT_RUNNER"
RUNNER_MODULE = "floe_dbt.runner"
#: The console script that runs :func:`main` (``[project.scripts]`` of the package).
RUNNER_SCRIPT = "floe-dbt"

#: ``1``: relay :data:`RELAYED_EVENTS` to stdout instead of running dbt's stdout at ``debug``.
RELAY_ENV = "FLOE_DBT_RELAY_NODE_EVENTS"
#: The ``debug``-level dbt events floe's event builder reads (``floe_dagster.dbt_events``).
RELAYED_EVENTS = frozenset({"NodeExecuting", "NodeFinished", "CommandCompleted"})
#: The Python logger dbt's stdout log writes through (``get_stdout_config`` of dbt-common).
DBT_STDOUT_LOGGER = "stdout_log"

#: dbt's result line per resource type that has a relation worth describing.
RESULT_EVENTS = frozenset({"LogModelResult", "LogSeedResult", "LogSnapshotResult"})
_DESCRIBED = frozenset({"model", "seed", "snapshot"})


class ColumnCapture:
    """The dbt event callback that describes each built relation, on the node's own connection.

    dbt fires ``ConnectionClosed`` for a node's connection just before it closes it, after the
    materialization committed and before the node's result line: asked then, the warehouse
    answers on the same connection (no new one), and the note reaches the parent before the
    result line (where dagster-dbt makes the asset's materialization) and ``NodeFinished``.
    Where dbt runs a node without a connection of its own, its result line is the cue instead.
    A failed node is described too (dbt has not said yet that it failed); the parent ignores it.
    """

    def __init__(self, sources: SourcePlan | None = None) -> None:
        self._described: set[str] = set()
        self._sources = sources or SourcePlan()

    def __call__(self, msg: Any) -> None:
        try:
            name = msg.info.name
            if name == "ConnectionClosed":
                node_info = msg.data.node_info
                if msg.data.conn_name != node_info.unique_id:
                    return  # not the node's own connection (ours, or dbt's own)
            elif name in RESULT_EVENTS:
                node_info = msg.data.node_info
                if node_info.node_status != "success" or node_info.unique_id in self._described:
                    return
            else:
                return
            if node_info.resource_type not in _DESCRIBED or node_info.materialized == "ephemeral":
                return
            relation = node_info.node_relation
            if not relation.alias:
                return
            self._described.add(node_info.unique_id)
            own_connection = name == "ConnectionClosed"
            try:
                self._describe_sources(node_info.unique_id, own_connection=own_connection)
                self._describe(
                    node_info.unique_id,
                    CapturedRelation(
                        database=relation.database or None,
                        schema=relation.schema or None,
                        identifier=relation.alias,
                    ),
                    own_connection=own_connection,
                )
            finally:
                if own_connection:
                    # One transaction for all of the node's questions, ended once: where ending
                    # it fails (dbt-duckdb 1.9 cannot roll back there), the next question's
                    # BEGIN would fail inside the transaction still open.
                    _end_transaction(_adapter())
        except Exception:  # the capture must never fail the node it describes
            log.warning("floe: column capture failed", exc_info=True)

    def _describe_sources(self, unique_id: str, *, own_connection: bool) -> None:
        """The sources ``unique_id`` reads that no earlier node has had described."""
        for source_id in self._sources.reads.get(unique_id, ()):
            relation = self._sources.sources.get(source_id)
            if relation is None or source_id in self._described:
                continue
            self._described.add(source_id)
            self._describe(source_id, relation, own_connection=own_connection)

    def _describe(
        self, unique_id: str, relation: CapturedRelation, *, own_connection: bool
    ) -> None:
        from dbt_common.events.base_types import EventLevel
        from dbt_common.events.functions import fire_event
        from dbt_common.events.types import Note

        started = time.perf_counter()
        try:
            columns = _columns(relation, own_connection=own_connection)
            note = ColumnNote(
                unique_id=unique_id,
                relation=relation,
                columns=columns,
                seconds=time.perf_counter() - started,
            )
        except Exception as exc:
            note = ColumnNote(
                unique_id=unique_id,
                relation=relation,
                error=f"{type(exc).__name__}: {exc}",
                seconds=time.perf_counter() - started,
            )
            if own_connection:
                # A failed query aborts the transaction (PostgreSQL): the node's other
                # questions get a fresh one.
                try:
                    _end_transaction(_adapter())
                except Exception:
                    log.debug("floe: cannot end the capture's transaction", exc_info=True)
        fire_event(Note(msg=encode(note)), level=EventLevel.DEBUG)


class NodeEventRelay:
    """The dbt event callback that writes dbt's ``debug``-level node events (and floe's column
    notes) to stdout while dbt's own stdout log stays at ``info``.

    A callback is called for every event, whatever the log level, right after dbt's loggers and
    on the thread that fired it, so each relayed line comes where dbt would have written it.
    The line is dbt's own JSON (``msg_to_json``) with dbt's own secret scrubbing
    (``env_scrubber``), written through the handlers of dbt's stdout logger (their lock keeps it
    whole beside dbt's lines); where that logger has no handler, to ``sys.stdout`` itself. Where
    dbt's stdout already lets ``debug`` through, dbt writes these lines itself: nothing is
    relayed twice.
    """

    def __init__(self) -> None:
        from dbt_common.events.functions import env_scrubber, msg_to_json

        self._line = lambda msg: env_scrubber(msg_to_json(msg))
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        try:
            name = msg.info.name
            if name not in RELAYED_EVENTS and not (
                name == "Note" and str(msg.info.msg).startswith(MARKER)
            ):
                return
            stdout = logging.getLogger(DBT_STDOUT_LOGGER)
            if stdout.handlers and stdout.isEnabledFor(logging.DEBUG):
                return  # dbt's stdout is at debug: dbt wrote the line itself
            line = self._line(msg)
            if stdout.handlers:
                record = stdout.makeRecord(stdout.name, logging.INFO, __file__, 0, line, (), None)
                for handler in stdout.handlers:
                    handler.handle(record)
            else:
                with self._lock:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
        except Exception:  # a relay must never fail the node whose event it writes
            log.warning("floe: cannot relay a dbt event", exc_info=True)


def relay_or_debug(environ: MutableMapping[str, str]) -> list[Callable[[Any], None]]:
    """The relay's callback when :data:`RELAY_ENV` asks for it; where dbt lacks what it needs,
    no callback and dbt's stdout at ``debug`` instead (every line, the relayed ones among them)."""
    if environ.get(RELAY_ENV) != "1":
        return []
    try:
        return [NodeEventRelay()]
    except ImportError:
        log.warning("floe: dbt cannot relay its node events; its stdout goes to debug instead")
        environ["DBT_LOG_LEVEL"] = "debug"
        return []


def _columns(
    relation: CapturedRelation, *, own_connection: bool
) -> tuple[tuple[str, str | None], ...]:
    """The relation's columns as dbt's adapter (the one this invocation registered) reads them.

    On the node's own connection (still open: dbt is about to close it) the caller rolls the
    queries' transaction back, so dbt closes the connection as it left it.
    """
    adapter = _adapter()
    target = adapter.Relation.create(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    )
    if own_connection:
        return _described(adapter, relation, target)
    with adapter.connection_named(f"floe_columns.{relation.identifier}"):
        return _described(adapter, relation, target)


def _described(
    adapter: Any, relation: CapturedRelation, target: Any
) -> tuple[tuple[str, str | None], ...]:
    """Where DuckDB runs: one query of its catalog function; anywhere else (or if that query
    fails): dbt's ``get_columns_in_relation``.

    dbt-duckdb's macro asks ``information_schema.columns`` through dbt's macro machinery: at 500
    models it cost 53 s of the dbt process's threads in one build (47 ms a node at the start,
    428 ms at the end), against 9.7 s for ``duckdb_columns()`` asked directly (the same names
    and types; ``information_schema.columns`` is a view of it).
    """
    if adapter.type() == "duckdb":
        try:
            columns = _duckdb_columns(adapter, relation)
        except Exception:
            log.debug("floe: duckdb_columns() failed; asking dbt's macro", exc_info=True)
        else:
            if columns:  # none: not found under these names; the macro has the last word
                return columns
    found = adapter.get_columns_in_relation(target)
    # ``dtype`` is the type as the warehouse names it (``data_type`` adds dbt's sizes).
    return tuple((str(c.name), _warehouse_type(c)) for c in found)


def _duckdb_columns(adapter: Any, relation: CapturedRelation) -> tuple[tuple[str, str | None], ...]:
    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    database = (
        f"database_name = {literal(relation.database)}"
        if relation.database
        else "database_name = current_database()"
    )
    schema = (
        f"schema_name = {literal(relation.schema)}"
        if relation.schema
        else "schema_name = current_schema()"
    )
    # The names are dbt's own, each written as an escaped SQL string literal.
    table_name = literal(relation.identifier)
    sql = f"select column_name, data_type from duckdb_columns() where {database} and {schema} and table_name = {table_name} order by column_index"  # noqa: S608, E501
    _, table = adapter.execute(sql, fetch=True)
    return tuple((str(name), str(kind) if kind else None) for name, kind in table.rows)


def _adapter() -> Any:
    """The dbt adapter this invocation registered."""
    from dbt.adapters.factory import FACTORY

    adapters: list[Any] = list(FACTORY.adapters.values())
    if len(adapters) != 1:
        raise LookupError(f"expected one registered dbt adapter, found {len(adapters)}")
    return adapters[0]


def _end_transaction(adapter: Any) -> None:
    """Roll back what the capture's query began (a read); dbt then closes the connection."""
    connection = adapter.connections.get_if_exists()
    if connection is None or not connection.transaction_open:
        return
    try:
        adapter.connections.rollback_if_open()
    finally:
        connection.transaction_open = False


def _warehouse_type(column: Any) -> str | None:
    kind = getattr(column, "dtype", None) or getattr(column, "data_type", None)
    return str(kind) if kind else None


def runner_command(dbt_executable: str, environ: Mapping[str, str]) -> list[str] | None:
    """``[python, -m, floe_dbt.runner]`` when this interpreter's dbt is the one to run; None
    when the ``dbt`` command must be started instead (another dbt, or asked for by
    :data:`RUNNER_ENV`)."""
    if environ.get(RUNNER_ENV) == "subprocess":
        return None
    if importlib.util.find_spec("dbt") is None:
        return None
    executable = Path(dbt_executable)
    own = executable.name == "dbt" and (
        str(executable) == "dbt" or executable.parent == Path(sys.executable).parent
    )
    return [sys.executable, "-m", RUNNER_MODULE] if own else None


def runner_executable(dbt_executable: str, environ: Mapping[str, str]) -> str | None:
    """The ``floe-dbt`` command beside this interpreter, where it can stand in for
    ``dbt_executable`` (the same cases as :func:`runner_command`); None (run ``dbt`` itself, no
    column capture) where it cannot, or where the command is not installed."""
    if runner_command(dbt_executable, environ) is None:
        return None
    script = Path(sys.executable).parent / RUNNER_SCRIPT
    return str(script) if script.is_file() and os.access(script, os.X_OK) else None


def exit_code(success: bool, exception: BaseException | None) -> int:
    """dbt's own exit codes: 0 success, 1 the command ran and something failed, 2 it could not."""
    if success:
        return 0
    return 1 if exception is None else 2


def _source_plan(path: str | None) -> SourcePlan | None:
    """The parent's plan of which sources to describe; None (sources left out) if unreadable."""
    if not path:
        return None
    try:
        return decode_plan(Path(path).read_bytes())
    except Exception:  # columns of sources are a nicety: never a reason for dbt not to run
        log.warning("floe: cannot read the source plan %s", path, exc_info=True)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dbt <argv>`` in this process; the exit code the ``dbt`` command would give."""
    if os.environ.get(WARM_ENV) == "1":  # started ahead of its command (floe_dbt.warm)
        command = wait_for_command()
        if command is None:
            return 0
        argv = command
    from dbt.cli.main import dbtRunner

    args = list(sys.argv[1:] if argv is None else argv)
    callbacks = relay_or_debug(os.environ)
    if os.environ.get(CAPTURE_COLUMNS_ENV) == "1":
        callbacks.append(ColumnCapture(_source_plan(os.environ.get(CAPTURE_SOURCES_ENV))))
    result = dbtRunner(callbacks=callbacks).invoke(args)
    if result.exception is not None and not isinstance(result.exception, KeyboardInterrupt):
        print(f"dbt: {result.exception}", file=sys.stderr)
    return exit_code(result.success, result.exception)


if __name__ == "__main__":
    sys.exit(main())
