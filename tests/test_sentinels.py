"""No credential value appears anywhere floe writes or prints (issue 11, the sentinel test).

Every credential variable and every URL secret is set to a unique sentinel; then:

- for every target and auth method (seven targets): `floe compile` and `floe validate` run as
  commands, dbt loads the generated profile (the sentinels must reach the adapter's
  Credentials: the wiring is real), and no sentinel is in a generated file or the terminal;
- on DuckDB and PostgreSQL, which really run here: `floe run`, with lineage going to a loopback
  OpenLineage backend through a URL with a password in its user info and an API key in its
  query string, and OTLP to a loopback receiver with an API key header; then `floe-sidecar
  status` and `floe show`. No sentinel in any file of the project (generated files, spool,
  status file, dead-letter, Dagster's instance, dbt's logs, the databases), any event the
  backends received, any span or log record, or any terminal output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.environment import Postgres
from support.lineage import Receiver
from support.otlp_receivers import HttpReceiver
from test_profiles import CASES, EXPECTED_SECRETS, floe_yaml, load_with_dbt, make_project

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 420
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME", "DBT_ENV_SECRET_")


def sentinel(name: str) -> str:
    return f"SNTL{abs(hash(name)) % 10**8:08d}x{name.lower().replace('_', '')[:12]}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}
    env.update(extra)
    return env


def floe(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def assert_nowhere(sentinels: dict[str, str], root: Path, texts: dict[str, str]) -> None:
    """No sentinel in any file under ``root`` (bytes, so databases count) nor in ``texts``."""
    leaks: list[str] = []
    for path in files_under(root):
        data = path.read_bytes()
        leaks += [
            f"{name} in {path.relative_to(root)}"
            for name, v in sentinels.items()
            if v.encode() in data
        ]
    for where, text in texts.items():
        leaks += [f"{name} in {where}" for name, value in sentinels.items() if value in text]
    assert not leaks, "credential values leaked: " + "; ".join(leaks)


# --- every target and auth method: compile, validate, profile load ---------------------------


@pytest.mark.usefixtures("dbt_flags", "no_internet")
@pytest.mark.parametrize(
    ("case", "target", "properties", "method"), CASES, ids=[c[0] for c in CASES]
)
def test_compile_and_profile_load_hold_no_sentinel(
    case: str,
    target: str,
    properties: dict[str, Any],
    method: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    oidc_server: str,
) -> None:
    if case == "spark-odbc":
        from support.environment import need

        need(_imports("pyodbc"), "pyodbc with libodbc.so.2 (apt-get install libodbc2)")
    if case == "databricks-oauth":
        properties = {**properties, "host": oidc_server}
    path = make_project(tmp_path, floe_yaml(target, properties, connection_secret_ref="wh"))
    sentinels = {name: sentinel(name) for name in EXPECTED_SECRETS[case]}
    # Observability credentials of both URL forms are in the environment of every command too.
    sentinels |= {"OL_PASSWORD": sentinel("OL_PASSWORD"), "OL_QUERY_KEY": sentinel("OL_QUERY")}
    env = clean_env(
        **{k: v for k, v in sentinels.items() if k.startswith("FLOE_")},
        OPENLINEAGE_URL=f"http://floe:{sentinels['OL_PASSWORD']}@127.0.0.1:9",
        OPENLINEAGE_ENDPOINT=f"api/v1/lineage?api_key={sentinels['OL_QUERY_KEY']}",
    )
    if target == "snowflake" and method == "keypair":
        env["FLOE_WH_DEV_PRIVATE_KEY_PATH"] = str(tmp_path / "rsa_key.p8")
        sentinels.pop("FLOE_WH_DEV_PRIVATE_KEY_PATH")
    compiled = floe(tmp_path, env, "compile")
    assert compiled.returncode == 0, compiled.stderr
    validated = floe(tmp_path, env, "validate")
    assert validated.returncode == 0, validated.stderr

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    credentials = load_with_dbt(tmp_path / ".floe" / "profiles", "dev").credentials
    received = json.dumps(credentials.to_dict(omit_none=True), default=str)
    received += repr(getattr(credentials, "keyfile_json", None))
    for name in EXPECTED_SECRETS[case]:
        if name in sentinels:
            assert sentinels[name] in received, f"{name} did not reach the adapter"
    assert_nowhere(
        sentinels,
        tmp_path,
        {
            "floe compile output": compiled.stdout + compiled.stderr,
            "floe validate output": validated.stdout + validated.stderr,
        },
    )
    assert path.is_file()


def _imports(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --- real runs: DuckDB and PostgreSQL ---------------------------------------------------------


def run_everywhere(
    project: Path, env: dict[str, str], sentinels: dict[str, str], *args: str
) -> None:
    lineage = Receiver().start()
    try:
        with HttpReceiver() as otlp:
            env = {
                **env,
                "OPENLINEAGE_URL": lineage.url.replace(
                    "http://", f"http://floe:{sentinels['OL_PASSWORD']}@"
                ),
                "OPENLINEAGE_ENDPOINT": f"api/v1/lineage?api_key={sentinels['OL_QUERY_KEY']}",
                "OPENLINEAGE_API_KEY": sentinels["OL_API_KEY"],
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={sentinels['OTLP_KEY']}",
                "DBT_ENV_SECRET_EXTRA": sentinels["DBT_SECRET"],
            }
            run = floe(project, env, "run", *args)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            status = subprocess.run(
                [sys.executable, "-m", "floe_sidecar.cli", "status", "--spool", ".floe/spool"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            shown = floe(project, env, "show", "lineage")
            events = json.dumps(lineage.events())
            spans = repr(otlp.spans()) + repr(otlp.logs()) + repr(otlp.points())
            # The credentials did their job: they reached the backends, as credentials.
            assert any(h.get("x-api-key") == sentinels["OTLP_KEY"] for h in otlp.headers)
            assert lineage.events(), run.stdout
            assert otlp.spans() and otlp.logs()
            assert any(sentinels["OL_QUERY_KEY"] in path for path, _ in lineage.requests)
    finally:
        lineage.stop()
    assert "delivered" in run.stdout
    assert_nowhere(
        sentinels,
        project,
        {
            "floe run output": run.stdout + run.stderr,
            "floe-sidecar status": status.stdout + status.stderr,
            "floe show lineage": shown.stdout + shown.stderr,
            "lineage events received": events,
            "spans, log records and metrics received": spans,
        },
    )


OBSERVABILITY_SENTINELS = ("OL_PASSWORD", "OL_QUERY_KEY", "OL_API_KEY", "OTLP_KEY", "DBT_SECRET")


def test_a_duckdb_run_holds_no_sentinel(example_dir: Path) -> None:
    sentinels = {name: sentinel(name) for name in OBSERVABILITY_SENTINELS}
    run_everywhere(example_dir, clean_env(), sentinels)


def test_a_postgres_run_holds_no_sentinel(example_dir: Path, postgres: Postgres) -> None:
    config = example_dir / "floe.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["environments"]["prod"]["compute"]["properties"].update(
        host=postgres.host,
        port=postgres.port,
        user=postgres.user,
        dbname=postgres.dbname,
        schema=postgres.schema,
    )
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    names = (*OBSERVABILITY_SENTINELS, "FLOE_SHOP_WAREHOUSE_PROD_PASSWORD")
    sentinels = {name: sentinel(name) for name in names}
    # trust auth: PostgreSQL takes the connection whatever the password; libpq still gets it.
    env = clean_env(
        FLOE_SHOP_WAREHOUSE_PROD_PASSWORD=sentinels["FLOE_SHOP_WAREHOUSE_PROD_PASSWORD"]
    )
    run_everywhere(example_dir, env, sentinels, "--env", "prod")
