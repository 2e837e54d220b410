"""The ``floe`` command's own error: a usage problem, printed as one message (exit status 2)."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """A problem the user can fix (a selection that matches nothing, nothing to show); its
    message is printed as is."""
