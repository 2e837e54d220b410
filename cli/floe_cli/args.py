"""Arguments several ``floe`` subcommands share, defined once."""

from __future__ import annotations

import argparse

from floe_core.config import DEFAULT_CONFIG_FILE

__all__ = ["add_config_path", "add_environment", "non_negative_seconds", "tcp_port"]


def add_config_path(parser: argparse.ArgumentParser) -> None:
    """``[PATH]``: floe.yaml, or the directory holding it."""
    parser.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_CONFIG_FILE,
        help="floe.yaml, or the directory holding it (default: ./floe.yaml)",
    )


def add_environment(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--env NAME``: the floe.yaml environment to ``verb`` (compile for, run, ...)."""
    parser.add_argument(
        "--env", default=None, help=f"environment to {verb} (default: default_environment)"
    )


def non_negative_seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def tcp_port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("a TCP port: 1-65535")
    return value
