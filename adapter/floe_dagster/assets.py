"""Dagster definitions from CompiledArtifacts: every dbt model, seed and snapshot as an asset.

:func:`build_definitions` is the public entry point (``floe run``, tests, your own code);
``floe_dagster.definitions`` calls it for ``dagster dev -m floe_dagster.definitions``.
The manifest is read once here and shared by dagster-dbt (asset specs, checks, event
translation) and floe's event builder.

Several dbt projects in one floe.yaml become one multi-asset each (its own step, resource
``dbt_<project>``, asset group and key prefix); one of them can depend on another through a
source whose ``meta.dagster.asset_key`` names the other project's model.
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, Definitions
from dagster_dbt import dbt_assets

from floe_core.artifacts import CompiledArtifacts
from floe_core.errors import ArtifactsError
from floe_core.layout import PROFILES_FILE
from floe_dagster.compat import translator_settings
from floe_dagster.manifest import ManifestIndex, dbt_executable, load_manifest
from floe_dagster.resource import FloeDbtResource
from floe_dagster.step import DbtSteps, StepPlan, run_dbt_step
from floe_dagster.translator import FloeDbtTranslator

__all__ = [
    "RESOURCE_KEY",
    "build_dbt_assets",
    "build_definitions",
    "build_resource",
    "resource_key",
]

RESOURCE_KEY = "dbt"


def _op_name(artifacts: CompiledArtifacts) -> str:
    """``<floe name>_dbt``; with several dbt projects, ``<dbt project name>_dbt`` for each."""
    raw = artifacts.transforms[0].name if artifacts.multi_project else artifacts.name
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw).strip("_") or "floe"
    return f"{name}_dbt" if name[0].isalpha() else f"floe_{name}_dbt"


def resource_key(artifacts: CompiledArtifacts) -> str:
    """``dbt``; with several dbt projects, ``dbt_<project>`` for each project's resource."""
    return (
        f"dbt_{_op_name(artifacts).removesuffix('_dbt')}"
        if artifacts.multi_project
        else RESOURCE_KEY
    )


def build_resource(artifacts: CompiledArtifacts) -> FloeDbtResource:
    """dagster-dbt's resource on the generated profiles dir.

    No ``profile``/``target`` flags: the generated profiles.yml holds one profile whose default
    target is the compiled environment, and leaving the flags out keeps dbt's partial-parse state
    identical to ``dbt parse --project-dir ... --profiles-dir ...`` (see ``parse_command``).
    A generated profiles.yml that is gone (a cleaned ``.floe``) is an ArtifactsError saying what
    to run, not dagster-dbt's pydantic ValidationError.
    """
    profiles = Path(artifacts.dbt_profiles_path) / PROFILES_FILE
    if not profiles.is_file():
        raise ArtifactsError(
            f"{profiles}: the generated dbt profile is missing; run `floe compile` "
            f"(for {artifacts.source_path}) to write it again"
        )
    return FloeDbtResource(
        project_dir=artifacts.dbt_project_path,
        profiles_dir=artifacts.dbt_profiles_path,
        dbt_executable=dbt_executable(),
    )


def build_dbt_assets(
    artifacts: CompiledArtifacts,
    manifest: Mapping[str, Any] | None = None,
    steps: DbtSteps | None = None,
) -> AssetsDefinition:
    """The ``@dbt_assets`` multi-asset for one dbt project (tests as asset checks).

    ``artifacts`` is one project's view (:meth:`CompiledArtifacts.projects`); ``steps`` is shared
    by the dbt steps of one set of definitions (see :class:`~floe_dagster.step.DbtSteps`).
    """
    manifest = manifest if manifest is not None else load_manifest(artifacts)
    index = ManifestIndex.for_artifacts(artifacts, manifest)
    # Every dbt test is an asset check, source tests included (on the source's external asset).
    settings = translator_settings(enable_asset_checks=True, enable_source_tests_as_checks=True)
    project = artifacts.transforms[0]
    translator = FloeDbtTranslator(
        index,
        settings=settings,
        asset_key_prefix=project.asset_key_prefix,
        group=project.name if artifacts.multi_project else None,
    )
    index.asset_key = lambda props: tuple(translator.get_asset_key(props).path)
    key = resource_key(artifacts)
    plan = StepPlan(artifacts=artifacts, index=index, op_name=_op_name(artifacts), steps=steps)

    @dbt_assets(
        manifest=dict(manifest),
        dagster_dbt_translator=translator,
        name=plan.op_name,
        required_resource_keys={key},
    )
    def _floe_dbt_assets(context: AssetExecutionContext) -> Iterator[Any]:
        dbt = getattr(context.resources, key)
        yield from run_dbt_step(context, dbt, plan)

    return _floe_dbt_assets


def _downstream(assets: Mapping[str, AssetsDefinition]) -> dict[str, frozenset[str]]:
    """For each dbt step, the dbt steps that depend on its assets, directly or not."""
    direct = {
        name: {
            other
            for other, other_def in assets.items()
            if other != name and set(other_def.dependency_keys) & set(assets_def.keys)
        }
        for name, assets_def in assets.items()
    }
    closed: dict[str, frozenset[str]] = {}
    for name in direct:
        seen: set[str] = set()
        stack = list(direct[name])
        while stack:
            after = stack.pop()
            if after not in seen:
                seen.add(after)
                stack.extend(direct[after])
        closed[name] = frozenset(seen)
    return closed


def build_definitions(
    artifacts: CompiledArtifacts, manifest: Mapping[str, Any] | None = None
) -> Definitions:
    """Definitions with the dbt assets and their resource; the manifest must exist.

    A missing manifest raises :class:`~floe_dagster.manifest.ManifestNotFoundError`, whose
    message gives the command that writes it.
    """
    projects = artifacts.projects()
    for project in projects:
        if not Path(project.dbt_project_path).is_dir():
            raise ArtifactsError(
                f"dbt project not found: {project.dbt_project_path} "
                f"(from {artifacts.source_path}); re-run `floe compile`"
            )
    if len(projects) == 1:
        return Definitions(
            assets=[build_dbt_assets(artifacts, manifest)],
            resources={RESOURCE_KEY: build_resource(artifacts)},
        )
    if manifest is not None:
        raise ValueError("one manifest was given for several dbt projects; pass none")
    steps = DbtSteps()
    assets = {_op_name(p): build_dbt_assets(p, steps=steps) for p in projects}
    steps.downstream.update(_downstream(assets))
    return Definitions(
        assets=list(assets.values()),
        resources={resource_key(p): build_resource(p) for p in projects},
    )
