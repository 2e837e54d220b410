"""The sidecar's lifecycle: start the sources and one runner per sink, supervise, stop cleanly.

Start: take the spool's lock (one sidecar per spool), open the dead-letter file, start one runner
per sink, the socket intake (if any), the spool watcher and the housekeeping (status file,
segment retirement, and the health reports of the sinks that take them: the metrics sink).

Stop (SIGTERM/SIGINT, or ``--once`` having delivered everything): stop intake first (no new
lines; the intake segment is sealed), let every sink deliver what is already in the spool for at
most ``grace`` seconds, cut off whatever is still running (an abandoned ``deliver`` keeps its
batch un-acknowledged: it is delivered again next time), save every cursor, retire delivered
segments, write the final status, close the sinks (bounded), release the lock. A second signal
cuts the grace period short. With ``--handoff`` the spool is marked released just before the
lock goes, and with ``--adopt`` the housekeeping also takes over the spools of ended run pods
(both in :mod:`floe_sidecar.engine.handoff`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from floe_core.errors import FloeError, SpoolBusyError, UsageError
from floe_core.layout import STATE_DIR_NAME, SpoolLayout
from floe_core.spoolfs import open_under
from floe_core.status import HandoffStatus
from floe_sidecar.config import EngineOptions
from floe_sidecar.engine.deadletter import DeadLetter
from floe_sidecar.engine.handoff import Adopter, clear_released, mark_released
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.reader import SealedEnd
from floe_sidecar.engine.retention import retire_segments
from floe_sidecar.engine.runner import SinkRunner
from floe_sidecar.engine.status import (
    Health,
    IntakeHealth,
    SinkHealth,
    count_pending,
    pending_bytes,
    segment_files,
    spool_status,
    write_health,
)
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.engine.wakeup import Wakeup
from floe_sidecar.engine.worker import ThreadWorker
from floe_sidecar.sinks.base import Sink
from floe_sidecar.sources.socket import SocketIntake
from floe_sidecar.sources.spool_watch import watch_spool

__all__ = ["RunReport", "Sidecar", "SinkReport", "SpoolBusyError"]

log = logging.getLogger("floe_sidecar")

CLOSE_TIMEOUT = 5.0
#: While a sink is behind, consumed segments are retired at most this often (see _housekeeping).
RETIRE_WHILE_BEHIND_S = 10.0
#: The health report when the sidecar stops may hold up the exit this long at most.
FINAL_HEALTH_TIMEOUT = 2.0
LOCK_WAIT_S = 30.0


#: The lock file, relative to the spool (opened with no link followed).
LOCK_RELATIVE = f"{STATE_DIR_NAME}/lock"


def _unlinked(fd: int, path: Path) -> bool:
    """Is the file open as ``fd`` no longer the one at ``path``?"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    held = os.fstat(fd)
    return (st.st_ino, st.st_dev) != (held.st_ino, held.st_dev)


