"""The hand-written truth for examples/shop holds on real builds, on DuckDB and on PostgreSQL.

dbt builds the example for real; then, for every seed, model and the snapshot in build order,
the warehouse's own columns (information_schema, read after dbt exited) go through
:class:`floe_dagster.columns.RunColumns` exactly as the adapter's capture hands them over while
dbt runs. The result must be the truth in ``support.shop_column_lineage``: the real columns and
types, every edge and its type, and the classifications (the inherited ``pii`` on the downstream
e-mail columns and nowhere else).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.adapter import copy_example, env_vars, prepare, set_prod_schema
from support.column_lineage_corpus import Case, actual_edges, expected_edges
from support.environment import Postgres
from support.shop_column_lineage import SHOP, ShopNode

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Column, Relation
from floe_dagster.columns import CapturedColumns, RunColumns
from floe_dagster.manifest import ManifestIndex, dbt_executable, load_manifest

pytestmark = pytest.mark.slow


def build(project: Path, environment: str | None) -> CompiledArtifacts:
    artifacts = prepare(project, env=environment)
    done = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--project-dir",
            artifacts.dbt_project_path,
            "--profiles-dir",
            artifacts.dbt_profiles_path,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return artifacts


def information_schema(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], tuple[Column, ...]]:
    found: dict[tuple[str, str], list[Column]] = {}
    for schema, table, name, data_type in rows:
        found.setdefault((schema, table), []).append(Column(name=name, data_type=data_type))
    return {key: tuple(value) for key, value in found.items()}


QUERY = (
    "select table_schema, table_name, column_name, data_type from information_schema.columns "
    "where table_schema like %s order by table_schema, table_name, ordinal_position"
)


def check(
    artifacts: CompiledArtifacts, warehouse: dict[tuple[str, str], tuple[Column, ...]], types: int
) -> None:
    manifest = load_manifest(artifacts)
    index = ManifestIndex.for_artifacts(artifacts, manifest)
    target = Path(artifacts.dbt_project_path) / "target"
    run = RunColumns(index, index.adapter_type)

    def real(relation: Relation) -> tuple[Column, ...]:
        return warehouse[(relation.schema or "", relation.identifier)]

    truths = {t.unique_id: t for t in SHOP}
    for truth in SHOP:
        if truth.unique_id.startswith("source."):
            continue
        node = index.node(truth.unique_id)
        assert node is not None and node.relation is not None
        path = index.compiled_path(node.unique_id, target)
        sql = path.read_text() if path is not None and path.is_file() else None
        if node.resource_type == "model":
            assert sql, f"no compiled SQL for {node.unique_id}"
        captured = CapturedColumns(
            output=real(node.relation), upstream={r: real(r) for r in node.upstream}
        )
        columns, lineage = run.describe(node, sql, captured)
        assert [(c.name, c.data_type) for c in columns] == [
            (name, kinds) for name, *both in truth.columns for kinds in [both[types]]
        ], node.unique_id
        assert_lineage(truth, lineage)
        assert_classifications(truth, truths, columns)


def assert_lineage(truth: ShopNode, lineage: Any) -> None:
    if truth.unique_id.startswith("seed."):
        assert lineage is None
        return
    assert lineage is not None and lineage.errors == (), (truth.unique_id, lineage)
    case = Case(truth.unique_id, "", "", {}, truth.fields, truth.dataset)
    assert actual_edges(lineage) == expected_edges(case), truth.unique_id
    assert [c.column for c in lineage.columns] == [name for name, *_ in truth.columns]


def assert_classifications(
    truth: ShopNode, truths: dict[str, ShopNode], columns: tuple[Column, ...]
) -> None:
    found = {
        c.name: [
            (
                item.classification,
                item.origin,
                sorted(f"{ref.relation.identifier}.{ref.column}" for ref in item.sources),
            )
            for item in c.classifications
        ]
        for c in columns
        if c.classifications
    }
    assert found == truth.classifications, truth.unique_id


def test_duckdb(tmp_path: Path) -> None:
    import duckdb  # installed with dbt-duckdb

    project = copy_example(tmp_path / "shop")
    artifacts = build(project, None)
    database = project / ".floe" / "shop.duckdb"
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(QUERY.replace("%s", "?"), ["main%"]).fetchall()
    check(artifacts, information_schema(rows), 0)


def test_postgres(tmp_path: Path, postgres: Postgres) -> None:
    import psycopg2  # installed with dbt-postgres

    project = copy_example(tmp_path / "shop")
    set_prod_schema(project, postgres.schema)
    with env_vars({"FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "unused"}):  # trust auth
        artifacts = build(project, "prod")
    connection = psycopg2.connect(
        host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(QUERY, (f"{postgres.schema}%",))
            rows = cursor.fetchall()
    finally:
        connection.close()
    check(artifacts, information_schema(rows), 1)
