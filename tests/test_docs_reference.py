"""docs/configuration.md stays true to the code: every flag the commands accept (read from their
real ``--help``), every floe.yaml field (from its JSON Schema) and every variable floe reads is
documented there, and every relative link between the docs points at a file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from support.environment import REPO_ROOT

from floe_core.config import config_schema

REFERENCE = REPO_ROOT / "docs" / "configuration.md"
FLOE_COMMANDS = ["compile", "validate", "schema", "prepare", "run", "dev", "show"]
SIDECAR_COMMANDS = [[], ["replay"], ["status"]]


def _help(argv: list[str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text)) - {"--help"}


def _mentions(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.fixture(scope="module")
def reference() -> str:
    return REFERENCE.read_text()


def test_every_floe_command_and_flag_is_documented(reference: str) -> None:
    top = _help(["floe_cli"])
    listed = set(re.findall(r"^    (\w+)\s", top, re.M))
    assert listed == set(FLOE_COMMANDS), "update FLOE_COMMANDS and docs/configuration.md"
    for command in FLOE_COMMANDS:
        assert f"`floe {command}" in reference, f"floe {command} is not documented"
        for flag in _flags(_help(["floe_cli", command])):
            assert _mentions(reference, flag), (
                f"floe {command} {flag} is not documented in {REFERENCE.name}"
            )


def test_every_floe_sidecar_flag_is_documented(reference: str) -> None:
    for sub in SIDECAR_COMMANDS:
        for flag in _flags(_help(["floe_sidecar.cli", *sub])):
            assert _mentions(reference, flag), (
                f"floe-sidecar {' '.join(sub)} {flag} is not documented in {REFERENCE.name}"
            )


def _fields(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> Iterator[str]:
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    for options in ("anyOf", "oneOf"):
        for option in node.get(options, ()):
            yield from _fields(schema, option, prefix)
    if node.get("type") == "array" and "items" in node:
        yield from _fields(schema, node["items"], prefix + "[]")
    for name, child in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        if prefix.startswith("environments"):
            continue  # overrides repeat the base document's fields
        yield from _fields(schema, child, path)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and prefix == "environments":
        yield from _fields(schema, extra, "environments.<NAME>")


def test_every_floe_yaml_field_is_documented(reference: str) -> None:
    schema = config_schema()
    fields = set(_fields(schema, schema, ""))
    assert "compute.target" in fields and "transforms[].path" in fields, fields
    for field in fields:
        if field.startswith("environments.<NAME>."):
            continue  # documented as "partial floe.yaml" with its allowed keys
        assert f"`{field}`" in reference, f"floe.yaml field {field} is not documented"


def test_every_variable_floe_reads_is_documented(reference: str) -> None:
    sources = [
        p
        for package in ("shared", "adapter", "sidecar")
        for p in (REPO_ROOT / package).rglob("*.py")
    ]
    names: set[str] = set()
    constants: set[str] = set()
    for path in sources:
        text = path.read_text()
        # A quoted variable name anywhere: environ.get("X"), env["X"], _get(env, "X"), X_ENV = "X"
        names |= set(
            re.findall(r"""["']((?:FLOE|OPENLINEAGE|OTEL|DAGSTER)_[A-Z0-9_]*[A-Z0-9])["']""", text)
        )
        constants |= set(re.findall(r"^([A-Z][A-Z0-9_]+)(?::[^=]*)?\s*=", text, re.M))
    assert {"FLOE_SOCKET", "OPENLINEAGE_URL", "OTEL_SERVICE_NAME"} <= names, names
    internal = {"DAGSTER_DBT_CLI"}  # dagster-dbt's own marker, set by the adapter for dbt
    names -= constants  # Python names such as FLOE_VERSION are not variables
    patterns = {"OPENLINEAGE__TRANSPORT__": "`OPENLINEAGE__TRANSPORT__<KEY>`"}
    missing = sorted(
        n
        for n in names - internal
        if n.startswith(("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_"))
        and f"`{n}" not in reference
        and not any(n.startswith(p) and doc in reference for p, doc in patterns.items())
    )
    assert not missing, f"variables read by floe but not in {REFERENCE.name}: {missing}"


def test_links_between_docs_resolve() -> None:
    for page in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"
