"""Generated profiles load through dbt-core's own profile parsing, for every target and every
auth method, with the target's real dbt adapter; no generated file ever holds a secret value.

Each case compiles a floe.yaml, sets every credential variable the profile reads to a sentinel,
renders profiles.yml with dbt's ProfileRenderer, builds the adapter's Credentials class (which
runs its own validation) and checks the credentials received the sentinels: so the env_var()
wiring is right, and the sentinels are nowhere in floe's outputs. Nothing here may reach the
internet: a guard refuses any non-loopback address, and Databricks OAuth discovers its
endpoints from a loopback server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.environment import need

from floe_core.config import FloeConfigError, parse_config
from floe_dbt.compile import compile_floe
from floe_dbt.profiles import TARGETS, build_output, env_var_name

SECRET_PREFIX = "S3NTINEL"

# (case id, target, compute.properties, expected auth method)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("duckdb", "duckdb", {"extensions": ["parquet"]}, "none"),
    ("postgres-password", "postgres", {"user": "floe", "dbname": "warehouse"}, "password"),
    (
        "snowflake-password",
        "snowflake",
        {"account": "acme-xy1", "user": "floe", "database": "DB", "warehouse": "WH", "schema": "S"},
        "password",
    ),
    (
        "snowflake-keypair",
        "snowflake",
        {
            "authenticator": "snowflake_jwt",
            "account": "acme-xy1",
            "user": "floe",
            "database": "DB",
            "warehouse": "WH",
            "schema": "S",
        },
        "keypair",
    ),
    (
        "snowflake-externalbrowser",
        "snowflake",
        {
            "authenticator": "externalbrowser",
            "account": "acme-xy1",
            "user": "floe@acme.example",
            "database": "DB",
            "warehouse": "WH",
            "schema": "S",
        },
        "externalbrowser",
    ),
    (
        "snowflake-oauth",
        "snowflake",
        {
            "authenticator": "oauth",
            "account": "acme-xy1",
            "database": "DB",
            "warehouse": "WH",
            "schema": "S",
        },
        "oauth",
    ),
    ("bigquery-oauth", "bigquery", {"project": "acme-analytics", "dataset": "shop"}, "oauth"),
    (
        "bigquery-service-account",
        "bigquery",
        {"method": "service-account", "project": "acme-analytics", "dataset": "shop"},
        "service-account",
    ),
    (
        "bigquery-service-account-json",
        "bigquery",
        {
            "method": "service-account-json",
            "project": "acme-analytics",
            "dataset": "shop",
            "keyfile_json": {
                "project_id": "acme-analytics",
                "client_email": "floe@acme-analytics.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": "https://oauth2.googleapis.com/token",
            },
        },
        "service-account-json",
    ),
    (
        "bigquery-oauth-secrets",
        "bigquery",
        {"method": "oauth-secrets", "project": "acme-analytics", "dataset": "shop"},
        "oauth-secrets",
    ),
    (
        "redshift-database",
        "redshift",
        {"host": "wh.acme.example", "user": "floe", "dbname": "dev", "schema": "shop"},
        "database",
    ),
    (
        "redshift-iam",
        "redshift",
        {
            "method": "iam",
            "host": "wh.acme.example",
            "user": "floe",
            "dbname": "dev",
            "schema": "shop",
            "cluster_id": "wh",
            "region": "eu-west-1",
        },
        "iam",
    ),
    (
        "databricks-token",
        "databricks",
        {"host": "dbc-floe.cloud.databricks.com", "http_path": "/sql/1.0/w/1", "schema": "shop"},
        "token",
    ),
    (
        "databricks-oauth",
        "databricks",
        # host: the loopback OIDC server (filled in by the test)
        {"auth_type": "oauth", "http_path": "/sql/1.0/w/1", "schema": "shop", "catalog": "main"},
        "oauth",
    ),
    (
        "spark-thrift",
        "spark",
        {"host": "spark.acme.example", "port": 10000, "schema": "shop"},
        "thrift",
    ),
    (
        "spark-thrift-ldap",
        "spark",
        {"host": "spark.acme.example", "auth": "LDAP", "user": "floe", "schema": "shop"},
        "thrift-ldap",
    ),
    (
        "spark-http",
        "spark",
        {
            "method": "http",
            "host": "dbc-floe.cloud.databricks.com",
            "cluster": "0123-x",
            "schema": "shop",
        },
        "http",
    ),
    (
        "spark-odbc",
        "spark",
        {
            "method": "odbc",
            "host": "dbc-floe.cloud.databricks.com",
            "endpoint": "abc123",
            "driver": "/opt/simba/spark/lib/64/libsparkodbc_sb64.so",
            "schema": "shop",
        },
        "odbc",
    ),
    ("spark-session", "spark", {"method": "session", "schema": "shop"}, "session"),
]


# The variables each case's profile must read its credentials from, written out by hand: taken
# from build_output (the code under test), a bug that drops a reference would shrink its own
# expectation (issue 17, item 6).
EXPECTED_SECRETS: dict[str, tuple[str, ...]] = {
    "duckdb": (),
    "postgres-password": ("FLOE_WH_DEV_PASSWORD",),
    "snowflake-password": ("FLOE_WH_DEV_PASSWORD",),
    "snowflake-keypair": ("FLOE_WH_DEV_PRIVATE_KEY_PASSPHRASE", "FLOE_WH_DEV_PRIVATE_KEY_PATH"),
    "snowflake-externalbrowser": (),
    "snowflake-oauth": (
        "FLOE_WH_DEV_OAUTH_CLIENT_ID",
        "FLOE_WH_DEV_OAUTH_CLIENT_SECRET",
        "FLOE_WH_DEV_TOKEN",
    ),
    "bigquery-oauth": (),
    "bigquery-service-account": ("FLOE_WH_DEV_KEYFILE",),
    "bigquery-service-account-json": ("FLOE_WH_DEV_PRIVATE_KEY", "FLOE_WH_DEV_PRIVATE_KEY_ID"),
    "bigquery-oauth-secrets": (
        "FLOE_WH_DEV_CLIENT_ID",
        "FLOE_WH_DEV_CLIENT_SECRET",
        "FLOE_WH_DEV_REFRESH_TOKEN",
    ),
    "redshift-database": ("FLOE_WH_DEV_PASSWORD",),
    "redshift-iam": ("FLOE_WH_DEV_AWS_ACCESS_KEY_ID", "FLOE_WH_DEV_AWS_SECRET_ACCESS_KEY"),
    "databricks-token": ("FLOE_WH_DEV_TOKEN",),
    "databricks-oauth": ("FLOE_WH_DEV_CLIENT_ID", "FLOE_WH_DEV_CLIENT_SECRET"),
    "spark-thrift": (),
    "spark-thrift-ldap": ("FLOE_WH_DEV_PASSWORD",),
    "spark-http": ("FLOE_WH_DEV_TOKEN",),
    "spark-odbc": ("FLOE_WH_DEV_TOKEN",),
    "spark-session": (),
}

# Each adapter's Credentials fields that hold a credential (so floe.yaml may only hold an
# env_var() reference there), written out from the adapters' documentation; the test below
# checks floe's rule against every field of the real classes.
ADAPTER_CREDENTIAL_FIELDS: dict[str, set[str]] = {
    "duckdb": {"motherduck_token"},
    "postgres": {"password"},
    "snowflake": {
        "password",
        "private_key",
        "private_key_passphrase",
        "token",
        "oauth_client_secret",
    },
    "bigquery": {"token", "refresh_token", "client_secret"},
    "redshift": {"password", "secret_access_key"},
    "databricks": {"token", "client_secret", "azure_client_secret"},
    "spark": {"token", "password"},
}


def floe_yaml(target: str, properties: dict[str, Any], **extra: Any) -> str:
    doc: dict[str, Any] = {
        "name": "shop",
        "compute": {"target": target, "properties": properties, **extra},
        "transforms": [{"type": "dbt", "path": "dbt"}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def make_project(root: Path, text: str) -> Path:
    (root / "dbt").mkdir(parents=True)
    (root / "dbt" / "dbt_project.yml").write_text(
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"
    )
    path = root / "floe.yaml"
    path.write_text(text)
    return path


def load_with_dbt(profiles_dir: Path, target: str) -> Any:
    """dbt-core's own path: read profiles.yml, render env_var(), build + validate Credentials."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ))  # dbt's env_var() reads this snapshot
    raw = read_profile(str(profiles_dir))
    return Profile.from_raw_profiles(raw, "shop", ProfileRenderer({}), target_override=target)


