"""``floe compile``: floe.yaml -> compiled_artifacts.json + a dbt profiles.yml.

:func:`validate_floe` does all the checking and returns the :class:`CompiledArtifacts` it would
write; :func:`compile_floe` then writes them (owner-only files, replaced atomically). Both raise
:class:`~floe_core.config.FloeConfigError` for anything wrong in floe.yaml or the dbt project it
points at.

Kept light on purpose: yaml, msgspec and the standard library only (no dbt, no dagster), and the
manifest is decoded into just the fields classification needs, so a 1,000-model project compiles
in milliseconds (bench/compile_bench.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from floe_core.artifacts import (
    ColumnClassification,
    CompiledArtifacts,
    ComputeArtifacts,
    GovernanceArtifacts,
    ObservabilityArtifacts,
    TransformArtifacts,
)
from floe_core.config import FloeConfig, load_config
from floe_core.errors import ArtifactsError
from floe_core.fsutil import atomic_write
from floe_core.layout import ARTIFACTS_FILE, CONFIG_FILE, FLOE_DIR, PROFILES_DIR, PROFILES_FILE
from floe_core.redaction import url_credentials
from floe_core.yamlload import safe_load
from floe_dbt.profiles import (
    build_output,
    ensure_local_dirs,
    refuse_literal_secrets_everywhere,
    render_profiles_yml,
)

__all__ = [
    "artifacts_json",
    "build_artifacts",
    "column_classification",
    "compile_floe",
    "validate_floe",
]

DEFAULT_OUTPUT_DIR = Path(FLOE_DIR)


def validate_floe(
    path: Path | str = CONFIG_FILE,
    env: str | None = None,
    output_dir: Path | str = DEFAULT_OUTPUT_DIR,
    profiles_dir: Path | str | None = None,
) -> CompiledArtifacts:
    """Check floe.yaml for ``env`` and the dbt project it names; write nothing."""
    return build_artifacts(load_config(path, env), output_dir, profiles_dir)


def compile_floe(
    path: Path | str = CONFIG_FILE,
    env: str | None = None,
    output_dir: Path | str = DEFAULT_OUTPUT_DIR,
    profiles_dir: Path | str | None = None,
) -> CompiledArtifacts:
    """Write ``output_dir/compiled_artifacts.json`` and ``<dbt_profiles_path>/profiles.yml``.

    ``profiles_dir`` defaults to ``output_dir/profiles``; an earlier profiles.yml there is
    overwritten (it is a generated file). Both files are readable by their owner only.
    """
    config = load_config(path, env)
    artifacts = build_artifacts(config, output_dir, profiles_dir)
    out = Path(artifacts.dbt_profiles_path)
    try:
        _private_dir(Path(output_dir).resolve())
        _private_dir(out)
        atomic_write(out / PROFILES_FILE, _profiles_text(artifacts).encode())
        atomic_write(Path(output_dir).resolve() / ARTIFACTS_FILE, artifacts_json(artifacts))
        ensure_local_dirs(artifacts.compute.target, artifacts.compute.properties)
    except OSError as exc:
        where = exc.filename or output_dir
        raise ArtifactsError(
            f"{where}: cannot write what floe compile generates ({exc.strerror or exc}); "
            "choose a writable --output-dir"
        ) from None
    return artifacts


def _refuse_endpoint_credentials(config: FloeConfig) -> None:
    """An observability endpoint in floe.yaml with a password or key in it would be copied into
    compiled_artifacts.json: refused, like any literal secret."""
    obs = config.spec.observability
    for key, url in (
        ("otlp_endpoint", obs.otlp_endpoint),
        ("lineage_endpoint", obs.lineage_endpoint),
    ):
        if url and url_credentials(url):
            raise config.error(
                f"observability.{key}",
                "a URL with a credential in it refused (it would end up in generated files)",
                expected="the URL without user:password@ or secret query parameters",
                found="a URL with a literal credential (value not shown)",
                fix="set the credential in the environment instead: OPENLINEAGE_API_KEY for "
                "lineage, OTEL_EXPORTER_OTLP_HEADERS for OTLP",
            )


def build_artifacts(
    config: FloeConfig,
    output_dir: Path | str = DEFAULT_OUTPUT_DIR,
    profiles_dir: Path | str | None = None,
) -> CompiledArtifacts:
    """The CompiledArtifacts of a loaded floe.yaml (reads the dbt project, writes nothing)."""
    spec = config.spec
    refuse_literal_secrets_everywhere(config)
    _refuse_endpoint_credentials(config)
    profile = build_output(config)
    projects = [_dbt_project(config, i) for i in range(len(spec.transforms))]
    transforms = _transforms(config, projects)
    project_dir, project = projects[0]
    manifest = Path(transforms[0].manifest_path)
    classifications: tuple[ColumnClassification, ...] = ()
    if spec.governance.classification_source == "dbt_meta":
        found = [c for t in transforms for c in _classifications(Path(t.manifest_path))]
        classifications = tuple(sorted(found, key=lambda c: (c.unique_id, c.column)))
    output_dir = Path(output_dir).resolve()
    profiles = Path(profiles_dir).resolve() if profiles_dir else output_dir / PROFILES_DIR
    obs = spec.observability
    return CompiledArtifacts(
        name=spec.name,
        project_version=spec.version,
        environment=config.environment,
        source_path=str(config.path),
        source_hash=hashlib.sha256(config.source).hexdigest(),
        compute=ComputeArtifacts(
            target=profile.target,
            adapter_type=profile.adapter_type,
            properties=profile.output,
            secret_env_vars=profile.secret_env_vars,
            connection_secret_ref=spec.compute.connection_secret_ref,
            auth_method=profile.auth_method,
        ),
        transforms=transforms,
        governance=GovernanceArtifacts(classification_source=spec.governance.classification_source),
        observability=ObservabilityArtifacts(
            traces=obs.traces,
            lineage=obs.lineage,
            logs=obs.traces if obs.logs is None else obs.logs,
            metrics=obs.traces if obs.metrics is None else obs.metrics,
            log_level=obs.log_level,
            otlp_endpoint=obs.otlp_endpoint,
            lineage_endpoint=obs.lineage_endpoint,
            attributes=dict(obs.attributes),
        ),
        dbt_project_path=str(project_dir),
        dbt_profile_name=str(project["profile"]),
        dbt_target_name=config.environment,
        dbt_profiles_path=str(profiles),
        dbt_manifest_path=str(manifest),
        column_classifications=classifications,
    )


_encoder = msgspec.json.Encoder(order="deterministic")


def artifacts_json(artifacts: CompiledArtifacts) -> bytes:
    """compiled_artifacts.json bytes: stable key order, indented, newline-terminated."""
    return msgspec.json.format(_encoder.encode(artifacts), indent=2) + b"\n"


# --- the dbt projects ------------------------------------------------------------------------


def _transforms(
    config: FloeConfig, projects: list[tuple[Path, dict[str, Any]]]
) -> tuple[TransformArtifacts, ...]:
    """Each dbt project's artifacts; with several, each gets its own asset key prefix."""
    several = len(projects) > 1
    result: list[TransformArtifacts] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, (transform, (directory, project)) in enumerate(
        zip(config.spec.transforms, projects, strict=True)
    ):
        name = str(project.get("name") or directory.name)
        if transform.asset_key_prefix is not None:
            prefix = tuple(transform.asset_key_prefix)
        else:
            prefix = (name,) if several else ()
        if several and prefix in seen:
            raise config.error(
                f"transforms[{index}]",
                f"two dbt projects would share the asset key prefix {list(prefix)!r}",
                expected="a distinct asset_key_prefix per dbt project",
                found=f"transforms[{seen[prefix]}] and transforms[{index}] (dbt project {name!r})",
                fix=f"set `asset_key_prefix: [<name>]` on transforms[{index}]",
            )
        seen[prefix] = index
        target = str(project.get("target-path") or "target")
        result.append(
            TransformArtifacts(
                type=transform.type,
                path=str(directory),
                name=name,
                profile_name=str(project["profile"]),
                manifest_path=str(directory / target / "manifest.json"),
                asset_key_prefix=prefix,
            )
        )
    return tuple(result)


