"""A ``DbtCliResource`` that starts dbt without dagster-dbt's start-up tax.

``DbtCliResource.cli`` does two expensive things before dbt starts, on every step:

1. ``dbt --version`` in a subprocess (to tell dbt Core from Fusion): a full dbt start-up that
   imports every installed adapter plugin and asks the package index for the latest version.
2. ``_initialize_dbt_core_adapter``: loads the profile and project and registers a dbt adapter
   in the Dagster process, loading dbt's macros; only ``fetch_column_metadata`` /
   ``fetch_row_counts`` use that adapter, and floe uses neither.

:meth:`FloeDbtResource.start` keeps everything else of ``cli()`` (dagster-dbt's subset selection,
unique target path, partial-parse reuse, environment, ``DbtCliInvocation`` and its Dagster
events), takes the dbt version from the installed dbt-core package instead of a subprocess, and
creates no adapter. ``bench/materialize_bench.py`` measures the difference.

It can also hand every parsed dbt log line to a callback *before* dagster-dbt sees it, and keep
dbt's debug-level lines (needed for floe's node events) out of the Dagster compute log.

The dbt process it starts is ``python -m floe_dbt.runner`` (dbt's programmatic runner in this
interpreter: the same JSON lines and exit codes as the ``dbt`` command, plus, when asked, each
built relation's real columns; see :mod:`floe_dbt.runner`) where the dbt to run is this
interpreter's, else the ``dbt`` command as before.

Where the fast start is not available the public ``cli()`` starts the ``floe-dbt`` command (the
same runner; ``dbt_executable`` swapped on a copy of the resource), so the columns are captured
on that path too; plain ``dbt``, without them, if the command is not installed beside this
interpreter.

The fast start uses private dagster-dbt API (listed, with the versions tested, in
:mod:`floe_dagster.compat`). Where that API is missing or changed, :meth:`FloeDbtResource.start`
takes the public ``DbtCliResource.cli()`` instead, with one warning, and the run goes on.
"""

from __future__ import annotations

import os
import queue
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, DagsterExecutionInterruptedError, OpExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource
from packaging import version

from floe_core.fsutil import atomic_write
from floe_dagster import compat
from floe_dbt import warm
from floe_dbt.column_note import (
    CAPTURE_COLUMNS_ENV,
    CAPTURE_SOURCES_ENV,
    SourcePlan,
    encode_plan,
)
from floe_dbt.runner import RELAY_ENV, RUNNER_MODULE, runner_command, runner_executable

__all__ = [
    "DbtRun",
    "FloeDbtCliInvocation",
    "FloeDbtResource",
    "PublicDbtInvocation",
    "RawLineCallback",
    "dbt_arguments",
]

RawLineCallback = Callable[[Mapping[str, Any]], None]
DBT_INDIRECT_SELECTION_ENV = "DBT_INDIRECT_SELECTION"  # dbt's own variable


_END = object()  # the reader thread's last item


@dataclass
class FloeDbtCliInvocation(DbtCliInvocation):
    """A ``DbtCliInvocation`` whose parsed lines also go to ``on_raw_line``, as dbt writes them.

    With a callback, a dedicated thread reads dbt's stdout and calls it for each line at once;
    the lines then wait in a queue for dagster-dbt, which the step's thread drains. So floe's
    events never wait behind Dagster's handling of earlier events (writing materializations to
    the event log), which under load takes longer than dbt takes to finish a node.

    Debug-level lines are passed to the callback and then withheld from dagster-dbt, so the
    Dagster compute log shows what a plain run shows.
    """

    on_raw_line: RawLineCallback | None = field(default=None, repr=False)

    def _stream_stdout(self) -> Iterator[str | dict[str, Any]]:
        callback = self.on_raw_line
        if callback is None:
            yield from super()._stream_stdout()
            return
        lines: queue.SimpleQueue[object] = queue.SimpleQueue()
        failure: list[BaseException] = []

        def read() -> None:
            try:
                for raw in DbtCliInvocation._stream_stdout(self):
                    if isinstance(raw, dict):
                        callback(raw)
                    lines.put(raw)
            except BaseException as exc:  # handed to the step's thread below
                failure.append(exc)
            finally:
                lines.put(_END)

        reader = threading.Thread(target=read, name="floe-dbt-stdout", daemon=True)
        reader.start()
        try:
            while (raw := _next_line(lines)) is not _END:
                if isinstance(raw, dict) and _is_debug(raw):
                    continue
                yield raw  # type: ignore[misc]
        except DagsterExecutionInterruptedError:
            # What dagster-dbt does when reading in this thread: pass the interrupt on to dbt.
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=self.termination_timeout_seconds)
            raise
        reader.join()
        if failure:
            raise failure[0]


