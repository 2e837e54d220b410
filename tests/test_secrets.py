"""Credentials never leave the environment: not through a dataset namespace, a URL shown in a
summary or a log line, nor a literal written into floe.yaml (issue 11, findings 5, 7 and 8).

The rules live once in floe_core.redaction (which names hold a credential, how a URL is shown
without one) and floe_dbt.profiles (what floe.yaml may not hold); every case below is one a
hostile or unlucky user found.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import data
from support.lineage import Receiver

from floe_core.config import FloeConfigError
from floe_core.redaction import (
    REDACTED,
    Redactor,
    is_credential_name,
    redact_url,
    strip_url_credentials,
    url_credentials,
)
from floe_dbt.compile import compile_floe, validate_floe
from floe_dbt.connection import connection_identity
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.openlineage.config import resolve_lineage_config
from floe_sidecar.sinks.openlineage.delivery import DeliveryError, HttpDelivery, batch_url

SENTINEL = "S3NTINEL-7f3a"


def project(root: Path, doc: dict[str, Any]) -> Path:
    (root / "dbt").mkdir(exist_ok=True)
    (root / "dbt" / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    path = root / "floe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def floe_doc(target: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "shop",
        "compute": {"target": target, "properties": properties},
        "transforms": [{"type": "dbt", "path": "dbt"}],
        **extra,
    }


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "sslpassword",
        "password2",
        "passwd",
        "pass",
        "db_pwd",
        "private_key_id",
        "private_key",
        "api_key",
        "apikey",
        "motherduck_token",
        "X-Amz-Signature",
        "key",
        "client_secret",
    ],
)
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize(
    "name",
    ["user", "host", "private_key_path", "token_uri", "auth_type", "access_key_id", "passthrough"],
)
def test_names_that_only_point_at_a_credential(name: str) -> None:
    assert not is_credential_name(name)


@pytest.mark.parametrize(
    ("url", "shown", "identity"),
    [
        (
            f"https://user:{SENTINEL}@lineage.example:5000/api?api_key={SENTINEL}&v=2",
            f"https://{REDACTED}@lineage.example:5000/api?api_key={REDACTED}&v=2",
            "https://lineage.example:5000/api",
        ),
        (
            f"api/v1/lineage?api_key={SENTINEL}",
            f"api/v1/lineage?api_key={REDACTED}",
            "api/v1/lineage",
        ),
        (f"md:db?motherduck_token={SENTINEL}", f"md:db?motherduck_token={REDACTED}", "md:db"),
        ("db.example.com", "db.example.com", "db.example.com"),
    ],
)
def test_url_forms(url: str, shown: str, identity: str) -> None:
    assert redact_url(url) == shown
    assert strip_url_credentials(url) == identity
    assert (SENTINEL in url_credentials(url)) == (SENTINEL in url)


def test_the_redactor_knows_query_secrets_of_openlineage_endpoint() -> None:
    redactor = Redactor.from_environment({"OPENLINEAGE_ENDPOINT": f"api/v1/lineage?key={SENTINEL}"})
    assert SENTINEL not in redactor.redact(f"POST /api/v1/lineage?key={SENTINEL}: refused")


# --- finding 5: identities -------------------------------------------------------------------


def test_a_token_routed_through_env_var_stays_out_of_the_identity(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        floe_doc("duckdb", {"path": "md:shop?motherduck_token={{ env_var('MOTHERDUCK_TOKEN') }}"}),
    )
    artifacts = compile_floe(path, output_dir=tmp_path / ".floe")
    assert "MOTHERDUCK_TOKEN" in artifacts.compute.secret_env_vars
    conn = connection_identity(artifacts, {"MOTHERDUCK_TOKEN": SENTINEL})
    assert conn.path == "md:shop"
    assert SENTINEL not in json.dumps([getattr(conn, f) for f in conn.__struct_fields__])


@pytest.mark.parametrize("variable", ["DBT_ENV_SECRET_PG_HOST", "PG_TOKEN", "ANY_NAME"])
def test_a_secret_variable_in_an_identity_field_is_not_rendered(
    variable: str, tmp_path: Path
) -> None:
    props = {
        "host": "{{ env_var('" + variable + "') }}",
        "user": "floe",
        "dbname": "w",
        # A variable used in a credential position anywhere is a secret (ANY_NAME here).
        "options": "postgres://h/w?password={{ env_var('ANY_NAME') }}",
    }
    path = project(tmp_path, floe_doc("postgres", props))
    artifacts = validate_floe(path)
    conn = connection_identity(artifacts, {variable: SENTINEL})
    assert conn.host is None
    assert SENTINEL not in repr(conn)


def test_a_credential_value_inside_an_identity_is_redacted(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        floe_doc("postgres", {"host": "{{ env_var('PG_HOST') }}", "user": "u", "dbname": "w"}),
    )
    artifacts = validate_floe(path)
    environ = {"PG_HOST": f"db-{SENTINEL}.internal", "FLOE_SHOP_DEV_PASSWORD": SENTINEL}
    conn = connection_identity(artifacts, environ)
    assert conn.host == f"db-{REDACTED}.internal"


# --- finding 8: literal secrets --------------------------------------------------------------

PG = {"user": "floe", "dbname": "w"}


@pytest.mark.parametrize(
    ("target", "properties", "field"),
    [
        ("postgres", {**PG, "password": [SENTINEL]}, "password"),
        ("postgres", {**PG, "password": {"value": SENTINEL}}, "password"),
        ("postgres", {**PG, "passwd": SENTINEL}, "passwd"),
        ("postgres", {**PG, "pass": SENTINEL}, "pass"),
        ("postgres", {**PG, "sslpassword": SENTINEL}, "sslpassword"),
        ("postgres", {**PG, "password2": SENTINEL}, "password2"),
        ("postgres", {**PG, "password": 123456}, "password"),
        ("postgres", {**PG, "password": True}, "password"),
        ("postgres", {**PG, "password": 12.5}, "password"),
        ("postgres", {**PG, "host": f"postgres://u:{SENTINEL}@h/db"}, "host"),
        ("duckdb", {"path": f"md:db?motherduck_token={SENTINEL}"}, "path"),
        ("duckdb", {"secrets": [{"type": "s3", "secret": SENTINEL}]}, "secrets[0].secret"),
        (
            "bigquery",
            {
                "method": "service-account-json",
                "project": "p",
                "dataset": "d",
                "keyfile_json": {"client_email": "a@b.c", "private_key_id": SENTINEL},
            },
            "keyfile_json.private_key_id",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_literal_secret_bypasses_are_refused(
    target: str, properties: dict[str, Any], field: str, tmp_path: Path
) -> None:
    path = project(tmp_path, floe_doc(target, properties))
    with pytest.raises(FloeConfigError) as info:
        compile_floe(path, output_dir=tmp_path / ".floe")
    assert info.value.field == f"compute.properties.{field}"
    assert SENTINEL not in str(info.value)
    assert not (tmp_path / ".floe").exists()


def test_non_secret_entries_of_a_secrets_list_are_kept(tmp_path: Path) -> None:
    secret = {"type": "s3", "region": "eu-west-1", "secret": "{{ env_var('S3_SECRET') }}"}
    path = project(tmp_path, floe_doc("duckdb", {"secrets": [secret]}))
    assert validate_floe(path).compute.properties["secrets"] == [secret]


def test_every_environment_is_checked_not_only_the_default(tmp_path: Path) -> None:
    doc = floe_doc("duckdb", {})
    doc["environments"] = {
        "prod": {"compute": {"target": "postgres", "properties": {**PG, "password": "hunter2"}}}
    }
    path = project(tmp_path, doc)
    with pytest.raises(FloeConfigError) as info:
        validate_floe(path)  # the default environment (dev) is clean
    assert info.value.field == "environments.prod.compute.properties.password"
    assert "hunter2" not in str(info.value)


# --- finding 7: URLs with credentials --------------------------------------------------------


def test_batch_url_keeps_the_query_string() -> None:
    url = f"http://h:5000/api/v1/lineage?api_key={SENTINEL}"
    assert batch_url(url) == f"http://h:5000/api/v1/lineage/batch?api_key={SENTINEL}"


def test_an_endpoint_with_a_key_delivers_in_batches(tmp_path: Path) -> None:
    receiver = Receiver(batch=True).start()
    try:
        env = {
            "OPENLINEAGE_URL": receiver.url,
            "OPENLINEAGE_ENDPOINT": f"api/v1/lineage?api_key={SENTINEL}",
        }
        settings = SidecarSettings(
            spool_dir=tmp_path / "spool", artifacts=data.artifacts(lineage=True), environ=env
        )
        config = resolve_lineage_config(settings)
        assert config is not None
        delivery = HttpDelivery(config.transport)
        assert delivery.deliver([b'{"eventType": "START"}', b'{"eventType": "COMPLETE"}']) == []
        assert receiver.requests == [(f"/api/v1/lineage/batch?api_key={SENTINEL}", 200)]
    finally:
        receiver.stop()


def test_a_delivery_error_never_holds_the_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    delivery = HttpDelivery(
        {
            "type": "http",
            "url": f"http://user:{SENTINEL}@127.0.0.1:{port}",
            "endpoint": f"api/v1/lineage?api_key={SENTINEL}",
        }
    )
    for events in ([b"{}"], [b"{}", b"{}"]):  # the single and the batch endpoint
        with pytest.raises(DeliveryError) as caught:
            delivery.deliver(events)
        assert SENTINEL not in str(caught.value)
        assert "Connection" in str(caught.value)


@pytest.mark.parametrize("key", ["lineage_endpoint", "otlp_endpoint"])
def test_an_observability_endpoint_with_a_credential_is_refused(key: str, tmp_path: Path) -> None:
    doc = floe_doc("duckdb", {}, observability={key: f"https://floe:{SENTINEL}@backend.example"})
    path = project(tmp_path, doc)
    with pytest.raises(FloeConfigError) as info:
        validate_floe(path)
    assert info.value.field == f"observability.{key}"
    assert SENTINEL not in str(info.value)
