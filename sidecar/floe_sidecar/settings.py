"""What the sidecar was asked to do: paths, compiled artifacts, and the environment it reads.

Sink factories take a :class:`SidecarSettings` and return a configured sink, or ``None`` when that
kind of output is switched off. Keeping the environment as an explicit mapping (not ``os.environ``)
lets tests and replays build sinks without touching the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from floe_core.artifacts import CompiledArtifacts

__all__ = ["SidecarSettings"]


@dataclass(frozen=True)
class SidecarSettings:
    spool_dir: Path
    socket_path: Path | None = None
    artifacts: CompiledArtifacts | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    # Where the embedded default writes lineage and traces when no endpoint is configured
    # (``<output_dir>/lineage``, ``<output_dir>/traces``); by default the spool's parent, `.floe`.
    output_dir: Path | None = None

    @property
    def local_output_dir(self) -> Path:
        return self.output_dir if self.output_dir is not None else self.spool_dir.parent
