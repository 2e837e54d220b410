"""floe's Dagster adapter: dbt nodes as assets, structured events for the sidecar.

Importing the package is cheap (the ``floe`` CLI imports it lazily): Dagster and dagster-dbt load
only when :func:`build_definitions` (or a submodule that needs them) is used.

- ``floe_dagster.definitions``: ``defs`` for ``dagster dev -m floe_dagster.definitions``
- :func:`build_definitions`: Definitions from CompiledArtifacts
- ``floe_dagster.emitter``: the never-blocking socket/spool event emitter
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import Definitions

    from floe_core.artifacts import CompiledArtifacts

__all__ = ["build_definitions"]


def build_definitions(artifacts: CompiledArtifacts, manifest: Any = None) -> Definitions:
    """Dagster Definitions for ``artifacts`` (see :func:`floe_dagster.assets.build_definitions`)."""
    from floe_dagster.assets import build_definitions as build

    return build(artifacts, manifest)
