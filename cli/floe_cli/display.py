"""How the ``floe`` command shows things in the terminal."""

from __future__ import annotations

from pathlib import Path

__all__ = ["show_path"]


def show_path(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
