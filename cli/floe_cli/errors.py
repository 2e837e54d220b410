"""The ``floe`` command's own error: a usage problem, printed as one message (exit status 2)."""

from __future__ import annotations

from floe_core.errors import UsageError

__all__ = ["CliError"]


class CliError(UsageError):
    """A problem with what the ``floe`` command was asked to do; its message is printed as is."""
