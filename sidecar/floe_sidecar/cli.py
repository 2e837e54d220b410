"""``floe-sidecar``: run the sidecar, replay spool files, show its status.

    floe-sidecar --spool DIR [--socket PATH] [--artifacts PATH] [--once] [--sink SPEC]...
                 [--handoff | --adopt DIR]
    floe-sidecar replay FILE... [--to console|file] [--output PATH]
    floe-sidecar status --spool DIR [--json]

Defaults come from FLOE_SPOOL_DIR, FLOE_SOCKET and FLOE_ARTIFACTS.

Exit codes: 0 ok (a stop by SIGTERM/SIGINT included); 1 ``--once`` left events pending (listed on
stderr); 2 bad usage or configuration, any :class:`~floe_core.errors.FloeError` (the message names
the option, file or sink; anything else is a bug and shows its traceback); 3 ``--once``
delivered everything but some lines or items went to the dead-letter file during the run.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from floe_core.artifacts import ARTIFACTS_ENV, load_artifacts
from floe_core.errors import FloeError, UsageError
from floe_core.layout import DEFAULT_ARTIFACTS_PATH, DEFAULT_SPOOL_DIR, SpoolLayout
from floe_core.status import encode_status
from floe_core.transport import MAX_LINE_BYTES, SOCKET_ENV, SPOOL_ENV
from floe_sidecar.app import RunReport, Sidecar
from floe_sidecar.config import (
    EngineOptions,
    SinkConfigError,
    SinkSpec,
    build_sinks,
    parse_sink_spec,
)
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.engine.status import render_status, spool_status
from floe_sidecar.logs import setup_logging
from floe_sidecar.replay import replay_files
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Sink

__all__ = ["main"]

EXIT_OK = 0
EXIT_PENDING = 1
EXIT_USAGE = 2
EXIT_DEADLETTERED = 3


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must not be negative")
    return value


def _sink_spec(text: str) -> SinkSpec:
    try:
        return parse_sink_spec(text)
    except SinkConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_sink_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sinks")
    group.add_argument(
        "--artifacts",
        type=Path,
        default=os.environ.get(ARTIFACTS_ENV),
        help=f"compiled_artifacts.json the built-in sinks read (default: ${ARTIFACTS_ENV}, "
        f"else {DEFAULT_ARTIFACTS_PATH} when it exists)",
    )
    group.add_argument(
        "--output-dir",
        type=Path,
        help="where built-in sinks write when no endpoint is configured "
        "(default: the spool's parent)",
    )
    group.add_argument(
        "--sink",
        dest="sinks",
        action="append",
        default=[],
        type=_sink_spec,
        metavar="SPEC",
        help="an extra sink: console | file:PATH | python:MODULE:FACTORY, optionally NAME=SPEC; "
        "repeatable. python: imports MODULE and calls FACTORY(settings) -> sink or None",
    )
    group.add_argument(
        "--no-default-sinks",
        action="store_true",
        help="only the sinks given with --sink (not the built-in OpenLineage/trace outputs)",
    )
    logs = parser.add_argument_group("logs (stderr)")
    logs.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    logs.add_argument(
        "--log-format",
        default="json",
        choices=["json", "text"],
        help="json: one object per line (default); text: for a terminal",
    )


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floe-sidecar",
        description="Deliver floe events from the spool (and socket) to every configured sink. "
        "Subcommands: `floe-sidecar replay FILE...`, `floe-sidecar status --spool DIR`.",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        default=Path(os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL_DIR),
        help=f"spool directory (default: ${SPOOL_ENV}, else {DEFAULT_SPOOL_DIR})",
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=os.environ.get(SOCKET_ENV) or None,
        help=f"Unix socket to accept events on (default: ${SOCKET_ENV}; none: spool only)",
    )
    parser.add_argument(
        "--socket-group", help="share the socket with this group (0660) instead of owner-only"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="deliver what is in the spool, then exit: 0 if everything was delivered",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        help="with --once: give up after this many seconds, leaving the rest pending",
    )
    parser.add_argument(
        "--grace",
        type=_positive,
        default=10.0,
        help="seconds sinks may keep delivering after SIGTERM/SIGINT (default 10)",
    )
    parser.add_argument(
        "--archive", type=Path, help="move delivered segments here instead of deleting them"
    )
    parser.add_argument(
        "--dead-letter",
        type=Path,
        help="dead-letter file (default: SPOOL/.sidecar/deadletter.ndjson)",
    )
    handoff = parser.add_argument_group(
        "hand-off between a run pod's sidecar and the node's (see docs/scale.md)"
    )
    handoff.add_argument(
        "--handoff",
        action="store_true",
        help="this spool is a run pod's, on a node volume whose floe-sidecar runs with --adopt: "
        "at a clean stop, mark it released so that sidecar takes over what is left at once",
    )
    handoff.add_argument(
        "--adopt",
        type=Path,
        metavar="DIR",
        help="take over and deliver the spools that ended run pods left in DIR/*/spool "
        "(their sidecar released them, or died and they stayed idle for --adopt-after)",
    )
    handoff.add_argument(
        "--adopt-after",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="with --adopt: take over an unreleased spool once nothing has held or changed it "
        "for this long (default 30)",
    )
    retry = parser.add_argument_group("retries (default: back off from 0.5 s to 30 s, forever)")
    retry.add_argument("--retry-initial", type=_positive, default=0.5, metavar="SECONDS")
    retry.add_argument("--retry-max", type=_positive, default=30.0, metavar="SECONDS")
    retry.add_argument(
        "--give-up-after",
        type=_positive,
        metavar="SECONDS",
        help="dead-letter a batch that has failed for this long (default: never give up)",
    )
    retry.add_argument(
        "--give-up-attempts",
        type=int,
        metavar="N",
        help="dead-letter a batch after N failed attempts (default: never give up)",
    )
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument("--linger-ms", type=_positive, default=2.0)
    tuning.add_argument(
        "--rescan-interval",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="look at the spool at least this often, notified or not (default 1)",
    )
    tuning.add_argument(
        "--no-watch",
        action="store_true",
        help="do not watch the spool for changes (file systems without inotify, e.g. NFS); "
        "new lines are then found by the rescan alone",
    )
    tuning.add_argument("--status-interval", type=_positive, default=2.0, metavar="SECONDS")
    tuning.add_argument("--max-line-bytes", type=int, default=MAX_LINE_BYTES)
    tuning.add_argument(
        "--intake-fsync",
        action="store_true",
        help="fsync received lines before acknowledging them (survives a machine crash)",
    )
    tuning.add_argument("--stall-warning", type=_positive, default=30.0, metavar="SECONDS")
    _add_sink_options(parser)
    return parser


def _replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floe-sidecar replay",
        description="Show what spool files turn into through each configured sink's "
        "translation. Touches no cursor and delivers nothing.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--to", choices=["console", "file"], default="console")
    parser.add_argument("--output", type=Path, help="with --to file: where to write (NDJSON)")
    parser.add_argument("--max-line-bytes", type=int, default=MAX_LINE_BYTES)
    _add_sink_options(parser)
    return parser


def _status_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floe-sidecar status",
        description="Per sink: delivered, pending (events and bytes), oldest pending age, "
        "last error. Works whether or not the sidecar runs.",
    )
    parser.add_argument(
        "--spool", type=Path, default=Path(os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL_DIR)
    )
    parser.add_argument(
        "--dead-letter",
        type=Path,
        default=None,
        help="the dead-letter file the sidecar was started with (default: the one its status "
        "file names, else <spool>/.sidecar/deadletter.ndjson)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _settings(args: argparse.Namespace, spool: Path) -> SidecarSettings:
    artifacts = None
    path: Path | None = args.artifacts
    if path is None and Path(DEFAULT_ARTIFACTS_PATH).is_file():
        path = Path(DEFAULT_ARTIFACTS_PATH)
    if path is not None:
        artifacts = load_artifacts(path)
    return SidecarSettings(
        spool_dir=spool,
        socket_path=getattr(args, "socket", None),
        artifacts=artifacts,
        environ=dict(os.environ),
        output_dir=args.output_dir,
    )


def _sinks(args: argparse.Namespace, settings: SidecarSettings) -> list[Sink[Any]]:
    return build_sinks(settings, args.sinks, builtin=not args.no_default_sinks)


def _run(args: argparse.Namespace) -> int:
    if args.once and args.socket is not None and os.environ.get(SOCKET_ENV) != str(args.socket):
        raise UsageError("--once reads the spool only; drop --socket")
    if args.timeout is not None and not args.once:
        raise UsageError("--timeout applies to --once only")
    if args.max_line_bytes < 1:
        raise UsageError("--max-line-bytes must be at least 1")
    try:
        retry = RetryPolicy(
            initial_delay=args.retry_initial,
            max_delay=max(args.retry_max, args.retry_initial),
            give_up_attempts=args.give_up_attempts,
            give_up_after=args.give_up_after,
        )
    except ValueError as exc:
        raise UsageError(f"retry options: {exc}") from None
    spool: Path = args.spool
    if args.adopt is not None:
        adopt = args.adopt.resolve()
        if spool.resolve() == adopt or spool.resolve().is_relative_to(adopt):
            raise UsageError(
                f"--adopt {args.adopt}: the sidecar's own --spool {spool} must not be in it; "
                "give the node's sidecar a spool of its own next to it"
            )
    settings = _settings(args, spool)
    sinks = _sinks(args, settings)
    if not sinks:
        raise UsageError(
            "no sink is configured: the built-in outputs are switched off and no --sink was "
            "given, so events would only pile up in the spool"
        )
    options = EngineOptions(
        spool_dir=spool,
        socket_path=None if args.once else args.socket,
        socket_group=args.socket_group,
        archive_dir=args.archive,
        deadletter_path=args.dead_letter,
        once=args.once,
        once_timeout=args.timeout,
        grace=args.grace,
        retry=retry,
        rescan_interval=args.rescan_interval,
        linger=args.linger_ms / 1000,
        watch=not args.no_watch,
        status_interval=args.status_interval,
        max_line_bytes=args.max_line_bytes,
        intake_fsync=args.intake_fsync,
        stall_warning=args.stall_warning,
        handoff=args.handoff,
        adopt_dir=args.adopt,
        adopt_after=args.adopt_after,
    )
    sidecar = Sidecar(options, sinks)
    report = anyio.run(sidecar.run)
    if not args.once:
        return EXIT_OK
    return _once_outcome(report)


def _once_outcome(report: RunReport) -> int:
    for sink in report.sinks:
        state = "all delivered" if not sink.pending_events else "PENDING"
        line = (
            f"floe-sidecar --once: sink {sink.name}: {state}: delivered {sink.delivered}, "
            f"pending {sink.pending_events} events ({sink.pending_bytes} bytes)"
        )
        if sink.pending_events and sink.last_error:
            line += f"; last error: {sink.last_error}"
        print(line, file=sys.stderr)
    if report.deadlettered:
        print(
            f"floe-sidecar --once: {report.deadlettered} records written to the dead-letter file",
            file=sys.stderr,
        )
    if report.pending:
        return EXIT_PENDING
    return EXIT_DEADLETTERED if report.deadlettered else EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    if args.to == "file" and args.output is None:
        raise UsageError("--to file needs --output PATH")
    for path in args.files:
        _check_replayable(path)
    settings = _settings(args, args.files[0].parent)
    sinks = _sinks(args, settings)
    if args.to == "file":
        with args.output.open("wb") as out:
            summary = replay_files(args.files, sinks, out, max_line_bytes=args.max_line_bytes)
    else:
        summary = replay_files(
            args.files, sinks, sys.stdout.buffer, max_line_bytes=args.max_line_bytes
        )
    print(
        f"replay: {summary.lines} lines, {summary.events} events, {summary.items} items, "
        f"{summary.errors} errors",
        file=sys.stderr,
    )
    return EXIT_OK


def _check_replayable(path: Path) -> None:
    """A regular file or a pipe (``<(zcat ...)``) can be replayed; say plainly what else is not."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path} is a directory; give the segment files in it ({path}/*.ndjson)")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise UsageError(f"{path} is neither a regular file nor a pipe; nothing to replay")


def _status(args: argparse.Namespace) -> int:
    if not args.spool.is_dir():
        raise UsageError(f"{args.spool}: no such spool directory")
    status = spool_status(SpoolLayout(args.spool, deadletter_override=args.dead_letter))
    if args.json:
        sys.stdout.buffer.write(encode_status(status))
        sys.stdout.flush()
    else:
        print(render_status(status))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in {"replay", "status", "run"} else "run"
    if argv and argv[0] == command:
        argv = argv[1:]
    parser = {"run": _run_parser, "replay": _replay_parser, "status": _status_parser}[command]()
    args = parser.parse_args(argv)
    if command != "status":
        setup_logging(args.log_level, args.log_format)
    try:
        if command == "replay":
            return _replay(args)
        if command == "status":
            return _status(args)
        return _run(args)
    except FloeError as exc:  # a problem the user can fix; anything else is a bug: traceback
        print(f"floe-sidecar: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
