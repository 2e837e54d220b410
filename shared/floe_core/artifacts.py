"""CompiledArtifacts: what ``floe compile`` writes and every runtime part reads.

It is the resolved, environment-specific form of floe.yaml plus the paths of the generated dbt
files. It never holds a secret: credentials stay ``env_var()`` references in profiles.yml, and the
names of those variables are listed here so tooling can check they are set.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from floe_core.errors import ArtifactsError

__all__ = [
    "ARTIFACTS_VERSION",
    "ColumnClassification",
    "CompiledArtifacts",
    "ComputeArtifacts",
    "GovernanceArtifacts",
    "ObservabilityArtifacts",
    "TransformArtifacts",
    "load_artifacts",
]

ARTIFACTS_VERSION = 1
ARTIFACTS_ENV = "FLOE_ARTIFACTS"


class ComputeArtifacts(msgspec.Struct, frozen=True, kw_only=True):
    target: str  # duckdb | postgres | snowflake | bigquery | redshift | databricks | spark
    adapter_type: str  # the dbt adapter's `type:` in profiles.yml
    # The dbt target output after defaults and overrides, exactly as written to profiles.yml:
    # credentials appear only as "{{ env_var('NAME') }}" references, never as values.
    properties: dict[str, object] = {}
    # Environment variables the profile reads credentials from (names only, never values).
    secret_env_vars: tuple[str, ...] = ()
    connection_secret_ref: str | None = None
    auth_method: str | None = None  # e.g. password, keypair, oauth, service-account, token


class TransformArtifacts(msgspec.Struct, frozen=True, kw_only=True):
    type: str  # "dbt"
    path: str  # absolute path of the dbt project directory
    # The dbt project's `name:` and `profile:` from dbt_project.yml, and where its manifest is.
    # Empty in artifacts written before several projects were supported: see projects().
    name: str = ""
    profile_name: str = ""
    manifest_path: str = ""
    # Prefix of every Dagster asset key of the project (empty: dagster-dbt's own keys).
    asset_key_prefix: tuple[str, ...] = ()


class GovernanceArtifacts(msgspec.Struct, frozen=True, kw_only=True):
    classification_source: str = "dbt_meta"


class ObservabilityArtifacts(msgspec.Struct, frozen=True, kw_only=True):
    traces: bool = False
    lineage: bool = False
    # Resolved at compile time (floe.yaml's unset `logs` / `metrics` follow `traces`).
    logs: bool = False
    metrics: bool = False
    log_level: str = "info"  # debug | info | warn | error: the lowest severity exported
    otlp_endpoint: str | None = None
    lineage_endpoint: str | None = None
    attributes: dict[str, str] = {}

    @property
    def events(self) -> bool:
        """Whether the adapter writes events at all (any signal on); off is standalone mode."""
        return self.lineage or self.traces or self.logs or self.metrics


class ColumnClassification(msgspec.Struct, frozen=True, kw_only=True):
    unique_id: str  # the dbt node
    column: str
    classification: str


class CompiledArtifacts(msgspec.Struct, frozen=True, kw_only=True):
    version: int = ARTIFACTS_VERSION
    name: str
    project_version: str | None = None
    environment: str
    source_path: str  # absolute path of the floe.yaml it came from
    source_hash: str  # sha256 of that file's bytes: recompile when it changes
    compute: ComputeArtifacts
    transforms: tuple[TransformArtifacts, ...]
    governance: GovernanceArtifacts = GovernanceArtifacts()
    observability: ObservabilityArtifacts = ObservabilityArtifacts()
    dbt_project_path: str
    dbt_profile_name: str
    dbt_target_name: str
    dbt_profiles_path: str  # directory holding the generated profiles.yml
    dbt_manifest_path: str  # <project>/target/manifest.json (may not exist yet)
    column_classifications: tuple[ColumnClassification, ...] = ()

    @property
    def multi_project(self) -> bool:
        """Several dbt projects: each one its own asset group, key prefix and Dagster step."""
        return len(self.transforms) > 1

    def projects(self) -> tuple[CompiledArtifacts, ...]:
        """One view per dbt project: that project first in ``transforms`` and named by the
        ``dbt_*`` fields (the top-level ones name the first project).

        Everything that works on one dbt project takes one of these views.
        """
        if not self.multi_project:
            return (self,)
        views = []
        for index, transform in enumerate(self.transforms):
            others = self.transforms[:index] + self.transforms[index + 1 :]
            views.append(
                msgspec.structs.replace(
                    self,
                    transforms=(transform, *others),
                    dbt_project_path=transform.path,
                    dbt_profile_name=transform.profile_name or self.dbt_profile_name,
                    dbt_manifest_path=transform.manifest_path
                    or str(Path(transform.path, "target", "manifest.json")),
                )
            )
        return tuple(views)


def load_artifacts(path: Path | str) -> CompiledArtifacts:
    """Read compiled_artifacts.json; errors name the file and what to run."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactsError(
            f"{path}: compiled artifacts not found. Run `floe compile` first "
            f"(or point {ARTIFACTS_ENV} at the file)."
        ) from None
    except OSError as exc:
        raise ArtifactsError(f"{path}: cannot read the compiled artifacts ({exc})") from None
    try:
        return msgspec.json.decode(data, type=CompiledArtifacts)
    except msgspec.MsgspecError as exc:
        raise ArtifactsError(
            f"{path}: not valid compiled artifacts ({exc}). Re-run `floe compile`."
        ) from exc
