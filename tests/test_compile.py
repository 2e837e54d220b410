"""floe compile end to end: artifacts, profiles.yml, real `dbt build` on DuckDB and PostgreSQL,
environments, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.environment import REPO_ROOT, Postgres

from floe_cli.main import main
from floe_core.artifacts import load_artifacts
from floe_core.config import FloeConfigError
from floe_dbt.compile import compile_floe, validate_floe
from floe_dbt.connection import connection_identity

BIN = Path(sys.executable).parent


def dbt_build(project_dir: Path, profiles_dir: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [
            str(BIN / "dbt"),
            "build",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(profiles_dir),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Completed successfully" in result.stdout


def edit_yaml(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_compile_example_then_dbt_build_on_duckdb(example_dir: Path) -> None:
    out = example_dir / ".floe"
    artifacts = compile_floe(example_dir / "floe.yaml", output_dir=out)

    assert artifacts.environment == "dev"
    assert artifacts.compute.target == "duckdb"
    assert artifacts.dbt_profile_name == "shop"
    assert artifacts.dbt_target_name == "dev"
    assert artifacts.dbt_project_path == str(example_dir / "dbt")
    assert artifacts.dbt_profiles_path == str(out / "profiles")
    assert artifacts.dbt_manifest_path == str(example_dir / "dbt" / "target" / "manifest.json")
    assert artifacts.observability.attributes == {"tenant": "example"}
    assert artifacts.transforms[0].path == str(example_dir / "dbt")
    assert len(artifacts.source_hash) == 64
    assert load_artifacts(out / "compiled_artifacts.json") == artifacts
    assert artifacts.column_classifications == ()  # no manifest yet

    dbt_build(example_dir / "dbt", out / "profiles")
    assert (example_dir / ".floe" / "shop.duckdb").is_file()

    # With a manifest, compile picks up the column classifications from dbt meta.
    artifacts = compile_floe(example_dir / "floe.yaml", output_dir=out)
    found = {(c.unique_id, c.column, c.classification) for c in artifacts.column_classifications}
    assert found == {
        ("model.shop.customers", "email", "pii"),
        ("model.shop.customers", "lifetime_value", "confidential"),
        ("model.shop.stg_customers", "email", "pii"),
        ("seed.shop.raw_customers", "email", "pii"),
    }


def test_compile_example_prod_then_dbt_build_on_postgres(
    example_dir: Path, postgres: Postgres
) -> None:
    def point_at_test_server(data: dict[str, Any]) -> None:
        props = data["environments"]["prod"]["compute"]["properties"]
        props.update(
            host=postgres.host,
            port=postgres.port,
            user=postgres.user,
            dbname=postgres.dbname,
            schema=postgres.schema,
        )

    edit_yaml(example_dir / "floe.yaml", point_at_test_server)
    artifacts = compile_floe(example_dir / "floe.yaml", "prod", example_dir / ".floe")
    assert artifacts.compute.target == "postgres"
    assert artifacts.compute.secret_env_vars == ("FLOE_SHOP_WAREHOUSE_PROD_PASSWORD",)
    profiles = Path(artifacts.dbt_profiles_path)
    # trust auth on the test server: any password is accepted, but dbt needs the variable set
    dbt_build(example_dir / "dbt", profiles, {"FLOE_SHOP_WAREHOUSE_PROD_PASSWORD": "unused"})

    import psycopg2

    conn = psycopg2.connect(
        host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname
    )
    with conn, conn.cursor() as cur:
        cur.execute(f'select count(*) from "{postgres.schema}".orders')
        (rows,) = cur.fetchone()
    conn.close()
    assert rows > 0


TWO_ENVS = """\
name: shop
compute:
  target: postgres
  connection_secret_ref: warehouse
  properties:
    host: dev-db.internal
    user: "{{ env_var('PGUSER', 'floe') }}"
    dbname: shop_dev
transforms:
  - {type: dbt, path: dbt}
environments:
  prod:
    compute:
      properties:
        host: "{{ env_var('PROD_PG_HOST') }}"
        dbname: shop
        schema: analytics
