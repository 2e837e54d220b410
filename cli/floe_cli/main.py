"""``floe``: the parser built from :data:`floe_cli.commands.COMMANDS`, and how errors end.

Errors users can fix are :class:`~floe_core.errors.FloeError` (a bad floe.yaml, missing compiled
artifacts or manifest, a failed ``dbt parse``, a selection that matches nothing...): one message
to stderr and exit status 2, without a traceback (``FLOE_DEBUG=1`` shows it). Anything else is a
bug in floe and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from floe_cli.commands import COMMANDS
from floe_core.errors import FloeError

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


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
    except FloeError as exc:
        if os.environ.get("FLOE_DEBUG"):
            raise
        print(f"floe {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP during `floe run`
        return 128 + getattr(exc, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