def test_cases_cover_every_target_and_auth_method() -> None:
    covered = {(target, method) for _, target, _, method in CASES}
    offered = {(t, m) for t, profile in TARGETS.items() for m in profile.methods}
    offered.add(("spark", "thrift-ldap"))
    assert offered <= covered, f"untested auth methods: {offered - covered}"
    assert set(EXPECTED_SECRETS) == {case for case, *_ in CASES}
    assert set(TARGETS) == {
        "duckdb",
        "postgres",
        "snowflake",
        "bigquery",
        "redshift",
        "databricks",
        "spark",
    }


@pytest.mark.usefixtures("dbt_flags", "no_internet")
@pytest.mark.parametrize(
    ("case", "target", "properties", "method"), CASES, ids=[c[0] for c in CASES]
)
def test_profile_loads_in_dbt_and_outputs_hold_no_secret(
    case: str,
    target: str,
    properties: dict[str, Any],
    method: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    oidc_server: str,
) -> None:
    if case == "spark-odbc":
        need(_imports("pyodbc"), "pyodbc with libodbc.so.2 (apt-get install libodbc2)")
    if case == "databricks-oauth":
        properties = {**properties, "host": oidc_server}
    path = make_project(tmp_path, floe_yaml(target, properties, connection_secret_ref="wh"))

    # Sentinels are in the environment before compile: compile must not copy them anywhere.
    config = parse_config(path.read_bytes(), path, None)
    assert build_output(config).secret_env_vars == EXPECTED_SECRETS[case]
    sentinels = {name: f"{SECRET_PREFIX}-{name}-value" for name in EXPECTED_SECRETS[case]}
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    if target == "snowflake" and method == "keypair":
        # a path is not a secret, but it is read from the env: point it at a real file name
        monkeypatch.setenv("FLOE_WH_DEV_PRIVATE_KEY_PATH", str(tmp_path / "rsa_key.p8"))
        sentinels.pop("FLOE_WH_DEV_PRIVATE_KEY_PATH")
    monkeypatch.chdir(tmp_path)

    artifacts = compile_floe(path, output_dir=tmp_path / ".floe")
    assert artifacts.compute.auth_method == method
    assert artifacts.compute.target == target
    for name in artifacts.compute.secret_env_vars:
        assert name.startswith("FLOE_WH_DEV_"), name

    profile = load_with_dbt(Path(artifacts.dbt_profiles_path), "dev")
    credentials = profile.credentials
    assert credentials.type == TARGETS[target].adapter_type
    assert profile.target_name == "dev"
    # Every credential reached the adapter from the environment, unchanged.
    received = json.dumps(credentials.to_dict(omit_none=True), default=str)
    received += repr(getattr(credentials, "keyfile_json", None))
    for name, value in sentinels.items():
        assert value in received, f"{name} did not reach {type(credentials).__name__}"

    written = [p for p in (tmp_path / ".floe").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"compiled_artifacts.json", "profiles.yml"}
    for file in written:
        text = file.read_text()
        assert SECRET_PREFIX not in text, f"a secret value leaked into {file.name}"
        assert file.stat().st_mode & 0o077 == 0, f"{file.name} is readable by others"
    profiles_text = (Path(artifacts.dbt_profiles_path) / "profiles.yml").read_text()
    for name in sentinels:
        assert f"env_var('{name}')" in profiles_text


