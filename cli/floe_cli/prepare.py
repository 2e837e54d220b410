"""Get a project ready to run: compiled artifacts that match floe.yaml, and a dbt manifest.

``floe run`` and ``floe dev`` (and ``floe prepare``, for images and CI) call :func:`prepare`. It
recompiles only when something changed (floe.yaml's bytes, the environment, or a manifest newer
than the artifacts, whose column classifications come from it), and runs ``dbt parse`` only when
the manifest is missing or older than a file of the dbt project (a new model shows up without a
manual step). Compiling takes milliseconds; parsing takes seconds.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from floe_core.artifacts import CompiledArtifacts, load_artifacts
from floe_core.config import DEFAULT_CONFIG_FILE, load_config
from floe_core.errors import ArtifactsError
from floe_core.layout import FLOE_DIR, PROFILES_FILE, ProjectPaths

__all__ = ["Prepared", "ensure_dagster_home", "prepare"]


@dataclass(frozen=True)
class Prepared:
    paths: ProjectPaths
    artifacts: CompiledArtifacts
    #: What was done, for the user ("compiled floe.yaml", "wrote the dbt manifest").
    actions: tuple[str, ...] = field(default=())


def prepare(path: Path | str = DEFAULT_CONFIG_FILE, env: str | None = None) -> Prepared:
    """Compile if needed, parse if needed; raise a :class:`~floe_core.errors.FloeError` with the
    reason (FloeConfigError, ManifestError, ...)."""
    from floe_dagster.manifest import parse_project
    from floe_dbt.compile import compile_floe

    paths = ProjectPaths.find(path)
    actions: list[str] = []
    reason = _stale(paths, env)
    artifacts: CompiledArtifacts
    if reason is not None:
        artifacts = compile_floe(paths.config, env, paths.floe_dir)
        actions.append(f"compiled {paths.config.name} ({reason})")
    else:
        artifacts = load_artifacts(paths.artifacts)
    parsed = False
    for project in artifacts.projects():
        why = _manifest_stale(project)
        if why is not None:
            parse_project(project)
            actions.append(
                f"wrote the dbt manifest {_relative(project.dbt_manifest_path, paths)} ({why})"
            )
            parsed = True
    if parsed:
        # Column classifications come from the manifest: compile again now that it exists.
        artifacts = compile_floe(paths.config, env, paths.floe_dir)
    return Prepared(paths=paths, artifacts=artifacts, actions=tuple(actions))


_DAGSTER_YAML = """\
# Written by floe: the local Dagster instance of `floe run` and `floe dev` (runs, event logs).
telemetry:
  enabled: false
"""


def ensure_dagster_home(paths: ProjectPaths) -> Path:
    """``.floe/dagster``: the instance both `floe run` and `floe dev` use, so runs persist."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML)
    return home


def _stale(paths: ProjectPaths, env: str | None) -> str | None:
    """Why the compiled artifacts must be rewritten, or None when they are current."""
    if not paths.artifacts.is_file():
        return "no compiled artifacts yet"
    try:
        artifacts = load_artifacts(paths.artifacts)
    except ArtifactsError:
        return "the compiled artifacts are from another floe version"
    try:
        source = paths.config.read_bytes()
    except FileNotFoundError:
        load_config(paths.config, env)  # raises the FloeConfigError that names the file
        raise
    if hashlib.sha256(source).hexdigest() != artifacts.source_hash:
        return "floe.yaml changed"
    if Path(artifacts.source_path) != paths.config:
        return "compiled from another floe.yaml"
    wanted = env or load_config(paths.config, env).environment
    if wanted != artifacts.environment:
        return f"environment {wanted} (was {artifacts.environment})"
    for project in artifacts.projects():
        manifest = Path(project.dbt_manifest_path)
        if manifest.is_file() and manifest.stat().st_mtime > paths.artifacts.stat().st_mtime:
            return "the dbt manifest changed"
    if not Path(artifacts.dbt_profiles_path, PROFILES_FILE).is_file():
        return "profiles.yml is missing"
    return None


# Files of a dbt project that change what `dbt parse` writes; build output directories are skipped.
_PROJECT_SUFFIXES = frozenset({".sql", ".yml", ".yaml", ".csv", ".py", ".md", ".jinja"})
_SKIP_DIRS = frozenset({"target", "logs", "dbt_packages", FLOE_DIR, ".git", "__pycache__"})


def _manifest_stale(artifacts: CompiledArtifacts) -> str | None:
    """Why ``dbt parse`` must run: no manifest, or a project file newer than it."""
    manifest = Path(artifacts.dbt_manifest_path)
    try:
        built = manifest.stat().st_mtime
    except FileNotFoundError:
        return "it was missing"
    project = Path(artifacts.dbt_project_path)
    for directory, subdirs, files in os.walk(project):
        subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if os.path.splitext(name)[1] in _PROJECT_SUFFIXES:
                changed = Path(directory, name)
                if changed.stat().st_mtime > built:
                    return f"{changed.relative_to(project)} changed"
    return None


def _relative(path: str | Path, paths: ProjectPaths) -> str:
    try:
        return str(Path(path).relative_to(paths.root))
    except ValueError:
        return str(path)