def _dbt_project(config: FloeConfig, index: int) -> tuple[Path, dict[str, Any]]:
    field = f"transforms[{index}].path"
    raw = config.spec.transforms[index].path
    directory = config.resolve_path(raw)
    project_file = directory / "dbt_project.yml"
    if not directory.is_dir():
        raise config.error(
            field,
            "dbt project directory not found",
            expected="a directory holding dbt_project.yml (relative to floe.yaml)",
            found=f"{raw!r} -> {directory} does not exist",
            fix="point transforms[].path at your dbt project",
        )
    try:
        project = safe_load(project_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise config.error(
            field,
            "not a dbt project",
            expected="a directory holding dbt_project.yml",
            found=f"{directory} has no dbt_project.yml",
            fix="point transforms[].path at the directory that holds dbt_project.yml",
        ) from None
    except yaml.YAMLError as exc:
        raise config.error(
            field,
            f"{project_file} is not valid YAML ({exc})",
            fix="fix dbt_project.yml (`dbt debug` shows the details)",
        ) from None
    if not isinstance(project, dict) or not project.get("profile"):
        raise config.error(
            field,
            f"{project_file} names no `profile:`",
            expected="profile: <name> in dbt_project.yml",
            fix=f"add `profile: {config.spec.name}` to dbt_project.yml; floe writes that profile",
        )
    return directory, project


class _ManifestColumn(msgspec.Struct):
    meta: dict[str, Any] = {}
    config: dict[str, Any] = {}


class _ManifestNode(msgspec.Struct):
    columns: dict[str, _ManifestColumn] = {}


class _Manifest(msgspec.Struct):
    nodes: dict[str, _ManifestNode] = {}
    sources: dict[str, _ManifestNode] = {}


_manifest_decoder = msgspec.json.Decoder(_Manifest)


def column_classification(
    meta: Mapping[str, Any] | None, config: Mapping[str, Any] | None
) -> str | None:
    """A dbt column's governance classification: ``meta.classification``, else
    ``config.meta.classification`` (where dbt 1.10+ puts column meta); None when it has none."""
    value = meta.get("classification") if isinstance(meta, Mapping) else None
    if value is None and isinstance(config, Mapping):
        config_meta = config.get("meta")
        if isinstance(config_meta, Mapping):
            value = config_meta.get("classification")
    return value if isinstance(value, str) and value else None


def _classifications(manifest: Path) -> tuple[ColumnClassification, ...]:
    """Column ``meta.classification`` (or ``config.meta.classification``) of every node."""
    try:
        data = manifest.read_bytes()
    except FileNotFoundError:
        return ()
    try:
        parsed = _manifest_decoder.decode(data)
    except msgspec.MsgspecError:
        return ()  # a half-written or foreign manifest: dbt rewrites it on its next parse
    found: list[ColumnClassification] = []
    for nodes in (parsed.nodes, parsed.sources):
        for unique_id, node in nodes.items():
            for name, column in node.columns.items():
                value = column_classification(column.meta, column.config)
                if value is not None:
                    found.append(
                        ColumnClassification(unique_id=unique_id, column=name, classification=value)
                    )
    found.sort(key=lambda c: (c.unique_id, c.column))
    return tuple(found)


# --- writing ---------------------------------------------------------------------------------


def _profiles_text(artifacts: CompiledArtifacts) -> str:
    names = [t.profile_name for t in artifacts.transforms] or [artifacts.dbt_profile_name]
    return render_profiles_yml(names, artifacts.dbt_target_name, artifacts.compute.properties)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
