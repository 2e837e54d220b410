"""How dbt nodes look as Dagster assets: dagster-dbt's defaults plus what floe knows.

Everything dagster-dbt derives (asset keys, deps, checks, ``dagster/column_schema``,
``dagster/table_name``, materialization type, kinds, code version) is kept; floe adds column
classifications to the column schema, the dbt ``meta.owner`` as Dagster owners (normalised to what
Dagster accepts: an e-mail address or ``team:<name>``), and a group for every asset.

With several dbt projects in one floe.yaml, each project's translator puts the project's prefix in
front of every asset key (a key set in ``meta.dagster.asset_key`` is kept as written: that is how
one project's source names another project's model) and groups the project's assets under its
name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, MetadataValue, TableColumn, TableSchema
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from floe_dagster.manifest import ManifestIndex, owner_of

__all__ = ["FloeDbtTranslator", "normalize_owner", "normalize_owners"]

COLUMN_SCHEMA_KEY = "dagster/column_schema"
CLASSIFICATIONS_KEY = "floe/classifications"
OWNER_KEY = "floe/owner"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")
_NOT_TEAM_CHARS = re.compile(r"[^A-Za-z0-9_.@-]+")
_NOT_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def normalize_owner(owner: str) -> str | None:
    """An owner Dagster accepts: e-mails and ``team:x`` as is, any other name as ``team:<slug>``."""
    owner = owner.strip()
    if not owner:
        return None
    if _EMAIL.fullmatch(owner):
        return owner
    name = owner[5:] if owner.startswith("team:") else owner
    slug = _NOT_TEAM_CHARS.sub("-", name.strip()).strip("-").lower()
    return f"team:{slug}" if slug else None


def normalize_owners(owners: Sequence[str] | str | None) -> list[str]:
    if owners is None:
        return []
    raw = owners.split(",") if isinstance(owners, str) else owners
    result: list[str] = []
    for item in raw:
        normalized = normalize_owner(item) if isinstance(item, str) else None
        if normalized and normalized not in result:
            result.append(normalized)
    return result


def _group_name(name: str) -> str | None:
    cleaned = _NOT_GROUP_CHARS.sub("_", name).strip("_")
    return cleaned or None


class FloeDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's translator with floe's owners, groups and column classifications."""

    def __init__(
        self,
        index: ManifestIndex,
        settings: DagsterDbtTranslatorSettings | None = None,
        *,
        asset_key_prefix: Sequence[str] = (),
        group: str | None = None,
    ) -> None:
        super().__init__(settings)
        self.index = index
        self.asset_key_prefix = tuple(asset_key_prefix)
        self.group = _group_name(group) if group else None

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        key = super().get_asset_key(dbt_resource_props)
        if not self.asset_key_prefix or _explicit_asset_key(dbt_resource_props):
            return key
        return AssetKey([*self.asset_key_prefix, *key.path])

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        unique_id = str(dbt_resource_props.get("unique_id", ""))
        columns = dbt_resource_props.get("columns") or {}
        classified: dict[str, str] = {}
        for key, info in columns.items():
            name = info.get("name") or key
            found = self.index.classification(unique_id, name, info)
            if found:
                classified[name] = found
        schema = metadata.get(COLUMN_SCHEMA_KEY)
        if classified and isinstance(schema, TableSchema):
            metadata[COLUMN_SCHEMA_KEY] = TableSchema(
                columns=[
                    _classified(column, classified.get(column.name)) for column in schema.columns
                ],
                constraints=schema.constraints,
            )
        if classified:
            metadata[CLASSIFICATIONS_KEY] = MetadataValue.json(classified)
        owner = owner_of(dbt_resource_props)
        if owner:
            metadata[OWNER_KEY] = MetadataValue.text(owner)
        return metadata

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        owners = normalize_owners(super().get_owners(dbt_resource_props))
        if not owners:
            owners = normalize_owners(owner_of(dbt_resource_props))
        return owners or None

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """dbt group or ``meta.dagster.group``; else the project's group (several projects);
        else the folder under the resource path (``staging``, ``marts``); else the resource type
        (``seeds``, ``snapshots``)."""
        configured = super().get_group_name(dbt_resource_props)
        if configured:
            return _group_name(configured)
        if self.group:
            return self.group
        fqn = dbt_resource_props.get("fqn") or []
        if len(fqn) >= 3 and isinstance(fqn[1], str):
            return _group_name(fqn[1])
        resource_type = dbt_resource_props.get("resource_type")
        return _group_name(f"{resource_type}s") if isinstance(resource_type, str) else None


def _explicit_asset_key(props: Mapping[str, Any]) -> bool:
    """The node names its Dagster asset key itself (``meta.dagster.asset_key``)."""
    for meta in (props.get("meta"), (props.get("config") or {}).get("meta")):
        if isinstance(meta, Mapping):
            dagster = meta.get("dagster")
            if isinstance(dagster, Mapping) and dagster.get("asset_key"):
                return True
    return False


def _classified(column: TableColumn, classification: str | None) -> TableColumn:
    if not classification:
        return column
    return TableColumn(
        name=column.name,
        type=column.type,
        description=column.description,
        constraints=column.constraints,
        tags={**column.tags, "classification": classification},
    )