def _is_debug(raw: Mapping[str, Any]) -> bool:
    info = raw.get("info")
    return isinstance(info, dict) and info.get("level") == "debug"


class PublicDbtInvocation:
    """dagster-dbt's own invocation, started by the public ``cli()``, with floe's callback.

    The callback runs in the step's thread as dagster-dbt yields each line (there is no public
    way to read dbt's output first); debug-level lines go to the callback and not on to
    dagster-dbt's asset events. Everything else is the wrapped invocation's.
    """

    def __init__(
        self,
        invocation: DbtCliInvocation,
        on_raw_line: RawLineCallback | None,
        plan_file: Path | None = None,
    ) -> None:
        self.invocation = invocation
        self.on_raw_line = on_raw_line
        # The source plan written for the dbt process (removed when its output ends).
        self.plan_file = plan_file

    def __getattr__(self, name: str) -> Any:
        return getattr(self.invocation, name)

    def stream_raw_events(self) -> Iterator[Any]:
        callback = self.on_raw_line
        try:
            for event in self.invocation.stream_raw_events():
                raw = event.raw_event
                if callback is not None and isinstance(raw, dict):
                    callback(raw)
                    if _is_debug(raw):
                        continue
                yield event
        finally:
            _remove(self.plan_file)


def _write_plan(plan: SourcePlan) -> Path:
    """The source plan in a file of its own (cli() picks the target directory only later)."""
    fd, name = tempfile.mkstemp(prefix="floe-source-plan-", suffix=".json")
    with os.fdopen(fd, "wb") as file:
        file.write(encode_plan(plan))
    return Path(name)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


#: What :meth:`FloeDbtResource.start` returns: the fast invocation or the public one.
DbtRun = FloeDbtCliInvocation | PublicDbtInvocation


@contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in ``os.environ`` for the duration (``cli()`` copies it into dbt's environment)."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _next_line(lines: queue.SimpleQueue[object]) -> object:
    # A timeout keeps the wait interruptible, so Dagster's interrupts reach this thread.
    while True:
        try:
            return lines.get(timeout=0.5)
        except queue.Empty:
            continue


class FloeDbtResource(DbtCliResource):
    """dagster-dbt's resource, pointed at floe's generated profiles, with a fast :meth:`start`."""

    def start(
        self,
        args: Sequence[str],
        *,
        context: OpExecutionContext | AssetExecutionContext,
        env: Mapping[str, str] | None = None,
        on_raw_line: RawLineCallback | None = None,
        debug_lines: bool = False,
        every_debug_line: bool = False,
        capture_columns: bool = False,
        source_plan: SourcePlan | None = None,
        raise_on_error: bool = True,
    ) -> DbtRun:
        """Start ``dbt <args>`` for the assets selected in ``context``.

        ``env`` is added to dbt's environment; ``debug_lines`` makes dbt write the debug-level
        events floe reads to stdout (for ``on_raw_line``; they never reach dagster-dbt's asset
        events): relayed alone by the runner where it runs dbt (see ``floe_dbt.runner``), else
        with dbt's stdout at ``debug``; ``every_debug_line``: all of them, always that way.
        dbt runs through :mod:`floe_dbt.runner` (dbt's programmatic runner) where this
        interpreter has the dbt to run, else as the ``dbt`` command; ``capture_columns`` makes the
        runner hand the parent each built relation's real columns (see ``floe_dbt.column_note``),
        and those of the sources in ``source_plan`` as the first node that reads one finishes.
        """
        fast = compat.fast_start()
        cli_version = _installed_dbt_version()
        if fast is None or cli_version is None:
            compat.warn_public_path(context.log.warning)
            resource: DbtCliResource = self
            plan_file: Path | None = None
            # cli() starts an executable: floe's runner as the ``floe-dbt`` command, so the
            # columns are captured here too; plain ``dbt`` where that command cannot stand in.
            command = (
                runner_executable(self.dbt_executable, os.environ) if capture_columns else None
            )
            extra = {
                **(env or {}),
                **_debug_env(debug_lines, every_debug_line, relayed=command is not None),
            }
            if command is not None:
                resource = self.model_copy(update={"dbt_executable": command})
                extra[CAPTURE_COLUMNS_ENV] = "1"
                if source_plan is not None and source_plan.reads:
                    plan_file = _write_plan(source_plan)
                    extra[CAPTURE_SOURCES_ENV] = os.fspath(plan_file)
            try:
                with _environ(extra):
                    invocation = resource.cli(
                        list(args), context=context, raise_on_error=raise_on_error
                    )
            except BaseException:
                _remove(plan_file)
                raise
            return PublicDbtInvocation(invocation, on_raw_line, plan_file)
        cleaned_args, selects, excludes = fast.extract_runtime_selection_from_args(args)
        params = fast.get_updated_cli_invocation_params_for_context(
            context=context,
            manifest={},
            dagster_dbt_translator=DagsterDbtTranslator(),
            runtime_selects=selects,
            runtime_excludes=excludes,
        )
        target_path = self._get_unique_target_path(context=context)
        project_dir = Path(
            params.dbt_project.project_dir if params.dbt_project else self.project_dir
        )
        if not target_path.is_absolute():
            target_path = project_dir / target_path
        dbt_env = {
            **os.environ,
            "DAGSTER_DBT_CLI": "true",
            "PYTHONUNBUFFERED": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_LOG_FORMAT": "json",
            "DBT_TARGET_PATH": os.fspath(target_path),
            "DBT_LOG_PATH": os.fspath(target_path),
            **({"DBT_PROFILES_DIR": self.profiles_dir} if self.profiles_dir else {}),
            "DBT_PROJECT_DIR": str(project_dir),
            **(env or {}),
        }
        runner = runner_command(self.dbt_executable, dbt_env)
        dbt_env.update(_debug_env(debug_lines, every_debug_line, relayed=runner is not None))
        if runner is not None and capture_columns:
            dbt_env[CAPTURE_COLUMNS_ENV] = "1"
            if source_plan is not None and source_plan.reads:
                # A file in the step's own target directory: no size limit, gone with it.
                plan_path = target_path / "floe_source_plan.json"
                plan_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(plan_path, encode_plan(source_plan), durable=False)
                dbt_env[CAPTURE_SOURCES_ENV] = os.fspath(plan_path)
        if params.indirect_selection:
            dbt_env[DBT_INDIRECT_SELECTION_ENV] = params.indirect_selection
        profile_args: list[str] = []
        if self.profile:
            profile_args += ["--profile", self.profile]
        if self.target:
            profile_args += ["--target", self.target]
        argv = [
            *(runner or [self.dbt_executable]),
            *self.global_config_flags,
            *cleaned_args,
            *profile_args,
            *params.selection_args,
        ]
        # A runner ``floe run`` started ahead of this step has imported dbt already: handed to
        # dagster-dbt as the process it starts (see floe_dbt.warm), else dbt starts as before.
        waiting = (
            warm.take(argv, dbt_env, project_dir)
            if runner is not None and compat.can_hand_dbt_process()
            else None
        )
        handing = (
            compat.dbt_process_handed(argv, lambda: waiting.launch(argv, dbt_env, project_dir))
            if waiting is not None
            else nullcontext(lambda: False)
        )
        with handing as launched:
            invocation = FloeDbtCliInvocation.run(
                args=argv,
                env=dbt_env,
                manifest=params.manifest,
                dagster_dbt_translator=params.dagster_dbt_translator,
                project_dir=project_dir,
                target_path=target_path,
                raise_on_error=raise_on_error,
                context=context,
                adapter=None,
                cli_version=cli_version,
                dbt_project=params.dbt_project,
            )
        if waiting is not None and not launched():
            waiting.stop()  # dagster-dbt started something else: this one never ran
        assert isinstance(invocation, FloeDbtCliInvocation)
        invocation.on_raw_line = on_raw_line
        return invocation


def _debug_env(debug_lines: bool, every_debug_line: bool, *, relayed: bool) -> dict[str, str]:
    """How dbt is made to write the debug-level lines asked for: by floe's runner relaying the
    few floe reads (``relayed``: the runner runs dbt), or dbt's stdout at ``debug``."""
    if every_debug_line or (debug_lines and not relayed):
        return {"DBT_LOG_LEVEL": "debug"}
    return {RELAY_ENV: "1"} if debug_lines else {}


def dbt_arguments(process_args: Sequence[str]) -> tuple[str, ...]:
    """dbt's own arguments in the dbt process's command line (the runner's prefix left out)."""
    args = [str(a) for a in process_args]
    if len(args) >= 3 and args[1:3] == ["-m", RUNNER_MODULE]:
        return tuple(args[3:])
    return tuple(args[1:])


def _installed_dbt_version() -> version.Version | None:
    """dbt-core's version in this interpreter; None without it (the public path asks dbt)."""
    try:
        return version.parse(metadata.version("dbt-core"))
    except metadata.PackageNotFoundError:
        return None
