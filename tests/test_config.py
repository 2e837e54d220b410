"""floe.yaml: validation, environment overrides, error messages, the exported JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from support.environment import EXAMPLE_DIR, REPO_ROOT

from floe_core.config import (
    SUPPORTED_TARGETS,
    FloeConfigError,
    config_schema,
    config_schema_json,
    load_config,
    parse_config,
)

BASE = """\
name: shop
version: "1.0"
compute:
  target: duckdb
  properties:
    path: shop.duckdb
    threads: 2
transforms:
  - type: dbt
    path: dbt
observability:
  attributes: {tenant: acme}
environments:
  staging:
    compute:
      properties: {threads: 8}
    observability:
      traces: true
  prod:
    compute:
      target: postgres
      connection_secret_ref: wh
      properties: {host: db.internal, user: floe, dbname: shop}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "floe.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, env: str | None = None) -> FloeConfigError:
    path = write(tmp_path, text)
    with pytest.raises(FloeConfigError) as info:
        load_config(path, env)
    message = str(info.value)
    assert str(path) in message, message
    assert "fix:" in message, message
    return info.value


def test_example_loads_with_default_environment() -> None:
    config = load_config(EXAMPLE_DIR / "floe.yaml")
    assert config.environment == "dev"
    assert config.spec.compute.target == "duckdb"
    assert config.transform_paths() == [EXAMPLE_DIR / "dbt"]


def test_directory_argument_finds_floe_yaml() -> None:
    assert load_config(EXAMPLE_DIR).path == EXAMPLE_DIR / "floe.yaml"


def test_environment_overrides_deep_merge(tmp_path: Path) -> None:
    staging = load_config(write(tmp_path, BASE), "staging")
    assert staging.environment == "staging"
    assert staging.spec.compute.properties == {"path": "shop.duckdb", "threads": 8}
    assert staging.spec.observability.traces is True
    # untouched keys of a merged mapping survive
    assert staging.spec.observability.attributes == {"tenant": "acme"}


def test_environment_switching_target_replaces_compute(tmp_path: Path) -> None:
    prod = load_config(write(tmp_path, BASE), "prod")
    assert prod.spec.compute.target == "postgres"
    assert prod.spec.compute.connection_secret_ref == "wh"
    # the duckdb `path` of the base must not leak into a postgres profile
    assert prod.spec.compute.properties == {"host": "db.internal", "user": "floe", "dbname": "shop"}


def test_default_environment_is_configurable(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "default_environment: staging\n"))
    assert config.environment == "staging"
    assert config.spec.compute.properties["threads"] == 8


def test_relative_paths_resolve_against_floe_yaml(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "floe.yaml"
    path.write_text(BASE)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("sub/floe.yaml"))
    assert config.transform_paths() == [tmp_path / "sub" / "dbt"]
    assert config.resolve_path("/abs/x") == Path("/abs/x")


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("  target: duckdb", "  tragte: duckdb"))
    assert err.field == "compute.tragte"
    assert "did you mean `target`?" in str(err)
    assert err.line == 4


def test_unknown_top_level_field(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + "observabilty: {}\n")
    assert err.field == "observabilty"
    assert "did you mean `observability`?" in str(err)


def test_unknown_field_inside_environment(tmp_path: Path) -> None:
    text = BASE.replace("      traces: true", "      trace: true")
    err = error_for(tmp_path, text, "staging")
    assert err.field == "environments.staging.observability.trace"
    assert "did you mean `traces`?" in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("attributes: {tenant: acme}", "attributes: [acme]"))
    assert err.field == "observability.attributes"
    assert err.expected == "mapping"
    assert "list" in (err.found or "")


def test_unquoted_version_number_says_quote_it(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace('version: "1.0"', "version: 1.0"))
    assert err.field == "version"
    assert 'quote it: version: "1.0"' in str(err)


def test_unsupported_target_lists_the_seven(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("target: duckdb", "target: oracle"))
    assert err.field == "compute.target"
    assert err.found == "'oracle'"
    for target in SUPPORTED_TARGETS:
        assert target in str(err)
    assert len(SUPPORTED_TARGETS) == 7


def test_unsupported_target_in_environment(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("target: postgres", "target: snowflak"), "prod")
    assert err.field == "environments.prod.compute.target"
    assert "did you mean `snowflake`?" in str(err)


def test_missing_required_field(tmp_path: Path) -> None:
    text = BASE.split("transforms:")[0]
    err = error_for(tmp_path, text)
    assert err.field == "transforms"
    assert "type: dbt" in str(err)


def test_bad_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("  target: duckdb", "  target: [duckdb"))
    assert "invalid YAML" in str(err)
    assert err.line is not None


def test_not_a_mapping(tmp_path: Path) -> None:
    err = error_for(tmp_path, "- just\n- a list\n")
    assert "mapping" in str(err)


def test_unknown_environment(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE, "prdo")
    assert err.field == "environments"
    assert "did you mean `prod`?" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FloeConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_constructed(tmp_path: Path) -> None:
    # safe_load only: a python object tag is an error, never executed
    err = error_for(tmp_path, BASE + "x: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in str(err)


def test_committed_schema_is_current() -> None:
    committed = (REPO_ROOT / "schemas" / "floe.schema.json").read_text()
    assert committed == config_schema_json(), "regenerate: floe schema > schemas/floe.schema.json"


def test_schema_accepts_the_example_and_rejects_unknown_fields() -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load((EXAMPLE_DIR / "floe.yaml").read_text())
    jsonschema.validate(example, schema)
    bad = json.loads(json.dumps(example))
    bad["compute"]["tragte"] = "duckdb"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = json.loads(json.dumps(example))
    bad["compute"]["target"] = "oracle"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_parse_config_accepts_text() -> None:
    config = parse_config(BASE, "/somewhere/floe.yaml", "prod")
    assert config.environment == "prod"
    assert config.base_dir == Path("/somewhere")


def test_empty_environment_is_allowed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "  qa:\n"), "qa")
    assert config.environment == "qa"
    assert config.spec.compute.properties == {"path": "shop.duckdb", "threads": 2}
