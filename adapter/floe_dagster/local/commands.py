"""The `floe` subcommands that run things: prepare, run, dev, show.

``floe_dbt.cli`` registers :data:`ENTRIES` as its commands. Importing this module is cheap (no
dagster, no dbt): each ``run_*`` function imports what it needs when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENTRIES"]


def _path_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default="floe.yaml",
        help="floe.yaml, or the directory holding it (default: ./floe.yaml)",
    )


def _project_args(parser: argparse.ArgumentParser) -> None:
    _path_arg(parser)
    parser.add_argument(
        "--env", default=None, help="environment to run (default: default_environment)"
    )


def _usage_errors(action: Callable[[], int]) -> int:
    """Turn a failed preparation into the one-message error the CLI prints."""
    from floe_dbt.cli import CliError

    try:
        return action()
    except RuntimeError as exc:  # `dbt parse` failed: its output is in the message
        raise CliError(str(exc)) from None
    except ValueError as exc:
        from floe_core.config import FloeConfigError

        if isinstance(exc, FloeConfigError):
            raise
        raise CliError(str(exc)) from None


# --- floe prepare ----------------------------------------------------------------------------


def _run_prepare(args: argparse.Namespace) -> int:
    from floe_dagster.local.prepare import prepare

    def action() -> int:
        prepared = prepare(args.path, args.env)
        for line in prepared.actions or ("already prepared: nothing to do",):
            print(f"floe prepare: {line}")
        return 0

    return _usage_errors(action)


# --- floe run --------------------------------------------------------------------------------


def _wait_seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _configure_run(parser: argparse.ArgumentParser) -> None:
    _project_args(parser)
    parser.add_argument(
        "-s",
        "--select",
        help="dbt selection of the assets to materialize, e.g. 'stg_orders+' (default: all)",
    )
    parser.add_argument("--exclude", help="dbt selection to leave out")
    parser.add_argument(
        "--wait",
        type=_wait_seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for the sidecar to deliver the run's events (default: 30); "
        "undelivered events stay in the spool",
    )


def _run_run(args: argparse.Namespace) -> int:
    from floe_dagster.local.run import RunOptions, floe_run

    options = RunOptions(
        path=args.path, env=args.env, select=args.select, exclude=args.exclude, wait_s=args.wait
    )
    return _usage_errors(lambda: floe_run(options).exit_code)


# --- floe dev --------------------------------------------------------------------------------


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("a TCP port: 1-65535")
    return value


def _configure_dev(parser: argparse.ArgumentParser) -> None:
    _project_args(parser)
    parser.add_argument(
        "-H", "--host", default="127.0.0.1", help="webserver host (default: 127.0.0.1)"
    )
    parser.add_argument(
        "-p", "--port", type=_port, default=3000, help="webserver port (default: 3000)"
    )


def _run_dev(args: argparse.Namespace) -> int:
    from floe_dagster.local.dev import DevOptions, floe_dev

    options = DevOptions(path=args.path, env=args.env, host=args.host, port=args.port)
    return _usage_errors(lambda: floe_dev(options))


# --- floe show -------------------------------------------------------------------------------


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", choices=["lineage", "traces"], help="lineage events or the span waterfall"
    )
    parser.add_argument("--run", help="Dagster run id (default: the latest run in the file)")
    _path_arg(parser)
    parser.add_argument(
        "--file",
        type=Path,
        help="read this file instead of .floe/lineage/openlineage.ndjson "
        "or .floe/traces/otlp-traces.jsonl",
    )


def _run_show(args: argparse.Namespace) -> int:
    from floe_dagster.local.prepare import ProjectPaths
    from floe_dagster.local.show import NothingToShow, show_lineage, show_traces
    from floe_dbt.cli import CliError

    paths = ProjectPaths.find(args.path)
    try:
        if args.what == "lineage":
            show_lineage(args.file or paths.lineage_file, args.run, sys.stdout)
        else:
            show_traces(args.file or paths.traces_file, args.run, sys.stdout)
    except NothingToShow as exc:
        raise CliError(str(exc)) from None
    return 0


ENTRIES: list[
    tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = [
    (
        "prepare",
        "compile floe.yaml if it changed, write the dbt manifest if missing or stale (images, CI)",
        _project_args,
        _run_prepare,
    ),
    (
        "run",
        "materialize the assets headless, with the sidecar; wait (bounded) for lineage and traces",
        _configure_run,
        _run_run,
    ),
    (
        "dev",
        "the Dagster UI (webserver + daemon) and the sidecar, supervised together",
        _configure_dev,
        _run_dev,
    ),
    (
        "show",
        "a run's lineage or span waterfall from the local files under .floe/",
        _configure_show,
        _run_show,
    ),
]