"""


def make_two_env_project(root: Path) -> Path:
    (root / "dbt").mkdir()
    (root / "dbt" / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    path = root / "floe.yaml"
    path.write_text(TWO_ENVS)
    return path


def test_dev_and_prod_differ_in_connection_and_secret_names(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    dev = compile_floe(path, "dev", tmp_path / "out-dev")
    prod = compile_floe(path, "prod", tmp_path / "out-prod")

    assert dev.compute.secret_env_vars == ("FLOE_WAREHOUSE_DEV_PASSWORD",)
    assert prod.compute.secret_env_vars == ("FLOE_WAREHOUSE_PROD_PASSWORD",)
    assert not set(dev.compute.secret_env_vars) & set(prod.compute.secret_env_vars)

    environ = {"PROD_PG_HOST": "prod-db.internal", "FLOE_WAREHOUSE_PROD_PASSWORD": "pw"}
    dev_conn = connection_identity(dev, environ)
    prod_conn = connection_identity(prod, environ)
    assert (dev_conn.host, dev_conn.database, dev_conn.schema) == (
        "dev-db.internal",
        "shop_dev",
        "public",
    )
    assert (prod_conn.host, prod_conn.database, prod_conn.schema) == (
        "prod-db.internal",
        "shop",
        "analytics",
    )
    assert dev_conn.port == prod_conn.port == 5432

    for created in (tmp_path / "out-dev", tmp_path / "out-dev" / "profiles"):
        assert created.stat().st_mode & 0o777 == 0o700
    dev_yml = (tmp_path / "out-dev" / "profiles" / "profiles.yml").read_text()
    prod_yml = (tmp_path / "out-prod" / "profiles" / "profiles.yml").read_text()
    assert "FLOE_WAREHOUSE_DEV_PASSWORD" in dev_yml and "PROD" not in dev_yml
    assert "FLOE_WAREHOUSE_PROD_PASSWORD" in prod_yml and "_DEV_" not in prod_yml
    assert yaml.safe_load(prod_yml)["shop"]["target"] == "prod"


def test_connection_identity_never_resolves_secrets(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    prod = validate_floe(path, "prod")
    conn = connection_identity(prod, {"FLOE_WAREHOUSE_PROD_PASSWORD": "s3cret"})
    assert "s3cret" not in json.dumps(conn.__struct_fields__) + repr(conn)
    assert conn.host is None  # PROD_PG_HOST unset and without default: unknown, not a template
    assert conn.target == "postgres" and conn.adapter_type == "postgres"


def test_connection_identity_for_each_target_kind(example_dir: Path) -> None:
    dev = validate_floe(example_dir / "floe.yaml")
    conn = connection_identity(dev, {})
    assert conn.path == str(example_dir / ".floe" / "shop.duckdb")
    assert (conn.database, conn.schema) == ("shop", "main")


def test_compile_overwrites_existing_profiles_and_files_are_owner_only(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    profiles = tmp_path / ".floe" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "profiles.yml").write_text("old: {}\n")
    os.chmod(profiles / "profiles.yml", 0o644)
    compile_floe(path, output_dir=tmp_path / ".floe")
    text = (profiles / "profiles.yml").read_text()
    assert "old:" not in text and "shop:" in text
    for file in (profiles / "profiles.yml", tmp_path / ".floe" / "compiled_artifacts.json"):
        assert file.stat().st_mode & 0o777 == 0o600
    assert not [p for p in profiles.iterdir() if p.name.endswith(".tmp")]


def test_validate_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_two_env_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    validate_floe(path, "prod")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_missing_transforms_path(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    path.write_text(TWO_ENVS.replace("path: dbt", "path: transform/dbt"))
    with pytest.raises(FloeConfigError) as info:
        validate_floe(path)
    assert info.value.field == "transforms[0].path"
    assert str(path) in str(info.value) and "fix:" in str(info.value)
    assert info.value.line == 10  # the `- {type: dbt, path: ...}` line


def test_dbt_project_without_profile(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    (tmp_path / "dbt" / "dbt_project.yml").write_text("name: shop\n")
    with pytest.raises(FloeConfigError, match="profile: shop"):
        validate_floe(path)


def test_profile_name_comes_from_dbt_project(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    (tmp_path / "dbt" / "dbt_project.yml").write_text("name: shop\nprofile: acme_wh\n")
    artifacts = compile_floe(path, output_dir=tmp_path / ".floe")
    assert artifacts.dbt_profile_name == "acme_wh"
    assert "acme_wh" in yaml.safe_load((tmp_path / ".floe/profiles/profiles.yml").read_text())


def test_classifications_from_column_meta_and_config_meta(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    manifest = {
        "nodes": {
            "model.shop.a": {
                "columns": {"email": {"meta": {"classification": "pii"}}, "id": {"meta": {}}},
                "unique_id": "model.shop.a",
            },
            "model.shop.b": {
                "columns": {"ssn": {"meta": {}, "config": {"meta": {"classification": "secret"}}}}
            },
        },
        "sources": {
            "source.shop.web.events": {"columns": {"ip": {"meta": {"classification": "pii"}}}}
        },
        "metadata": {"dbt_version": "1.11.0"},
    }
    (tmp_path / "dbt" / "target").mkdir()
    (tmp_path / "dbt" / "target" / "manifest.json").write_text(json.dumps(manifest))
    got = {
        (c.unique_id, c.column, c.classification)
        for c in validate_floe(path).column_classifications
    }
    assert got == {
        ("model.shop.a", "email", "pii"),
        ("model.shop.b", "ssn", "secret"),
        ("source.shop.web.events", "ip", "pii"),
    }
    path.write_text(TWO_ENVS + "governance: {classification_source: none}\n")
    assert validate_floe(path).column_classifications == ()


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_compile_validate_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_two_env_project(tmp_path)
    assert main(["compile", str(path), "--env", "prod", "--output-dir", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "FLOE_WAREHOUSE_PROD_PASSWORD" in out and "dbt build" in out
    assert (tmp_path / "o" / "compiled_artifacts.json").is_file()
    assert main(["validate", str(tmp_path)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (REPO_ROOT / "schemas" / "floe.schema.json").read_text()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (TWO_ENVS.replace("target: postgres", "target: oracle"), "compute.target"),
        (
            TWO_ENVS.replace("  properties:\n    host", "  propertes:\n    host"),
            "compute.propertes",
        ),
        (TWO_ENVS + "observability: {traces: sometimes}\n", "observability.traces"),
        (
            TWO_ENVS.replace("user: \"{{ env_var('PGUSER', 'floe') }}\"", "password: hunter2"),
            "compute.properties.password",
        ),
        (TWO_ENVS.replace("path: dbt}", "path: nowhere}"), "transforms[0].path"),
        (TWO_ENVS.replace("name: shop", "name: [shop"), "invalid YAML"),
    ],
    ids=[
        "unsupported-target",
        "unknown-field",
        "wrong-type",
        "literal-secret",
        "missing-path",
        "bad-yaml",
    ],
)
def test_cli_errors_exit_2_with_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str
) -> None:
    path = make_two_env_project(tmp_path)
    path.write_text(text)
    for command in ("compile", "validate"):
        assert main([command, str(path), "--env", "dev"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert str(path) in captured.err and field in captured.err
        assert "fix:" in captured.err
        assert "Traceback" not in captured.err and "hunter2" not in captured.err
    assert not (tmp_path / ".floe").exists()


def test_console_script_exit_code_and_no_dagster_import(tmp_path: Path) -> None:
    path = make_two_env_project(tmp_path)
    ok = subprocess.run(
        [str(BIN / "floe"), "compile", str(path), "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [str(BIN / "floe"), "validate", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "file not found" in bad.stderr and "Traceback" not in bad.stderr
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from floe_cli.main import main; main(sys.argv[1:]); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_dbt', "
            "'dbt')); print(bad); sys.exit(1 if bad else 0)",
            "compile",
            str(path),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
