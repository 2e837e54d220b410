"""``floe run``: the whole pipeline, headless, with its sidecar, in one command.

1. prepare: compile floe.yaml if it changed, write the dbt manifest if missing;
2. start ``floe-sidecar`` on ``.floe/spool`` with a socket (unless one already runs there);
3. materialize the selected assets through Dagster, in this process, on the instance in
   ``.floe/dagster`` (so `floe dev` shows the run), printing assets as they finish;
4. wait, within a bound, for the sidecar to deliver the run's events; stop it;
5. print a summary: assets, checks, lineage events, spans, log records and metric data points
   delivered or pending, where to look.

The exit code is the pipeline's: 0 when the run succeeded, 1 when it failed. Observability
endpoints never change it; what they did not take is reported and stays in the spool.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from floe_cli.children import Child
from floe_cli.delivery import DeliveryWait, wait_for_delivery
from floe_cli.display import show_path
from floe_cli.prepare import Prepared, ensure_dagster_home, prepare
from floe_cli.runlock import run_lock
from floe_cli.sidecar import (
    StatusQuery,
    read_status,
    sidecar_available,
    sidecar_child,
    socket_identity,
    socket_path,
    wait_for_socket,
)
from floe_core.artifacts import ARTIFACTS_ENV, CompiledArtifacts
from floe_core.layout import (
    CONFIG_FILE,
    LINEAGE_SINK,
    LOGS_SINK,
    METRICS_SINK,
    TRACES_SINK,
    ProjectPaths,
)
from floe_core.redaction import redact_url
from floe_core.status import SidecarStatus
from floe_core.transport import SOCKET_ENV, SPOOL_ENV
from floe_dagster.progress import RunTally
from floe_dbt import warm
from floe_dbt.runner import runner_command

if TYPE_CHECKING:
    from floe_dagster.run import Materialization

__all__ = ["RunOptions", "RunOutcome", "Stopped", "floe_run"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1


@dataclass(frozen=True)
class RunOptions:
    path: Path | str = CONFIG_FILE
    env: str | None = None
    select: str | None = None
    exclude: str | None = None
    wait_s: float = 30.0  # bound on waiting for the sidecar after the run


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    tally: RunTally
    delivery: DeliveryWait | None
    exit_code: int


def floe_run(options: RunOptions, out: IO[str] | None = None) -> RunOutcome:
    """Run the pipeline as described in the module docstring; print to ``out`` (stdout)."""
    stream = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    began = time.monotonic()
    with _stopped_like_ctrl_c(), run_lock(ProjectPaths.find(options.path)):
        return _run(options, say, began)


class Stopped(KeyboardInterrupt):
    """``floe run`` got SIGTERM or SIGHUP (a CI job cancelled, a terminal closed, ``kill``): it
    unwinds as after Ctrl-C, so the sidecar it started is stopped and the run lock released."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` for the time of the run (the default action
    ends the process at once and leaves its sidecar running, re-parented to init)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set on the main thread (floe run from a library)
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(options: RunOptions, say: Callable[[str], None], began: float) -> RunOutcome:
    prepared = prepare(options.path, options.env)
    paths, artifacts = prepared.paths, prepared.artifacts
    for action in prepared.actions:
        say(f"floe: {action}")
    say(
        f"floe run: {artifacts.name} (environment {artifacts.environment}, target "
        f"{artifacts.compute.target}) in {show_path(paths.root)}"
    )
    events_on = artifacts.observability.events
    _set_environment(paths, artifacts)
    _log_adapter_to_file(paths)

    # The sidecar this run started, from the moment it exists: a SIGTERM at any point after
    # (even while it is being waited for) unwinds through the ``finally`` that stops it.
    started: list[Child] = []
    before: SidecarStatus | None = None
    run_id = str(uuid.uuid4())
    try:
        # Each start below runs on a core of its own while this process imports Dagster and
        # builds the definitions; each is waited for only where its answer is needed.
        _start_dbt_ahead(artifacts)
        status = _ask_status(paths) if events_on else None
        import floe_dagster.assets  # noqa: F401  (the longest import of the run, meanwhile)
        from floe_dagster.run import plan_materialization

        starting: _Starting | None = None
        if events_on:
            before, starting = _start_sidecar(paths, say, started, status)
        else:
            say("floe: observability is off in floe.yaml (standalone): no events, no sidecar")
        plan = plan_materialization(prepared.artifacts, options.select, options.exclude)
        if starting is not None:
            _await_sidecar(paths, say, started, starting)
        success, tally = _materialize(prepared, plan, run_id, say)
        delivery = None
        if events_on:
            delivery = _await_delivery(paths, options.wait_s, say)
    finally:
        warm.discard_waiting()  # if the step never took it
        for sidecar in started:
            sidecar.stop(timeout=15.0)
    after = read_status(paths.spool) if events_on else None
    code = EXIT_OK if success else EXIT_PIPELINE_FAILED
    _summary(say, paths, run_id, success, tally, delivery, before, after, time.monotonic() - began)
    return RunOutcome(run_id, success, tally, delivery, code)