@pytest.mark.parametrize("target", sorted(ADAPTER_CREDENTIAL_FIELDS))
def test_credential_keys_match_the_adapters_credentials_classes(target: str) -> None:
    import dataclasses
    import importlib

    from floe_dbt.profiles._base import is_secret_key

    plugin = importlib.import_module(f"dbt.adapters.{target}").Plugin
    fields = {f.name for f in dataclasses.fields(plugin.credentials) if not f.name.startswith("_")}
    assert ADAPTER_CREDENTIAL_FIELDS[target] <= fields
    assert {name for name in fields if is_secret_key(name)} == ADAPTER_CREDENTIAL_FIELDS[target]


def test_a_partial_keyfile_json_keeps_both_key_references(tmp_path: Path) -> None:
    props = {
        "method": "service-account-json",
        "project": "p",
        "dataset": "d",
        "keyfile_json": {"client_email": "floe@p.iam.gserviceaccount.com", "client_id": "1"},
    }
    path = make_project(tmp_path, floe_yaml("bigquery", props))
    keyfile = build_output(parse_config(path.read_bytes(), path, None)).output["keyfile_json"]
    assert keyfile["private_key"] == "{{ env_var('FLOE_SHOP_DEV_PRIVATE_KEY') }}"
    assert keyfile["private_key_id"] == "{{ env_var('FLOE_SHOP_DEV_PRIVATE_KEY_ID') }}"
    assert keyfile["client_email"] == "floe@p.iam.gserviceaccount.com"


def _imports(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    ("target", "method", "key"),
    [
        (t, m.name, key)
        for t, profile in TARGETS.items()
        for m in profile.methods.values()
        for key in m.credentials
        if "path" not in key
        and key != "keyfile"
        and not key.endswith("client_id")
        and key != "access_key_id"
    ],
)
def test_literal_secret_is_refused_with_the_variable_to_set(
    target: str, method: str, key: str, tmp_path: Path
) -> None:
    case = next(c for c in CASES if c[1] == target and c[3] == method)
    properties: dict[str, Any] = json.loads(json.dumps(case[2]))
    if target == "databricks":
        properties.setdefault("host", "dbc-floe.cloud.databricks.com")
    *parents, last = key.split(".")
    holder = properties
    for part in parents:
        holder = holder.setdefault(part, {})
    holder[last] = "hunter2-literal"
    path = make_project(tmp_path, floe_yaml(target, properties, connection_secret_ref="wh"))
    with pytest.raises(FloeConfigError) as info:
        build_output(parse_config(path.read_bytes(), path, "dev"))
    message = str(info.value)
    assert "hunter2" not in message
    assert str(path) in message
    assert f"compute.properties.{key}" in message
    assert "FLOE_WH_DEV_" in message and "fix:" in message


