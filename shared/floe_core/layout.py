"""Where the sidecar keeps its own state inside the spool directory.

Everything lives under ``<spool>/.sidecar/`` (hidden, so it is never mistaken for a segment, and
owner-only like the spool itself)::

    <spool>/
      20260101T120000.000000001-events-4242-a1b2c3.ndjson   segments (adapter and socket intake)
      .sidecar/
        lock                 flock held by the running sidecar (one sidecar per spool)
        cursors/<sink>.json  each sink's durable position, per segment
        reported.json        how far bad lines have been dead-lettered (so: once, not per sink)
        deadletter.ndjson    lines and items that could not be delivered, with the reason
        status.json          health snapshot, rewritten every few seconds
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from floe_core.spool import ensure_spool_dir

__all__ = ["STATE_DIR_NAME", "SpoolLayout", "check_sink_name"]

STATE_DIR_NAME = ".sidecar"
_SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_sink_name(name: str) -> str:
    """Sink names become file names: keep them short and plain."""
    if not _SINK_NAME.match(name):
        raise ValueError(
            f"sink name {name!r} must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class SpoolLayout:
    spool_dir: Path
    #: Overrides ``<spool>/.sidecar/deadletter.ndjson`` when set.
    deadletter_override: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.spool_dir / STATE_DIR_NAME

    @property
    def cursors_dir(self) -> Path:
        return self.state_dir / "cursors"

    @property
    def reported(self) -> Path:
        return self.state_dir / "reported.json"

    @property
    def deadletter(self) -> Path:
        if self.deadletter_override is not None:
            return self.deadletter_override
        return self.state_dir / "deadletter.ndjson"

    @property
    def status(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def lock(self) -> Path:
        return self.state_dir / "lock"

    def cursor(self, sink_name: str) -> Path:
        return self.cursors_dir / f"{check_sink_name(sink_name)}.json"

    def cursor_names(self) -> list[str]:
        """Sinks that have a cursor here (configured now or in an earlier run)."""
        try:
            names = os.listdir(self.cursors_dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))

    def ensure(self) -> SpoolLayout:
        """Create the spool and state directories owner-only."""
        ensure_spool_dir(self.spool_dir)
        for directory in (self.state_dir, self.cursors_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        return self