# --- steps -----------------------------------------------------------------------------------


def _set_environment(paths: ProjectPaths, artifacts: CompiledArtifacts) -> None:
    """What the in-process step reads: the instance, the artifacts, the spool."""
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(paths))
    os.environ[ARTIFACTS_ENV] = str(paths.artifacts)
    os.environ[SPOOL_ENV] = str(paths.spool)
    os.environ.pop(SOCKET_ENV, None)  # set again only once a sidecar listens


def _log_adapter_to_file(paths: ProjectPaths) -> None:
    """The adapter's JSON log lines go to ``.floe/logs/adapter.log``, not over the progress."""
    from floe_dagster.logs import configure_logging

    configure_logging(stream=private_log(paths.logs / "adapter.log"))


def _start_dbt_ahead(artifacts: CompiledArtifacts) -> None:
    """Start the dbt runner now, to import dbt while this process imports Dagster; the step
    takes it (``floe_dbt.warm``). Not where this interpreter cannot run dbt itself."""
    prefix = runner_command("dbt", os.environ)
    if prefix is None:
        return
    try:
        warm.start_waiting(
            prefix, os.environ, artifacts.dbt_project_path, artifacts.compute.adapter_type
        )
    except OSError:  # the step starts dbt itself, and says what is wrong if it cannot either
        return


def _ask_status(paths: ProjectPaths) -> StatusQuery | None:
    """The spool's status before the run, asked (None: the sidecar is not installed)."""
    if not sidecar_available():
        return None
    paths.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    return StatusQuery(paths.spool)


@dataclass(frozen=True)
class _Starting:
    """A sidecar started and not yet listening, and the socket that was there before it."""

    child: Child
    socket_before: tuple[int, int, int] | None


def _start_sidecar(
    paths: ProjectPaths,
    say: Callable[[str], None],
    started: list[Child],
    status: StatusQuery | None,
) -> tuple[SidecarStatus | None, _Starting | None]:
    """Start the project's sidecar (appended to ``started`` as it starts, for the caller to
    stop), unless one serves the project already; the spool's status before the run, and the
    sidecar to :func:`_await_sidecar` (None: none was started)."""
    if status is None:
        spool = show_path(paths.spool)
        say(
            "floe: the sidecar is not installed (install floe with the `sidecar` extra); events "
            f"stay in {spool} until `floe-sidecar --spool {spool}` runs"
        )
        return None, None
    before = status.result()
    socket = socket_path(paths)
    if before is not None and before.running:
        say(
            "floe: a sidecar already serves this project (floe dev?); it delivers this run's events"
        )
        if socket.is_socket():
            os.environ[SOCKET_ENV] = str(socket)
        return before, None
    child = sidecar_child(
        paths, socket=socket, env=os.environ, log_path=paths.logs / "sidecar.log", grace_s=2.0
    )
    starting = _Starting(child, socket_identity(socket))
    started.append(child)  # before it starts: stopping a child that never started does nothing
    child.start()
    return before, starting


def _await_sidecar(
    paths: ProjectPaths, say: Callable[[str], None], started: list[Child], starting: _Starting
) -> None:
    """Wait until the sidecar listens (the step then writes to its socket), or say why not."""
    child, socket = starting.child, socket_path(paths)
    if wait_for_socket(child, socket, before=starting.socket_before):
        os.environ[SOCKET_ENV] = str(socket)
        say(f"floe: sidecar started (pid {child.pid}, log {show_path(paths.logs / 'sidecar.log')})")
        return
    code = child.poll()
    state = f"exited with code {code}" if code is not None else "is not listening yet"
    say(
        f"floe: the sidecar {state} (see {show_path(paths.logs / 'sidecar.log')}); "
        f"events go to {show_path(paths.spool)}"
    )
    if code is not None:
        started.remove(child)  # it has ended: nothing to stop


