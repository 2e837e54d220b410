"""Fixtures only: the example project, PostgreSQL, the third-party schemas.

Helpers and paths are in the ``support`` package (:mod:`support.environment`), never imported
from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.environment import EXAMPLE_DIR, REPO_ROOT, Postgres, need
from support.profile_loading import forbid_internet, serve_oidc, set_dbt_flags


def pytest_configure(config: pytest.Config) -> None:
    """Under ``scripts/mutation.sh`` only: mutmut's first pass ("stats", which test calls which
    function) is announced to the mutated code through ``MUTANT_UNDER_TEST``. A process a test
    starts (a real sidecar, the CLI) would inherit it and fail to find mutmut's settings from its
    own directory; keep the announcement in this process, out of the children's environment."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.mutation.trampoline import set_mutant_under_test

        set_mutant_under_test("stats")  # the in-process copy the trampolines fall back to
        del os.environ["MUTANT_UNDER_TEST"]


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A private copy of examples/shop (floe.yaml + dbt project) that a test may change."""
    target = tmp_path / "shop"
    shutil.copytree(
        EXAMPLE_DIR,
        target,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*", "dbt_packages"),
    )
    return target


def _postgres_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    host = os.environ.get("FLOE_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("FLOE_TEST_PG_PORT", "5432"))
    need(
        _postgres_listening(host, port),
        f"a PostgreSQL server at {host}:{port} (trust auth, database `test`); "
        "scripts/test.sh starts the local one",
    )
    import psycopg2  # installed with dbt-postgres

    schema = f"floe_test_{uuid.uuid4().hex[:10]}"
    params = {"host": host, "port": port, "user": os.environ.get("FLOE_TEST_PG_USER", "postgres")}
    dbname = os.environ.get("FLOE_TEST_PG_DB", "test")
    yield Postgres(host=host, port=port, user=params["user"], dbname=dbname, schema=schema)
    conn = psycopg2.connect(dbname=dbname, **params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (f"{schema}%",))
        for (name,) in cur.fetchall():
            cur.execute(f'drop schema if exists "{name}" cascade')
    conn.close()


@pytest.fixture(scope="session")
def openlineage_spec_dir() -> Path:
    path = Path(
        os.environ.get(
            "FLOE_OPENLINEAGE_SPEC_DIR", REPO_ROOT.parent / "shared" / "openlineage-spec"
        )
    )
    need(
        (path / "OpenLineage.json").is_file(),
        f"the official OpenLineage JSON Schemas (OpenLineage.json and its facets) in {path}; "
        "set FLOE_OPENLINEAGE_SPEC_DIR to their directory",
    )
    return path


@pytest.fixture(scope="session")
def compose_spec() -> Path:
    path = Path(
        os.environ.get(
            "FLOE_COMPOSE_SPEC", REPO_ROOT.parent / "shared" / "compose-spec" / "compose-spec.json"
        )
    )
    need(
        path.is_file(),
        f"the Compose Specification JSON Schema at {path}; set FLOE_COMPOSE_SPEC to the file",
    )
    return path


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve or reach a non-loopback host fails the test."""
    forbid_internet(monkeypatch)


@pytest.fixture
def oidc_server() -> Iterator[str]:
    """A loopback OIDC discovery server (Databricks OAuth validation)."""
    yield from serve_oidc()


@pytest.fixture(scope="module")
def dbt_flags() -> None:
    set_dbt_flags()
