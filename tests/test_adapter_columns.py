"""The adapter's column parts: classification propagation (pure), Dagster's column metadata
(pure), and RunColumns through the run (what the capture seam feeds)."""

from __future__ import annotations

from dagster import AssetKey, TableColumnLineage, TableSchema

from floe_core.classification import propagate
from floe_core.column_lineage import column_lineage
from floe_core.events import Classification, Column, ColumnRef, Node, Relation
from floe_dagster.column_metadata import COLUMN_LINEAGE_KEY, COLUMN_SCHEMA_KEY, column_metadata
from floe_dagster.columns import CapturedColumns, RunColumns
from floe_dagster.manifest import ManifestIndex

RAW = Relation(database="shop", schema="raw", identifier="customers")
STG = Relation(database="shop", schema="main", identifier="stg_customers")


def test_propagation_inherits_masks_and_ignores_indirect_edges() -> None:
    sql = (
        "select email, lower(email) as email_lower, md5(email) as email_hash, "
        'count(email) as emails, id from "shop"."raw"."customers" where email like \'%@x\''
        " group by email, id"
    )
    upstream = {RAW: (Column(name="id"), Column(name="email", classification="pii"))}
    lineage = column_lineage(sql, dialect="duckdb", upstream=upstream)
    out = propagate(
        [Column(name=n) for n in ("email", "email_lower", "email_hash", "emails", "id")],
        lineage,
        upstream,
    )
    origins = {c.name: [(i.classification, i.origin) for i in c.classifications] for c in out}
    assert origins == {
        "email": [("pii", "inherited")],
        "email_lower": [("pii", "inherited")],
        "email_hash": [("pii", "masked")],
        "emails": [("pii", "masked")],
        "id": [],  # grouped and filtered by email: INDIRECT edges pass nothing on
    }
    assert out[0].classifications[0].sources == (ColumnRef(relation=RAW, column="email"),)


def test_masked_stays_masked_and_roots_follow_the_run() -> None:
    masked = Classification(
        classification="pii", origin="masked", sources=(ColumnRef(relation=RAW, column="email"),)
    )
    upstream = {STG: (Column(name="email_hash", classifications=(masked,)),)}
    lineage = column_lineage(
        'select email_hash as k from "shop"."main"."stg_customers"',
        dialect="duckdb",
        upstream=upstream,
    )
    [k] = propagate([Column(name="k", classification="internal")], lineage, upstream)
    assert [(i.classification, i.origin, i.sources) for i in k.classifications] == [
        ("internal", "declared", ()),
        ("pii", "masked", (ColumnRef(relation=RAW, column="email"),)),
    ]


def test_dagster_column_metadata_has_types_tags_and_asset_keys() -> None:
    upstream = {RAW: (Column(name="id"), Column(name="email", classification="pii"))}
    lineage = column_lineage(
        'select id as customer_id, md5(email) as h from "shop"."raw"."customers"',
        dialect="duckdb",
        upstream=upstream,
    )
    columns = propagate(
        [Column(name="customer_id", data_type="INTEGER"), Column(name="h", data_type="VARCHAR")],
        lineage,
        upstream,
    )
    metadata = column_metadata(columns, lineage, {RAW: AssetKey(["raw_customers"])}.get)
    schema = metadata[COLUMN_SCHEMA_KEY]
    assert isinstance(schema, TableSchema)
    assert [(c.name, c.type) for c in schema.columns] == [
        ("customer_id", "INTEGER"),
        ("h", "VARCHAR"),
    ]
    assert schema.columns[1].tags == {"floe/masked_classification": "pii"}
    deps = metadata[COLUMN_LINEAGE_KEY]
    assert isinstance(deps, TableColumnLineage)
    assert {
        c: [(d.asset_key, d.column_name) for d in v] for c, v in deps.deps_by_column.items()
    } == {
        "customer_id": [(AssetKey(["raw_customers"]), "id")],
        "h": [(AssetKey(["raw_customers"]), "email")],
    }
    assert column_metadata((), None, {}.get) == {}


def test_run_columns_carry_what_earlier_nodes_finished_with() -> None:
    manifest = {"nodes": {}, "sources": {}, "metadata": {"adapter_type": "duckdb"}}
    run = RunColumns(ManifestIndex(manifest), "duckdb")
    seed = Node(
        unique_id="seed.shop.customers",
        name="customers",
        resource_type="seed",
        relation=RAW,
        columns=(Column(name="email", classification="pii"),),
    )
    model = Node(
        unique_id="model.shop.stg_customers",
        name="stg_customers",
        resource_type="model",
        relation=STG,
        upstream=(RAW,),
        upstream_ids=("seed.shop.customers",),
    )
    seed_columns, seed_lineage = run.describe(
        seed,
        None,
        CapturedColumns(
            output=(
                Column(name="id", data_type="INTEGER"),
                Column(name="email", data_type="VARCHAR"),
            )
        ),
    )
    assert seed_lineage is None
    assert [c.classifications for c in seed_columns][1][0].origin == "declared"
    # The model's capture has no upstream columns: the seed's, as the run knows them, are used.
    columns, lineage = run.describe(
        model,
        'select email as contact from "shop"."raw"."customers"',
        CapturedColumns(output=(Column(name="contact", data_type="VARCHAR"),)),
    )
    assert lineage is not None and lineage.errors == ()
    assert [(i.classification, i.origin) for i in columns[0].classifications] == [
        ("pii", "inherited")
    ]
    assert run.known(STG) == columns