def _materialize(
    prepared: Prepared, plan: Materialization, run_id: str, say: Callable[[str], None]
) -> tuple[bool, RunTally]:
    say(f"floe: materializing {plan.what}; Dagster run {run_id}")
    log_path = prepared.paths.logs / f"run-{run_id}.log"
    say(f"floe: dbt's output goes to {show_path(log_path)}")
    with private_log(log_path) as log:
        return plan.execute(run_id, say, log, tags={"floe/command": "floe run"})


def private_log(path: Path) -> IO[str]:
    """A log file only its owner reads (dbt's output can hold compiled SQL), opened to append."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


def _await_delivery(paths: ProjectPaths, wait_s: float, say: Callable[[str], None]) -> DeliveryWait:
    def waiting(status: SidecarStatus) -> None:
        pending = ", ".join(
            f"{s.name} {s.pending_events}" for s in status.sinks if s.pending_events
        )
        say(f"floe: waiting up to {wait_s:g}s for the sidecar to deliver ({pending} pending)")

    return wait_for_delivery(paths.spool, timeout_s=wait_s, on_wait=waiting)


# --- the summary -----------------------------------------------------------------------------


def _summary(
    say: Callable[[str], None],
    paths: ProjectPaths,
    run_id: str,
    success: bool,
    tally: RunTally,
    delivery: DeliveryWait | None,
    before: SidecarStatus | None,
    after: SidecarStatus | None,
    elapsed_s: float,
) -> None:
    verdict = "succeeded" if success else "FAILED"
    say("")
    say(f"floe run {verdict} in {elapsed_s:.1f}s (Dagster run {run_id})")
    assets = f"  assets: {len(tally.materialized)} materialized"
    missing = tally.not_materialized
    if missing:
        assets += f", {len(missing)} failed or skipped: {', '.join(missing)}"
    say(assets)
    checks = f"  checks: {tally.checks_passed} passed"
    if tally.checks_failed:
        checks += f", {len(tally.checks_failed)} failed: {', '.join(tally.checks_failed)}"
    say(checks)
    if tally.events_dropped:
        reason = f" ({_first_line(tally.events_drop_reason)})" if tally.events_drop_reason else ""
        say(
            f"  events: {tally.events_dropped} DROPPED by the adapter, neither the sidecar nor "
            f"the spool took them{reason}: they are lost, not delivered"
        )
    if delivery is None and after is None:
        return
    if after is None:
        say(
            f"  lineage and traces: no sidecar status (`floe-sidecar status --spool "
            f"{show_path(paths.spool)}` failed); see {show_path(paths.logs / 'sidecar.log')}"
        )
    for sink_name, label, unit, local in (
        (LINEAGE_SINK, "lineage", "events", paths.lineage_file),
        (TRACES_SINK, "traces", "spans", paths.traces_file),
        (LOGS_SINK, "logs", "log records", paths.logs_file),
        (METRICS_SINK, "metrics", "measurements", paths.metrics_file),
    ):
        now = after.sink(sink_name) if after else None
        if now is None:
            continue
        was = before.sink(sink_name) if before else None
        delivered = now.delivered - (was.delivered if was else 0)
        line = f"  {label}: {delivered} {unit} delivered"
        if now.pending_events:
            line += f", {now.pending_events} events PENDING"
            if now.last_error:
                line += f" (last error: {_first_line(now.last_error)})"
        line += f" -> {_destination(label, local)}"
        say(line)
    if delivery is not None:
        say(f"  waited {delivery.waited_s:.1f}s for the sidecar: {delivery.reason}")
    if after is not None and after.pending_events:
        spool = show_path(paths.spool)
        say(
            f"  pending events stay in {spool}; the next `floe run` or `floe dev` delivers "
            f"them, or now: floe-sidecar --spool {spool} --once"
        )
        say(f"  details: floe-sidecar status --spool {spool}")
    if after is not None and after.deadletter_records:
        say(f"  dead-letter: {after.deadletter_records} records in {after.deadletter}")
    say(
        f"  show: floe show lineage --run {run_id}   floe show traces --run {run_id}   "
        f"floe show logs --run {run_id}   floe show --html --run {run_id}"
    )


def _destination(label: str, local: Path) -> str:
    if label == "lineage":
        configured = os.environ.get("OPENLINEAGE_URL") or os.environ.get(
            "OPENLINEAGE__TRANSPORT__URL"
        )
    else:
        configured = os.environ.get(
            f"OTEL_EXPORTER_OTLP_{label.upper()}_ENDPOINT"
        ) or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if configured:
        return redact_url(configured)
    return show_path(local) if local.exists() else "the endpoint in floe.yaml"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