def _ignore_cancelled_reader_race() -> None:
    """Keep a known, harmless asyncio race out of the logs.

    When a connection's pending ``receive`` is cancelled (stopping the intake) in the same loop
    iteration as its socket turns readable, anyio's asyncio backend calls ``set_result`` on the
    already-cancelled future and asyncio logs "Exception in callback Future.set_result" with an
    ``InvalidStateError`` (anyio issue #1267). Nothing is lost: the line was not acknowledged.
    Only that exact case is silenced; every other loop error still reaches the default handler.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not the asyncio backend
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        handle = repr(context.get("handle", ""))
        if isinstance(exc, asyncio.InvalidStateError) and "set_result" in handle:
            log.debug("ignored a cancelled socket read racing with readiness (anyio #1267)")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


@dataclass(frozen=True)
class SinkReport:
    name: str
    delivered: int  # items, this run
    pending_events: int  # complete lines still ahead of its cursor
    pending_bytes: int
    last_error: str | None


@dataclass
class RunReport:
    sinks: list[SinkReport] = field(default_factory=list)
    deadlettered: int = 0  # records written this run
    cut_off: bool = False  # the grace period or --once timeout ended delivery

    @property
    def pending(self) -> bool:
        return any(s.pending_events for s in self.sinks)


class Sidecar:
    def __init__(self, options: EngineOptions, sinks: Sequence[Sink[Any]]) -> None:
        self.options = options
        self.layout = SpoolLayout(options.spool_dir, options.deadletter_path)
        self.sinks = list(sinks)
        self.wakeup = Wakeup()
        self.started_at = time.time()
        self.state = "starting"
        self.report = RunReport()
        self.deadletter: DeadLetter | None = None
        self.runners: list[SinkRunner] = []
        self.undeliverable: Undeliverable | None = None
        self.intake: SocketIntake | None = None
        self.adopter: Adopter | None = None
        self._lock_fd: int | None = None
        self._stop_requested = False
        self._tg: anyio.abc.TaskGroup | None = None
        # Sinks that report the sidecar's health (HealthObserver), on a daemon thread of their
        # own: a hung endpoint holds up neither delivery nor the exit.
        self.observers = [s for s in self.sinks if callable(getattr(s, "observe", None))]
        self._health_worker = ThreadWorker("health") if self.observers else None

    # -- public ----------------------------------------------------------------------------

    async def run(self) -> RunReport:
        """Run until stopped (or, with ``--once``, until everything is delivered)."""
        try:
            self._acquire_lock()
        except FloeError:
            raise
        except OSError as exc:  # a read-only spool, a full disk: say so, no traceback
            raise UsageError(
                f"{self.options.spool_dir}: the sidecar cannot take the spool "
                f"({exc.strerror or exc}); the spool and its .sidecar directory must be "
                "writable by this user"
            ) from None
        try:
            await self._run()
        finally:
            self._release_lock()
        return self.report

    # -- lifecycle -------------------------------------------------------------------------

    async def _run(self) -> None:
        _ignore_cancelled_reader_race()
        options = self.options
        self.layout.ensure()
        # The default dead-letter file is under the spool: a link there is never followed. An
        # explicit --dead-letter is the operator's own choice (even /dev/null).
        self.deadletter = DeadLetter(
            self.layout.deadletter, follow_symlinks=self.layout.deadletter_override is not None
        )
        self.undeliverable = Undeliverable(
            self.deadletter, self.layout.reported, options.max_line_bytes
        )
        self._build_consumers(self.undeliverable)
        if self.intake is not None:
            self.intake.bind()
        if self.adopter is not None:
            await self._adopt()  # what ended pods left is delivered from the start
        self._draining = anyio.Event()
        self._watch_stop = anyio.Event()
        self._consumers_scope = anyio.CancelScope()
        self._intake_scope = anyio.CancelScope()
        log.info(
            "sidecar starting",
            extra={
                "spool": str(options.spool_dir),
                "socket": str(options.socket_path) if options.socket_path else None,
                "sinks": ",".join(r.name for r in self.runners),
                "once": options.once,
            },
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await tg.start(self._handle_signals)  # in place before the status says running
                if self.intake is not None:
                    await tg.start(self._serve_intake)
                if options.watch and not options.once:
                    tg.start_soon(self._watch)
                tg.start_soon(self._housekeeping)
                if options.once:
                    self._draining.set()
                    if options.once_timeout is not None:
                        tg.start_soon(self._cut_off_after, options.once_timeout)
                self.state = "draining" if options.once else "running"
                self._write_status()
                await self._run_consumers()
                tg.cancel_scope.cancel()
        finally:
            await self._finish()

    def _build_consumers(self, undeliverable: Undeliverable) -> None:
        options = self.options
        layout = self.layout
        for sink in self.sinks:
            pipeline = SinkPipeline(
                sink,
                options.spool_dir,
                layout.cursor(sink.name),
                undeliverable,
                max_line_bytes=options.max_line_bytes,
                linger=options.linger,
            )
            self.runners.append(
                SinkRunner(
                    pipeline,
                    self.wakeup.subscribe(),
                    options.retry,
                    rescan_interval=options.rescan_interval,
                    stall_warning=options.stall_warning,
                )
            )
        if options.adopt_dir is not None:
            self.adopter = Adopter(
                options.adopt_dir,
                layout,
                [r.pipeline for r in self.runners],
                undeliverable,
                adopt_after=options.adopt_after,
            )
        if options.socket_path is not None and not options.once:
            self.intake = SocketIntake(
                options.socket_path,
                options.spool_dir,
                undeliverable,
                self.wakeup,
                group=options.socket_group,
                max_line_bytes=options.max_line_bytes,
                fsync=options.intake_fsync,
                segment_bytes=options.intake_segment_bytes,
                seal_after_idle=options.intake_seal_after_idle,
            )

    async def _run_consumers(self) -> None:
        with self._consumers_scope:
            async with anyio.create_task_group() as tg:
                for runner in self.runners:
                    tg.start_soon(self._supervise, runner)
        if self._consumers_scope.cancelled_caught:
            self.report.cut_off = True

    async def _supervise(self, runner: SinkRunner) -> None:
        """Keep a sink's runner going: an unexpected error (a bug) restarts it, alone, from its
        saved cursor, after a pause; the other sinks never notice."""
        pause = 1.0
        while True:
            try:
                await runner.run(self._draining)
                return
            except Exception as exc:
                cause = _sole_cause(exc)
                runner.stats.last_error = f"runner crashed: {type(cause).__name__}: {cause}"
                runner.stats.last_error_at = time.time()
                log.exception(
                    "sink runner failed unexpectedly; restarting it from its cursor",
                    extra={"sink": runner.name, "restart_in_s": pause},
                )
                await anyio.sleep(pause)
                pause = min(pause * 2, 30.0)
                runner.pipeline.rewind()

    async def _serve_intake(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        assert self.intake is not None
        with self._intake_scope:
            await self.intake.serve(task_status=task_status)

    async def _watch(self) -> None:
        await watch_spool(
            self.options.spool_dir,
            self.wakeup,
            self._watch_stop,
            step_ms=self.options.watch_step_ms,
            debounce_ms=self.options.watch_debounce_ms,
        )

    async def _handle_signals(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                self.stop(signal.Signals(signum).name)

    def stop(self, why: str = "stop requested") -> None:
        """Stop intake, then let the sinks drain for at most the grace period; called again,
        cut delivery short. Call it from the sidecar's event loop."""
        if self._tg is None:
            return
        if self._stop_requested:
            log.warning("stop requested again: cutting delivery short", extra={"reason": why})
            self._consumers_scope.cancel()
            return
        log.info(
            "stopping: intake closed, draining",
            extra={"reason": why, "grace_s": self.options.grace},
        )
        self._stop_requested = True
        self.state = "stopping"
        self._intake_scope.cancel()
        self._watch_stop.set()
        self._draining.set()
        self.wakeup.notify()
        self._tg.start_soon(self._cut_off_after, self.options.grace)

    async def _cut_off_after(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        if not self._consumers_scope.cancel_called:
            log.warning(
                "delivery cut off; what is left stays in the spool for the next run",
                extra={"after_s": seconds},
            )
            self._consumers_scope.cancel()

    async def _housekeeping(self) -> None:
        interval = min(self.options.rescan_interval, self.options.status_interval)
        health_every = min(
            (float(getattr(s, "health_interval", 60.0)) for s in self.observers), default=None
        )
        last_status = 0.0
        last_health = last_retire = time.monotonic()
        while True:
            await anyio.sleep(interval)
            # Delivery first: while a sink works through a backlog, its segments are retired at
            # most every RETIRE_WHILE_BEHIND_S (each unlink costs the file system ~0.1 ms, which
            # would slow the drain it competes with), and at once when every sink is caught up.
            caught_up = all(r.stats.caught_up for r in self.runners)
            if caught_up or time.monotonic() - last_retire >= RETIRE_WHILE_BEHIND_S:
                last_retire = time.monotonic()
                await anyio.to_thread.run_sync(self._retire)
            if self.adopter is not None and not self._stop_requested:
                await self._adopt()
            if time.monotonic() - last_status >= self.options.status_interval:
                last_status = time.monotonic()
                await anyio.to_thread.run_sync(self._write_status)
            if health_every is not None and time.monotonic() - last_health >= health_every:
                last_health = time.monotonic()
                await self._report_health(timeout=health_every)

    async def _report_health(self, timeout: float) -> None:
        """Hand the spool's status to each health observer (bounded; failures only logged)."""
        worker = self._health_worker
        if worker is None or worker.busy_since is not None:
            return  # the last report has not returned (a hung endpoint): skip this one
        try:
            status = await anyio.to_thread.run_sync(spool_status, self.layout)
        except OSError as exc:
            log.warning("cannot read the status for the health report", extra={"error": str(exc)})
            return
        for sink in self.observers:
            with anyio.move_on_after(timeout):
                try:
                    await worker.run(partial(sink.observe, status))  # type: ignore[attr-defined]
                except Exception as exc:
                    log.info(
                        "health report not delivered; the next one supersedes it",
                        extra={"sink": sink.name, "error": f"{type(exc).__name__}: {exc}"},
                    )

    async def _adopt(self) -> None:
        assert self.adopter is not None
        if await anyio.to_thread.run_sync(self.adopter.adopt_ready):
            self.wakeup.notify()

    def _retire(self) -> list[str]:
        positions = [r.pipeline.positions() for r in self.runners]
        sealed: dict[str, SealedEnd] = {}
        for runner in self.runners:  # sealing is the file's own state: any reader's word holds
            sealed.update(runner.pipeline.sealed_ends())
        retired = retire_segments(
            self.options.spool_dir,
            positions,
            archive_dir=self.options.archive_dir,
            sealed=sealed,
        )
        if self.undeliverable is not None:
            self.undeliverable.forget(retired)
            self.undeliverable.save_if_dirty()
        return retired

    async def _finish(self) -> None:
        """Save cursors, retire, report, close sinks: runs however the run ended."""
        with anyio.CancelScope(shield=True):
            self.state = "stopped"
            for runner in self.runners:
                try:
                    runner.pipeline.save_if_dirty()
                except OSError as exc:
                    log.error("cannot save cursor", extra={"sink": runner.name, "error": str(exc)})
            if self.undeliverable is not None:
                try:
                    self.undeliverable.save_if_dirty()
                except OSError as exc:
                    log.error("cannot save the dead-letter marks", extra={"error": str(exc)})
            try:
                self._retire()
            except OSError as exc:
                log.error("cannot retire segments", extra={"error": str(exc)})
            if self.options.handoff:
                self._release_for_handoff()
            self._write_status()
            if self.observers:
                await self._report_health(timeout=FINAL_HEALTH_TIMEOUT)
            self.report.sinks = [self._sink_report(r) for r in self.runners]
            if self.deadletter is not None:
                self.report.deadlettered = self.deadletter.count
            async with anyio.create_task_group() as tg:
                for runner in self.runners:
                    tg.start_soon(self._close_sink, runner)
            if self.deadletter is not None:
                self.deadletter.close()
            if self._health_worker is not None:
                self._health_worker.stop()
            log.info(
                "sidecar stopped",
                extra={
                    "delivered": sum(s.delivered for s in self.report.sinks),
                    "pending": sum(s.pending_events for s in self.report.sinks),
                    "dead_lettered": self.report.deadlettered,
                    "cut_off": self.report.cut_off,
                },
            )

    def _release_for_handoff(self) -> None:
        """Cursors are saved: the node's sidecar may take over what is left, at once."""
        spool = self.options.spool_dir
        pending = {r.name: count_pending(spool, r.pipeline.positions()).lines for r in self.runners}
        try:
            mark_released(self.layout)
        except OSError as exc:
            log.error(
                "cannot mark the spool released; the node's sidecar adopts it once idle",
                extra={"error": str(exc)},
            )
            return
        log.info(
            "spool released: the node's floe-sidecar takes over what is left",
            extra={"pending_events": max(pending.values(), default=0), "by_sink": pending},
        )

    async def _close_sink(self, runner: SinkRunner) -> None:
        with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            try:
                await runner.worker.run(runner.pipeline.close_sink)
            except Exception as exc:
                log.warning("sink close failed", extra={"sink": runner.name, "error": str(exc)})
        if scope.cancelled_caught:
            log.warning("sink close did not return; abandoned", extra={"sink": runner.name})
        runner.worker.stop()

    def _sink_report(self, runner: SinkRunner) -> SinkReport:
        pending = count_pending(self.options.spool_dir, runner.pipeline.positions())
        return SinkReport(
            name=runner.name,
            delivered=runner.stats.delivered,
            pending_events=pending.lines,
            pending_bytes=pending.bytes,
            last_error=runner.stats.last_error,
        )

    # -- status ----------------------------------------------------------------------------

    def health(self) -> Health:
        spool = self.options.spool_dir
        files = segment_files(spool)
        sinks = []
        for runner in self.runners:
            stats = runner.stats
            pipeline = runner.pipeline
            left, segments = pending_bytes(files, pipeline.positions())
            delivering = runner.delivering_for()
            sinks.append(
                SinkHealth(
                    name=runner.name,
                    delivered_total=pipeline.cursor.delivered,
                    delivered=stats.delivered,
                    batches=stats.batches,
                    failures=stats.failures,
                    consecutive_failures=stats.consecutive_failures,
                    rejected=stats.rejected,
                    gave_up=stats.gave_up,
                    dead_lettered=pipeline.dead_lettered,
                    last_error=stats.last_error,
                    last_error_at=stats.last_error_at,
                    last_delivery_at=stats.last_delivery_at,
                    delivering_for_s=None if delivering is None else round(delivering, 3),
                    pending_bytes=left,
                    pending_segments=segments,
                    caught_up=stats.caught_up,
                )
            )
        intake = None
        if self.intake is not None:
            s = self.intake.stats
            intake = IntakeHealth(
                socket=str(self.intake.path),
                connections=s.connections,
                open_connections=s.open_connections,
                lines=s.lines,
                oversized=s.oversized,
                fragments=s.fragments,
                write_errors=s.write_errors,
                accept_errors=s.accept_errors,
                shed=s.shed,
                idle_closed=s.idle_closed,
                buffered_bytes=s.buffered_bytes,
            )
        handoff = None
        if self.adopter is not None:
            a = self.adopter.stats
            handoff = HandoffStatus(
                directory=str(self.adopter.root),
                adopted_spools=a.adopted_spools,
                adopted_segments=a.adopted_segments,
                dropped_duplicates=a.dropped_duplicates,
                last_adopted_at=a.last_adopted_at,
                last_error=a.last_error,
                waiting=self.adopter.waiting(),
            )
        return Health(
            pid=os.getpid(),
            state=self.state,
            started_at=self.started_at,
            updated_at=time.time(),
            spool=str(spool),
            sinks=sinks,
            deadletter=str(self.layout.deadletter),
            deadletter_written=self.deadletter.count if self.deadletter else 0,
            deadletter_write_errors=self.deadletter.write_errors if self.deadletter else 0,
            intake=intake,
            handoff=handoff,
        )

    def _write_status(self) -> None:
        try:
            write_health(self.layout.status, self.health())
        except OSError as exc:
            log.warning("cannot write the status file", extra={"error": str(exc)})

    # -- single instance -------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        """One sidecar per spool. With ``handoff``, wait a little for the lock: the node's
        sidecar holds it for the moment it takes to adopt the spool of a restarting pod."""
        deadline = time.monotonic() + (LOCK_WAIT_S if self.options.handoff else 0.0)
        while True:
            self.layout.ensure()
            fd = open_under(self.layout.spool_dir, LOCK_RELATIVE, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise SpoolBusyError(
                    f"{self.options.spool_dir}: another floe-sidecar (pid {holder}) is serving "
                    "this spool; stop it first, or use another --spool"
                ) from None
            if _unlinked(fd, self.layout.lock):
                os.close(fd)  # the spool was adopted (and its state removed) meanwhile
                continue
            break
        if self.options.handoff:
            clear_released(self.layout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _sole_cause(exc: BaseException) -> BaseException:
    """The one error inside task-group wrappers, so the status names the bug, not the group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