def test_literal_secret_under_an_unknown_key_is_refused(tmp_path: Path) -> None:
    props = {"user": "floe", "dbname": "w", "extra_settings": {"api_key": "literal"}}
    path = make_project(tmp_path, floe_yaml("postgres", props))
    with pytest.raises(FloeConfigError, match=r"compute\.properties\.extra_settings\.api_key"):
        build_output(parse_config(path.read_bytes(), path, None))


def test_secret_env_var_with_default_is_refused(tmp_path: Path) -> None:
    props = {"user": "floe", "dbname": "w", "password": "{{ env_var('PG_PW', 'letmein') }}"}
    path = make_project(tmp_path, floe_yaml("postgres", props))
    with pytest.raises(FloeConfigError, match="literal secret"):
        build_output(parse_config(path.read_bytes(), path, None))


def test_user_env_var_reference_for_a_secret_is_kept(tmp_path: Path) -> None:
    props = {"user": "floe", "dbname": "w", "password": "{{ env_var('MY_PG_PASSWORD') }}"}
    path = make_project(tmp_path, floe_yaml("postgres", props))
    out = build_output(parse_config(path.read_bytes(), path, None))
    assert out.output["password"] == "{{ env_var('MY_PG_PASSWORD') }}"
    assert out.secret_env_vars == ("MY_PG_PASSWORD",)


def test_properties_override_defaults_and_unknown_keys_pass_through(tmp_path: Path) -> None:
    props = {
        "user": "floe",
        "dbname": "w",
        "port": 6543,
        "threads": 16,
        "keepalives_idle": 30,
        "some_future_dbt_option": {"a": 1},
    }
    path = make_project(tmp_path, floe_yaml("postgres", props))
    out = build_output(parse_config(path.read_bytes(), path, None)).output
    assert out["port"] == 6543 and out["threads"] == 16
    assert out["host"] == "localhost"  # default kept where not overridden
    assert out["keepalives_idle"] == 30
    assert out["some_future_dbt_option"] == {"a": 1}


def test_missing_required_property_names_it(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        floe_yaml("snowflake", {"user": "u", "database": "d", "warehouse": "w", "schema": "s"}),
    )
    with pytest.raises(FloeConfigError) as info:
        build_output(parse_config(path.read_bytes(), path, None))
    assert info.value.field == "compute.properties.account"


def test_unknown_auth_method_lists_the_choices(tmp_path: Path) -> None:
    path = make_project(
        tmp_path, floe_yaml("bigquery", {"method": "magic", "project": "p", "dataset": "d"})
    )
    with pytest.raises(FloeConfigError) as info:
        build_output(parse_config(path.read_bytes(), path, None))
    assert info.value.field == "compute.properties.method"
    for choice in ("oauth", "service-account", "service-account-json", "oauth-secrets"):
        assert choice in str(info.value)


def test_secret_variable_names_follow_the_convention() -> None:
    assert env_var_name("shop_warehouse", "prod", "PASSWORD") == "FLOE_SHOP_WAREHOUSE_PROD_PASSWORD"
    assert env_var_name("my-db", "dev-eu", "TOKEN") == "FLOE_MY_DB_DEV_EU_TOKEN"


def test_duckdb_relative_path_resolves_against_floe_yaml(tmp_path: Path) -> None:
    path = make_project(tmp_path, floe_yaml("duckdb", {"path": "data/shop.duckdb"}))
    out = build_output(parse_config(path.read_bytes(), path, None)).output
    assert out["path"] == str(tmp_path / "data" / "shop.duckdb")
    path.write_text(floe_yaml("duckdb", {"path": ":memory:"}))
    assert build_output(parse_config(path.read_bytes(), path, None)).output["path"] == ":memory:"


def test_literal_secret_in_an_environment_is_reported_where_it_is_written(tmp_path: Path) -> None:
    text = floe_yaml("duckdb", {}) + (
        "environments:\n  prod:\n    compute:\n      target: postgres\n"
        "      properties: {user: u, dbname: d, password: hunter2}\n"
    )
    path = make_project(tmp_path, text)
    with pytest.raises(FloeConfigError) as info:
        build_output(parse_config(path.read_bytes(), path, "prod"))
    assert info.value.field == "environments.prod.compute.properties.password"
    assert info.value.line == text.count("\n")
    assert "FLOE_SHOP_PROD_PASSWORD" in str(info.value) and "hunter2" not in str(info.value)
