"""Every ``floe`` subcommand: its name, help line, arguments and what it runs.

Importing this module is cheap (no dagster, no dbt): each ``_run_*`` function imports what it
needs when the command runs, so ``floe compile`` never loads dagster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from floe_cli.args import add_config_path, add_environment, non_negative_seconds, tcp_port
from floe_cli.display import show_path
from floe_core.config import config_schema_json
from floe_core.layout import (
    ARTIFACTS_FILE,
    FLOE_DIR,
    LINEAGE_FILE,
    LOGS_FILE,
    PAGES_DIR,
    PROFILES_DIR,
    TRACES_FILE,
)

__all__ = ["COMMANDS", "Command"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _project_args(parser: argparse.ArgumentParser) -> None:
    add_config_path(parser)
    add_environment(parser, "run")


# --- floe compile / validate / schema --------------------------------------------------------


def _config_args(parser: argparse.ArgumentParser) -> None:
    add_config_path(parser)
    add_environment(parser, "compile for")


def _compile_args(parser: argparse.ArgumentParser) -> None:
    _config_args(parser)
    parser.add_argument(
        "--output-dir",
        default=FLOE_DIR,
        type=Path,
        help=f"where {ARTIFACTS_FILE} and {PROFILES_DIR}/ go (default: {FLOE_DIR})",
    )


def _run_compile(args: argparse.Namespace) -> int:
    from floe_core.layout import PROFILES_FILE
    from floe_dbt.compile import compile_floe

    artifacts = compile_floe(args.path, args.env, args.output_dir)
    compute = artifacts.compute
    profiles = Path(artifacts.dbt_profiles_path)
    lines = [
        f"compiled {artifacts.source_path} for environment {artifacts.environment} "
        f"(target {compute.target}, auth {compute.auth_method})",
        f"  artifacts: {show_path(args.output_dir.resolve() / ARTIFACTS_FILE)}",
        f"  profiles:  {show_path(profiles / PROFILES_FILE)} "
        f"(profile {artifacts.dbt_profile_name}, target {artifacts.dbt_target_name})",
    ]
    if compute.secret_env_vars:
        lines.append("  credentials from: " + ", ".join(compute.secret_env_vars))
    if not Path(artifacts.dbt_manifest_path).is_file():
        lines.append(
            "  no dbt manifest yet: column classifications are read once it exists "
            "(dbt parse, compile or build writes it; then compile again)"
        )
    lines.append(
        f"  next: dbt build --project-dir {show_path(Path(artifacts.dbt_project_path))} "
        f"--profiles-dir {show_path(profiles)}"
    )
    print("\n".join(lines))
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from floe_dbt.compile import validate_floe

    artifacts = validate_floe(args.path, args.env)
    print(
        f"{artifacts.source_path} is valid for environment {artifacts.environment} "
        f"(target {artifacts.compute.target}, auth {artifacts.compute.auth_method}, "
        f"dbt project {show_path(Path(artifacts.dbt_project_path))})"
    )
    return 0


def _run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(config_schema_json())
    return 0


# --- floe prepare ----------------------------------------------------------------------------


def _run_prepare(args: argparse.Namespace) -> int:
    from floe_cli.prepare import prepare

    prepared = prepare(args.path, args.env)
    for line in prepared.actions or ("already prepared: nothing to do",):
        print(f"floe prepare: {line}")
    return 0


# --- floe run --------------------------------------------------------------------------------


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
        type=non_negative_seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for the sidecar to deliver the run's events (default: 30); "
        "undelivered events stay in the spool",
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help=f"write the run's page (lineage graph, columns, span waterfall) and say where "
        f"({FLOE_DIR}/{PAGES_DIR}/run-<run id>.html)",
    )


def _run_run(args: argparse.Namespace) -> int:
    from floe_cli.run import RunOptions, floe_run
    from floe_core.errors import NothingToShow

    options = RunOptions(
        path=args.path, env=args.env, select=args.select, exclude=args.exclude, wait_s=args.wait
    )
    outcome = floe_run(options)
    if args.html:
        try:
            _write_page(args.path, outcome.run_id, None, "floe run")
        except NothingToShow as exc:  # the run's outcome stands; say why there is no page
            print(f"floe run: no page written: {exc}", file=sys.stderr)
    return outcome.exit_code


def _write_page(path: str, run_id: str | None, output: Path | None, command: str) -> None:
    """Write a run's page and print where; :class:`RunNotFound` when there is no such run."""
    from floe_cli.runpage import RunFiles, write_run_page
    from floe_core.layout import ProjectPaths

    paths = ProjectPaths.find(path)
    files = RunFiles(
        lineage=paths.lineage_file,
        traces=paths.traces_file,
        spool=paths.spool,
        artifacts=paths.artifacts,
        cwd=paths.root,
    )
    written = write_run_page(files, run_id, output, paths.floe_dir)
    for note in written.notes:
        print(f"{command}: warning: {note}", file=sys.stderr)
    model = written.model
    print(
        f"{command}: the page of run {model.run_id} ({len(model.datasets)} datasets, "
        f"{len(model.spans)} spans) is at {show_path(written.path)}"
    )


