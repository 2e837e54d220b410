"""Dagster definitions from CompiledArtifacts: every dbt model, seed and snapshot as an asset.

:func:`build_definitions` is the public entry point (``floe run``, tests, your own code);
``floe_dagster.definitions`` calls it for ``dagster dev -m floe_dagster.definitions``.
The manifest is read once here and shared by dagster-dbt (asset specs, checks, event
translation) and floe's event builder.
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, Definitions
from dagster_dbt import dbt_assets

from floe_core.artifacts import CompiledArtifacts
from floe_core.errors import ArtifactsError
from floe_dagster.compat import translator_settings
from floe_dagster.manifest import ManifestIndex, dbt_executable, load_manifest
from floe_dagster.resource import FloeDbtResource
from floe_dagster.step import StepPlan, run_dbt_step
from floe_dagster.translator import FloeDbtTranslator

__all__ = ["RESOURCE_KEY", "build_dbt_assets", "build_definitions", "build_resource"]

RESOURCE_KEY = "dbt"


def _op_name(artifacts: CompiledArtifacts) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", artifacts.name).strip("_") or "floe"
    return f"{name}_dbt" if name[0].isalpha() else f"floe_{name}_dbt"


def build_resource(artifacts: CompiledArtifacts) -> FloeDbtResource:
    """dagster-dbt's resource on the generated profiles dir.

    No ``profile``/``target`` flags: the generated profiles.yml holds one profile whose default
    target is the compiled environment, and leaving the flags out keeps dbt's partial-parse state
    identical to ``dbt parse --project-dir ... --profiles-dir ...`` (see ``parse_command``).
    """
    return FloeDbtResource(
        project_dir=artifacts.dbt_project_path,
        profiles_dir=artifacts.dbt_profiles_path,
        dbt_executable=dbt_executable(),
    )


def build_dbt_assets(
    artifacts: CompiledArtifacts, manifest: Mapping[str, Any] | None = None
) -> AssetsDefinition:
    """The ``@dbt_assets`` multi-asset for the artifacts' dbt project (tests as asset checks)."""
    manifest = manifest if manifest is not None else load_manifest(artifacts)
    index = ManifestIndex.for_artifacts(artifacts, manifest)
    # Every dbt test is an asset check, source tests included (on the source's external asset).
    settings = translator_settings(enable_asset_checks=True, enable_source_tests_as_checks=True)
    translator = FloeDbtTranslator(index, settings=settings)
    index.asset_key = lambda props: tuple(translator.get_asset_key(props).path)
    plan = StepPlan(artifacts=artifacts, index=index)

    @dbt_assets(
        manifest=dict(manifest),
        dagster_dbt_translator=translator,
        name=_op_name(artifacts),
        required_resource_keys={RESOURCE_KEY},
    )
    def _floe_dbt_assets(context: AssetExecutionContext) -> Iterator[Any]:
        dbt = getattr(context.resources, RESOURCE_KEY)
        yield from run_dbt_step(context, dbt, plan)

    return _floe_dbt_assets


def build_definitions(
    artifacts: CompiledArtifacts, manifest: Mapping[str, Any] | None = None
) -> Definitions:
    """Definitions with the dbt assets and their resource; the manifest must exist.

    A missing manifest raises :class:`~floe_dagster.manifest.ManifestNotFoundError`, whose
    message gives the command that writes it.
    """
    if not Path(artifacts.dbt_project_path).is_dir():
        raise ArtifactsError(
            f"dbt project not found: {artifacts.dbt_project_path} (from {artifacts.source_path}); "
            "re-run `floe compile`"
        )
    return Definitions(
        assets=[build_dbt_assets(artifacts, manifest)],
        resources={RESOURCE_KEY: build_resource(artifacts)},
    )
