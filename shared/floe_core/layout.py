"""Every path floe keeps on disk, and the names of the built-in sinks: facts the adapter, the
``floe`` command and the sidecar must agree on, defined once.

A project's local state lives next to its floe.yaml, under ``.floe/`` (:class:`ProjectPaths`)::

    <project>/.floe/
      compiled_artifacts.json        floe compile (FLOE_ARTIFACTS points elsewhere if wanted)
      profiles/profiles.yml          floe compile: the dbt profiles directory
      spool/                         event segments (FLOE_SPOOL_DIR); the sidecar's state inside
      dagster/                       DAGSTER_HOME of floe run and floe dev
      logs/                          adapter.log, sidecar.log, run-<run id>.log
      lineage/openlineage.ndjson     lineage when no endpoint is configured (embedded default)
      traces/otlp-traces.jsonl       traces when no endpoint is configured (embedded default)
      html/run-<run id>.html         floe show --html / floe run --html: the run's page
      logs/otlp-logs.jsonl           log records when no endpoint is configured (embedded default)
      metrics/otlp-metrics.jsonl     metrics when no endpoint is configured (embedded default)
      sidecar.sock                   the sidecar's socket (if too long: a short per-user path)

The sidecar keeps its own state inside the spool, under ``<spool>/.sidecar/`` (hidden, so it is
never mistaken for a segment, and owner-only like the spool itself; :class:`SpoolLayout`)::

    <spool>/
      20260101T120000.000000001-events-4242-a1b2c3.ndjson   segments (adapter and socket intake)
      .sidecar/
        lock                 flock held by the running sidecar (one sidecar per spool)
        cursors/<sink>.json  each sink's durable position, per segment
        reported.json        how far bad lines have been dead-lettered (so: once, not per sink)
        deadletter.ndjson    lines and items that could not be delivered, with the reason
        status.json          health snapshot, rewritten every few seconds
        released             a run pod's sidecar (--handoff) stopped cleanly: adopt at once
        adopted.json         a node's sidecar (--adopt): the segments it took over (the ledger)

A sink's name keys its cursor file; the built-in ones are :data:`LINEAGE_SINK`,
:data:`TRACES_SINK`, :data:`LOGS_SINK` and :data:`METRICS_SINK`.

On a Kubernetes node (docs/scale.md) each run pod's spool is ``<handoff>/<pod>/``
:data:`POD_SPOOL_DIR`, in a directory of its own on a node volume; the node's sidecar
(``--adopt <handoff>``) takes those spools over once their pods have ended.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from floe_core.errors import UsageError
from floe_core.spool import ensure_spool_dir

__all__ = [
    "ARTIFACTS_FILE",
    "CONFIG_FILE",
    "DEFAULT_ARTIFACTS_PATH",
    "DEFAULT_SPOOL_DIR",
    "FLOE_DIR",
    "LINEAGE_FILE",
    "LINEAGE_SINK",
    "LOGS_FILE",
    "LOGS_SINK",
    "METRICS_FILE",
    "METRICS_SINK",
    "PAGES_DIR",
    "POD_SPOOL_DIR",
    "PROFILES_DIR",
    "PROFILES_FILE",
    "STATE_DIR_NAME",
    "TRACES_FILE",
    "TRACES_SINK",
    "ProjectPaths",
    "SpoolLayout",
    "check_sink_name",
]

CONFIG_FILE = "floe.yaml"
FLOE_DIR = ".floe"
ARTIFACTS_FILE = "compiled_artifacts.json"
PROFILES_DIR = "profiles"
PROFILES_FILE = "profiles.yml"
SPOOL_DIR = "spool"
DAGSTER_HOME_DIR = "dagster"
LOGS_DIR = "logs"
SOCKET_FILE = "sidecar.sock"
#: Held by one `floe run` at a time (see floe_cli.runlock).
RUN_LOCK_FILE = "run.lock"
#: The embedded default outputs, relative to the local output directory (``.floe``).
LINEAGE_FILE = Path("lineage") / "openlineage.ndjson"
TRACES_FILE = Path("traces") / "otlp-traces.jsonl"
#: ``floe show --html`` / ``floe run --html``: one page per run, ``run-<run id>.html``.
PAGES_DIR = "html"
LOGS_FILE = Path(LOGS_DIR) / "otlp-logs.jsonl"
METRICS_FILE = Path("metrics") / "otlp-metrics.jsonl"
#: Relative to the working directory: where commands look when nothing else is said.
DEFAULT_ARTIFACTS_PATH = f"{FLOE_DIR}/{ARTIFACTS_FILE}"
DEFAULT_SPOOL_DIR = f"{FLOE_DIR}/{SPOOL_DIR}"

#: The built-in sinks' names (their cursors, their rows in ``floe-sidecar status``).
LINEAGE_SINK = "openlineage"
TRACES_SINK = "otel"
LOGS_SINK = "otel-logs"
METRICS_SINK = "otel-metrics"

STATE_DIR_NAME = ".sidecar"
#: A run pod's spool inside its own directory of the node's hand-off volume (``<pod>/spool``).
POD_SPOOL_DIR = SPOOL_DIR
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
class ProjectPaths:
    """Where floe keeps a project's local state: everything under ``<project>/.floe``."""

    config: Path  # floe.yaml

    @classmethod
    def find(cls, path: Path | str = CONFIG_FILE) -> ProjectPaths:
        """From floe.yaml or the directory holding it."""
        config = Path(path).expanduser().resolve()
        if config.is_dir():
            config = config / CONFIG_FILE
        return cls(config)

    @property
    def root(self) -> Path:
        return self.config.parent

    @property
    def floe_dir(self) -> Path:
        return self.root / FLOE_DIR

    @property
    def artifacts(self) -> Path:
        return self.floe_dir / ARTIFACTS_FILE

    @property
    def profiles_dir(self) -> Path:
        return self.floe_dir / PROFILES_DIR

    @property
    def spool(self) -> Path:
        return self.floe_dir / SPOOL_DIR

    @property
    def dagster_home(self) -> Path:
        return self.floe_dir / DAGSTER_HOME_DIR

    @property
    def logs(self) -> Path:
        return self.floe_dir / LOGS_DIR

    @property
    def socket(self) -> Path:
        return self.floe_dir / SOCKET_FILE

    @property
    def run_lock(self) -> Path:
        return self.floe_dir / RUN_LOCK_FILE

    @property
    def lineage_file(self) -> Path:
        return self.floe_dir / LINEAGE_FILE

    @property
    def traces_file(self) -> Path:
        return self.floe_dir / TRACES_FILE

    @property
    def logs_file(self) -> Path:
        return self.floe_dir / LOGS_FILE

    @property
    def metrics_file(self) -> Path:
        return self.floe_dir / METRICS_FILE


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

    @property
    def released(self) -> Path:
        """A run pod's sidecar stopped cleanly, cursors saved: the node may adopt at once."""
        return self.state_dir / "released"

    @property
    def adopted(self) -> Path:
        """A node's sidecar: the ledger of the segments it adopted from run pods."""
        return self.state_dir / "adopted.json"

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
        """Create the spool and state directories owner-only; refuse any of them that is a
        symbolic link (it would be chmod-ed, and written to, wherever it points)."""
        for directory in (self.spool_dir, self.state_dir, self.cursors_dir):
            if directory.is_symlink():
                raise UsageError(
                    f"{directory} is a symbolic link (to {os.readlink(directory)}); refused: "
                    "the spool and its state must be real directories"
                )
            if directory == self.spool_dir:
                ensure_spool_dir(directory)
                continue
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        return self