# --- floe dev --------------------------------------------------------------------------------


def _configure_dev(parser: argparse.ArgumentParser) -> None:
    _project_args(parser)
    parser.add_argument(
        "-H", "--host", default="127.0.0.1", help="webserver host (default: 127.0.0.1)"
    )
    parser.add_argument(
        "-p", "--port", type=tcp_port, default=3000, help="webserver port (default: 3000)"
    )


def _run_dev(args: argparse.Namespace) -> int:
    from floe_cli.dev import DevOptions, floe_dev

    options = DevOptions(path=args.path, env=args.env, host=args.host, port=args.port)
    return floe_dev(options)


# --- floe show -------------------------------------------------------------------------------


SHOW_WHAT = ("lineage", "traces", "logs")


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="?",
        metavar="{lineage,traces,logs}",
        help="lineage events, the span waterfall or the log lines, as text (or --html: one page "
        "with lineage and spans)",
    )
    parser.add_argument(
        "--run",
        help="Dagster run id, or a unique prefix of it (default: the latest run in the files)",
    )
    parser.add_argument(
        "--node", help="logs: only this dbt node's lines (its unique id, or its name)"
    )
    add_config_path(parser)
    parser.add_argument(
        "--file",
        type=Path,
        help=(
            f"read this file instead of {FLOE_DIR}/{LINEAGE_FILE}, {FLOE_DIR}/{TRACES_FILE} "
            f"or {FLOE_DIR}/{LOGS_FILE}"
        ),
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="write one self-contained HTML page of the run: lineage graph, column lineage, "
        "span waterfall (from the local files and the spool's undelivered events)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help=f"with --html: where to write the page "
        f"(default: {FLOE_DIR}/{PAGES_DIR}/run-<run id>.html)",
    )


def _run_show(args: argparse.Namespace) -> int:
    from floe_cli.errors import CliError
    from floe_cli.show import show_lineage, show_logs, show_traces
    from floe_core.config import DEFAULT_CONFIG_FILE
    from floe_core.layout import ProjectPaths

    if args.what is not None and args.what not in SHOW_WHAT:
        if args.path != DEFAULT_CONFIG_FILE:
            raise CliError(f"show {args.what!r}? choose from {', '.join(SHOW_WHAT)}")
        args.what, args.path = None, args.what  # `floe show --html PATH`: the one positional
    if args.html:
        if args.what or args.file:
            raise CliError(
                "--html writes one page from all of a run's local files: drop "
                + ("`" + args.what + "`" if args.what else "--file")
            )
        _write_page(args.path, args.run, args.output, "floe show")
        return 0
    if args.what is None:
        raise CliError(
            "say what to show: `floe show lineage`, `floe show traces`, `floe show logs` "
            "or `--html`"
        )
    if args.output is not None:
        raise CliError("-o/--output goes with --html")
    if args.node and args.what != "logs":
        raise CliError("--node goes with `floe show logs` only")
    paths = ProjectPaths.find(args.path)
    if args.what == "lineage":
        show_lineage(args.file or paths.lineage_file, args.run, sys.stdout)
    elif args.what == "logs":
        show_logs(args.file or paths.logs_file, args.run, args.node, sys.stdout)
    else:
        show_traces(args.file or paths.traces_file, args.run, sys.stdout)
    return 0


COMMANDS: list[Command] = [
    Command(
        "compile",
        "write compiled_artifacts.json and the dbt profiles.yml from floe.yaml",
        _compile_args,
        _run_compile,
    ),
    Command(
        "validate",
        "check floe.yaml and its dbt project; write nothing",
        _config_args,
        _run_validate,
    ),
    Command(
        "schema", "print the JSON Schema of floe.yaml (for editors)", lambda p: None, _run_schema
    ),
    Command(
        "prepare",
        "compile floe.yaml if it changed, write the dbt manifest if missing or stale (images, CI)",
        _project_args,
        _run_prepare,
    ),
    Command(
        "run",
        "materialize the assets headless, with the sidecar; wait (bounded) for lineage and traces",
        _configure_run,
        _run_run,
    ),
    Command(
        "dev",
        "the Dagster UI (webserver + daemon) and the sidecar, supervised together",
        _configure_dev,
        _run_dev,
    ),
    Command(
        "show",
        "a run's lineage, span waterfall or log lines from the local files under .floe/, or one "
        "HTML page",
        _configure_show,
        _run_show,
    ),
]
