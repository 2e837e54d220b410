"""The ``floe`` command: compile, validate, schema (and commands other packages register).

Each subcommand is one :class:`Command` in :data:`COMMANDS`: a name, a help line, a function
adding its arguments and a function running it. A command implemented elsewhere (``floe run``,
``floe dev`` in floe_dagster) imports its package inside ``run``, so ``floe compile`` never
loads dagster.

Errors users can fix (a bad floe.yaml, a missing file, :class:`CliError`) print one message to
stderr and exit with status 2, without a traceback (``FLOE_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from floe_core.config import DEFAULT_CONFIG_FILE, FloeConfigError, config_schema_json

__all__ = ["COMMANDS", "CliError", "Command", "main"]

EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix; its message is printed as is."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_CONFIG_FILE,
        help="floe.yaml, or the directory holding it (default: ./floe.yaml)",
    )
    parser.add_argument(
        "--env", default=None, help="environment to compile for (default: default_environment)"
    )


def _compile_args(parser: argparse.ArgumentParser) -> None:
    _config_args(parser)
    parser.add_argument(
        "--output-dir",
        default=".floe",
        type=Path,
        help="where compiled_artifacts.json and profiles/ go (default: .floe)",
    )


def _run_compile(args: argparse.Namespace) -> int:
    from floe_dbt.compile import ARTIFACTS_FILE, compile_floe

    artifacts = compile_floe(args.path, args.env, args.output_dir)
    compute = artifacts.compute
    profiles = Path(artifacts.dbt_profiles_path)
    lines = [
        f"compiled {artifacts.source_path} for environment {artifacts.environment} "
        f"(target {compute.target}, auth {compute.auth_method})",
        f"  artifacts: {_show(args.output_dir.resolve() / ARTIFACTS_FILE)}",
        f"  profiles:  {_show(profiles / 'profiles.yml')} "
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
        f"  next: dbt build --project-dir {_show(Path(artifacts.dbt_project_path))} "
        f"--profiles-dir {_show(profiles)}"
    )
    print("\n".join(lines))
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from floe_dbt.compile import validate_floe

    artifacts = validate_floe(args.path, args.env)
    print(
        f"{artifacts.source_path} is valid for environment {artifacts.environment} "
        f"(target {artifacts.compute.target}, auth {artifacts.compute.auth_method}, "
        f"dbt project {_show(Path(artifacts.dbt_project_path))})"
    )
    return 0


def _run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(config_schema_json())
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
]


def _local_commands() -> list[Command]:
    """``floe prepare / run / dev / show``: floe_dagster.local.commands (imports no dagster)."""
    from floe_dagster.local.commands import ENTRIES

    return [Command(*entry) for entry in ENTRIES]


COMMANDS.extend(_local_commands())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floe", description="dbt projects as Dagster assets, with lineage and traces."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except (FloeConfigError, CliError, FileNotFoundError, PermissionError) as exc:
        if os.environ.get("FLOE_DEBUG"):
            raise
        print(f"floe {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _show(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
