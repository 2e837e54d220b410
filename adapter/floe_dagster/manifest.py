"""The dbt manifest, loaded once and indexed into the event contract's :class:`Node` structs.

Events must be self-contained (the sidecar never reads the manifest), so every node event carries
the node's relation, upstream relations, columns, owner and tags. Building those from the
manifest's nested dicts once per node, and reusing the frozen struct for every event of that node,
keeps the per-event cost to an encode.

No dagster import here: the index is shared by the Dagster step and by tests and benches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from floe_core.artifacts import CompiledArtifacts
from floe_core.errors import ManifestError, ManifestNotFoundError
from floe_core.events import Column, Node, Relation, TestTarget
from floe_dbt.compile import column_classification

__all__ = [
    "ManifestIndex",
    "ManifestNotFoundError",
    "dbt_executable",
    "load_manifest",
    "manifest_missing_message",
    "parse_command",
    "parse_project",
]

# Resource types that dbt executes and that are datasets in the warehouse.
DATASET_TYPES = frozenset({"model", "seed", "snapshot"})

AssetKeyFn = Callable[[Mapping[str, Any]], tuple[str, ...]]


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter (a venv's own dbt), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("dbt") or "dbt"


def parse_command(artifacts: CompiledArtifacts, executable: str = "dbt") -> list[str]:
    """The ``dbt parse`` argument list that writes the manifest for ``artifacts``.

    No ``--profile``/``--target``: the generated profiles.yml names its target, and dbt's
    partial-parse state includes those two flags, so the step (which passes neither) can reuse
    the ``partial_parse.msgpack`` this command leaves behind instead of parsing again.
    """
    return [
        executable,
        "parse",
        "--project-dir",
        artifacts.dbt_project_path,
        "--profiles-dir",
        artifacts.dbt_profiles_path,
    ]


def parse_project(artifacts: CompiledArtifacts) -> Path:
    """Run ``dbt parse`` for ``artifacts``; returns the manifest path. Raises
    :class:`~floe_core.errors.ManifestError` with dbt's output."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = parse_command(artifacts, dbt_executable())
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise ManifestError(
            f"cannot run `{command[0]}` to write the dbt manifest ({exc.strerror or exc}); "
            "install dbt-core and your adapter next to floe"
        ) from None
    manifest = Path(artifacts.dbt_manifest_path)
    if result.returncode != 0 or not manifest.is_file():
        raise ManifestError(
            f"`dbt parse` failed for {artifacts.dbt_project_path} "
            f"(exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return manifest


def manifest_missing_message(artifacts: CompiledArtifacts) -> str:
    return (
        f"dbt manifest not found: {artifacts.dbt_manifest_path}. Floe builds the Dagster assets "
        "from it. Write it with `floe run` (which prepares it), or run:\n"
        f"    {' '.join(parse_command(artifacts))}"
    )


def load_manifest(artifacts: CompiledArtifacts) -> dict[str, Any]:
    """Read ``artifacts.dbt_manifest_path`` once; a missing file says what to run."""
    path = Path(artifacts.dbt_manifest_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestNotFoundError(manifest_missing_message(artifacts)) from None
    try:
        manifest = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ManifestError(
            f"{path}: not a valid dbt manifest ({exc}); re-create it with "
            f"`{' '.join(parse_command(artifacts))}`"
        ) from exc
    if not isinstance(manifest, dict) or "nodes" not in manifest:
        raise ManifestError(f"{path}: not a dbt manifest (no `nodes`)")
    return manifest


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    config = props.get("config") or {}
    meta = config.get("meta") or props.get("meta") or {}
    return meta if isinstance(meta, Mapping) else {}


def owner_of(props: Mapping[str, Any]) -> str | None:
    """The owner a dbt project declares (``meta.owner``), as written."""
    owner = _meta(props).get("owner")
    if isinstance(owner, str):
        return owner or None
    if isinstance(owner, list | tuple):
        names = [o for o in owner if isinstance(o, str) and o]
        return ", ".join(names) or None
    return None


class ManifestIndex:
    """unique_id -> :class:`Node`, built lazily from one manifest and cached."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        *,
        classifications: Mapping[tuple[str, str], str] | None = None,
        classification_from_meta: bool = True,
        asset_key: AssetKeyFn | None = None,
    ) -> None:
        self.manifest = manifest
        self._nodes: Mapping[str, Mapping[str, Any]] = manifest.get("nodes") or {}
        self._sources: Mapping[str, Mapping[str, Any]] = manifest.get("sources") or {}
        self._classifications = dict(classifications or {})
        self._classification_from_meta = classification_from_meta
        self.asset_key = asset_key
        self._cache: dict[str, Node | None] = {}
        metadata = manifest.get("metadata") or {}
        self.project_name: str | None = _str(metadata.get("project_name"))
        self.adapter_type: str | None = _str(metadata.get("adapter_type"))

    @classmethod
    def for_artifacts(
        cls,
        artifacts: CompiledArtifacts,
        manifest: Mapping[str, Any],
        *,
        asset_key: AssetKeyFn | None = None,
    ) -> ManifestIndex:
        """An index applying the artifacts' governance settings to column classifications."""
        source = artifacts.governance.classification_source
        return cls(
            manifest,
            classifications={
                (c.unique_id, c.column): c.classification for c in artifacts.column_classifications
            },
            classification_from_meta=source == "dbt_meta",
            asset_key=asset_key,
        )

    def props(self, unique_id: str) -> Mapping[str, Any] | None:
        return self._nodes.get(unique_id) or self._sources.get(unique_id)

    def is_ephemeral(self, unique_id: str) -> bool:
        props = self.props(unique_id)
        return props is not None and (props.get("config") or {}).get("materialized") == "ephemeral"

    def node(self, unique_id: str) -> Node | None:
        """The node's event struct, or None if the manifest does not know it."""
        try:
            return self._cache[unique_id]
        except KeyError:
            pass
        props = self.props(unique_id)
        node = self._build(unique_id, props) if props is not None else None
        self._cache[unique_id] = node
        return node

    def relation(self, unique_id: str) -> Relation | None:
        """Where a model, seed, snapshot or source lives; None for anything else."""
        props = self.props(unique_id)
        if props is None:
            return None
        resource_type = props.get("resource_type")
        if resource_type == "source":
            identifier = _str(props.get("identifier")) or _str(props.get("name"))
        elif resource_type in DATASET_TYPES and not self.is_ephemeral(unique_id):
            identifier = _str(props.get("alias")) or _str(props.get("name"))
        else:
            return None
        if identifier is None:
            return None
        return Relation(
            database=_str(props.get("database")),
            schema=_str(props.get("schema")),
            identifier=identifier,
        )

    def upstream_ids(self, unique_id: str) -> tuple[str, ...]:
        """The datasets a node reads, looking through ephemeral models to what they read."""
        props = self.props(unique_id)
        if props is None:
            return ()
        found: list[str] = []
        seen: set[str] = set()
        stack = list(reversed(_depends_on(props)))
        while stack:
            parent = stack.pop()
            if parent in seen:
                continue
            seen.add(parent)
            if self.is_ephemeral(parent):
                parent_props = self.props(parent) or {}
                stack.extend(reversed(_depends_on(parent_props)))
            elif self.relation(parent) is not None:
                found.append(parent)
        return tuple(found)

    def _columns(self, unique_id: str, props: Mapping[str, Any]) -> tuple[Column, ...]:
        columns = props.get("columns") or {}
        result = []
        for key, info in columns.items():
            name = _str(info.get("name")) or key
            result.append(
                Column(
                    name=name,
                    data_type=_str(info.get("data_type")),
                    description=_str(info.get("description")),
                    classification=self.classification(unique_id, name, info),
                    tags=tuple(t for t in info.get("tags") or () if isinstance(t, str)),
                )
            )
        return tuple(result)

    def classification(
        self, unique_id: str, column: str, info: Mapping[str, Any] | None = None
    ) -> str | None:
        """Compiled classifications win; otherwise the column's ``meta.classification``."""
        found = self._classifications.get((unique_id, column))
        if found is not None or not self._classification_from_meta:
            return found
        if info is None:
            props = self.props(unique_id) or {}
            info = (props.get("columns") or {}).get(column) or {}
        return column_classification(info.get("meta"), info.get("config"))

    def _test_target(self, props: Mapping[str, Any]) -> TestTarget:
        test_metadata = props.get("test_metadata") or {}
        attached = _str(props.get("attached_node"))
        if attached is None:
            parents = [p for p in _depends_on(props) if self.relation(p) is not None]
            attached = parents[0] if len(parents) == 1 else None
        return TestTarget(
            test_name=_str(test_metadata.get("name")) or str(props.get("name")),
            attached_unique_id=attached,
            attached_relation=self.relation(attached) if attached else None,
            column_name=_str(props.get("column_name")),
        )

    def _build(self, unique_id: str, props: Mapping[str, Any]) -> Node:
        resource_type = str(props.get("resource_type") or unique_id.split(".", 1)[0])
        upstream_ids = self.upstream_ids(unique_id)
        upstream = tuple(r for r in (self.relation(u) for u in upstream_ids) if r is not None)
        asset_key: tuple[str, ...] = ()
        if self.asset_key is not None and (
            resource_type in DATASET_TYPES or resource_type == "source"
        ):
            asset_key = self.asset_key(props)
        return Node(
            unique_id=unique_id,
            name=str(props.get("name") or unique_id),
            resource_type=resource_type,
            package_name=_str(props.get("package_name")),
            materialized=_str((props.get("config") or {}).get("materialized")),
            relation=self.relation(unique_id),
            upstream=upstream,
            upstream_ids=upstream_ids,
            columns=self._columns(unique_id, props),
            description=_str(props.get("description")),
            owner=owner_of(props),
            tags=tuple(t for t in props.get("tags") or () if isinstance(t, str)),
            original_file_path=_str(props.get("original_file_path")),
            asset_key=asset_key,
            test=self._test_target(props) if resource_type == "test" else None,
        )

    def compiled_path(self, unique_id: str, target_path: Path) -> Path | None:
        """Where dbt writes a node's compiled SQL under ``target_path`` (dbt's own rule)."""
        props = self.props(unique_id)
        if props is None:
            return None
        package = _str(props.get("package_name"))
        original = _str(props.get("original_file_path"))
        path = _str(props.get("path"))
        if package is None or original is None or path is None:
            return None
        if os.path.basename(path) == os.path.basename(original):
            relative = original
        else:  # many nodes from one file (generic tests, YAML snapshots)
            relative = os.path.join(original, path)
        return target_path / "compiled" / package / relative


def _depends_on(props: Mapping[str, Any]) -> list[str]:
    nodes: Iterable[Any] = (props.get("depends_on") or {}).get("nodes") or ()
    return [n for n in nodes if isinstance(n, str)]
