"""Every kind of floe.yaml mistake, and the whole error it gets: the file, the line, the field
path, what was expected and found, and the fix or did-you-mean (issue 17: the mutation survivors
were in this explaining code, where a changed hint or a lost line number went unnoticed)."""

# The expected messages are kept whole, one line of output to a line of the table.
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from floe_core.config import FloeConfig, FloeConfigError, FloeSpec, load_config, parse_config
from floe_core.config import _enum_choices as enum_choices
from floe_core.config import _explain as explain
from floe_core.config import _fields_at as fields_at
from floe_core.config import _line_of as line_of

BASE = "name: shop\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"


@dataclass(frozen=True)
class Case:
    """A floe.yaml with one mistake, and the error it must raise (``{file}``: floe.yaml's path)."""

    id: str
    text: str
    message: list[str]
    field: str
    line: int | None
    env: str | None = None


CASES = [
    Case(
        "unknown_nested",
        (
            "name: shop\n"
            "compute:\n"
            "  target: duckdb\n"
            "  tragte: x\n"
            "transforms: [{type: dbt, path: dbt}]\n"
        ),
        [
            "{file}:4: compute.tragte: unknown field",
            "  expected: one of target, properties, connection_secret_ref",
            "  found:    'tragte'",
            "  fix:      did you mean `target`?",
        ],
        field="compute.tragte",
        line=4,
        env=None,
    ),
    Case(
        "unknown_top",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observabilty: {}\n"
        ),
        [
            "{file}:4: observabilty: unknown field",
            "  expected: one of name, version, compute, transforms, governance, observability, default_environment, environments",
            "  found:    'observabilty'",
            "  fix:      did you mean `observability`?",
        ],
        field="observabilty",
        line=4,
        env=None,
    ),
    Case(
        "unknown_in_transform",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms:\n"
            "  - type: dbt\n"
            "    path: dbt\n"
            "    pth: x\n"
        ),
        [
            "{file}:6: transforms[0].pth: unknown field",
            "  expected: one of type, path, asset_key_prefix",
            "  found:    'pth'",
            "  fix:      did you mean `path`?",
        ],
        field="transforms[0].pth",
        line=6,
        env=None,
    ),
    Case(
        "unknown_in_dict_env",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod:\n"
            "    compute:\n"
            "      targt: postgres\n"
        ),
        [
            "{file}:7: environments.prod.compute.targt: unknown field",
            "  expected: one of target, properties, connection_secret_ref",
            "  found:    'targt'",
            "  fix:      did you mean `target`?",
        ],
        field="environments.prod.compute.targt",
        line=7,
        env=None,
    ),
    Case(
        "unknown_unrelated",
        ("name: shop\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\nzzzz: 1\n"),
        [
            "{file}:4: zzzz: unknown field",
            "  expected: one of name, version, compute, transforms, governance, observability, default_environment, environments",
            "  found:    'zzzz'",
            "  fix:      remove `zzzz`",
        ],
        field="zzzz",
        line=4,
        env=None,
    ),
    Case(
        "missing_top",
        ("name: shop\ncompute: {target: duckdb}\n"),
        [
            "{file}: transforms: required field is missing",
            "  expected: transforms: [{type: dbt, path: <dbt project directory>}]",
            "  fix:      add `transforms:` at the top level",
        ],
        field="transforms",
        line=None,
        env=None,
    ),
    Case(
        "missing_nested",
        ("name: shop\ncompute:\n  properties: {}\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:2: compute.target: required field is missing",
            "  fix:      add `target:` under `compute`",
        ],
        field="compute.target",
        line=2,
        env=None,
    ),
    Case(
        "missing_name",
        ("compute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}: name: required field is missing",
            "  expected: name: <pipeline name>",
            "  fix:      add `name:` at the top level",
        ],
        field="name",
        line=None,
        env=None,
    ),
    Case(
        "missing_in_list",
        ("name: shop\ncompute: {target: duckdb}\ntransforms:\n  - type: dbt\n"),
        [
            "{file}:4: transforms[0].path: required field is missing",
            "  fix:      add `path:` under `transforms[0]`",
        ],
        field="transforms[0].path",
        line=4,
        env=None,
    ),
    Case(
        "target",
        ("name: shop\ncompute:\n  target: oracle\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:3: compute.target: unsupported compute target",
            "  expected: one of duckdb, postgres, snowflake, bigquery, redshift, databricks, spark",
            "  found:    'oracle'",
            "  fix:      pick one of the 7 supported targets",
        ],
        field="compute.target",
        line=3,
        env=None,
    ),
    Case(
        "target_close",
        ("name: shop\ncompute:\n  target: duckbd\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:3: compute.target: unsupported compute target",
            "  expected: one of duckdb, postgres, snowflake, bigquery, redshift, databricks, spark",
            "  found:    'duckbd'",
            "  fix:      did you mean `duckdb`?",
        ],
        field="compute.target",
        line=3,
        env=None,
    ),
    Case(
        "target_int",
        ("name: shop\ncompute:\n  target: 5\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:3: compute.target: unsupported compute target",
            "  expected: one of duckdb, postgres, snowflake, bigquery, redshift, databricks, spark",
            "  found:    5",
            "  fix:      pick one of the 7 supported targets",
        ],
        field="compute.target",
        line=3,
        env=None,
    ),
    Case(
        "enum",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "governance:\n"
            "  classification_source: dbt_meat\n"
        ),
        [
            "{file}:5: governance.classification_source: value not allowed",
            "  expected: one of dbt_meta, none",
            "  found:    'dbt_meat'",
            "  fix:      did you mean `dbt_meta`?",
        ],
        field="governance.classification_source",
        line=5,
        env=None,
    ),
    Case(
        "enum_far",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  log_level: zzzzzz\n"
        ),
        [
            "{file}:5: observability.log_level: value not allowed",
            "  expected: one of debug, error, info, warn",
            "  found:    'zzzzzz'",
            "  fix:      use one of the allowed values",
        ],
        field="observability.log_level",
        line=5,
        env=None,
    ),
    Case(
        "enum_transform",
        ("name: shop\ncompute: {target: duckdb}\ntransforms:\n  - type: dbtt\n    path: dbt\n"),
        [
            "{file}:4: transforms[0].type: value not allowed",
            "  expected: one of dbt",
            "  found:    'dbtt'",
            "  fix:      did you mean `dbt`?",
        ],
        field="transforms[0].type",
        line=4,
        env=None,
    ),
    Case(
        "wrong_type",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  traces: [1]\n"
        ),
        [
            "{file}:5: observability.traces: wrong type",
            "  expected: bool",
            "  found:    list [1]",
            "  fix:      make `observability.traces` a bool",
        ],
        field="observability.traces",
        line=5,
        env=None,
    ),
    Case(
        "wrong_type_dict",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  attributes: [acme]\n"
        ),
        [
            "{file}:5: observability.attributes: wrong type",
            "  expected: mapping",
            "  found:    list ['acme']",
            "  fix:      make `observability.attributes` a mapping",
        ],
        field="observability.attributes",
        line=5,
        env=None,
    ),
    Case(
        "quote",
        (
            "name: shop\n"
            "version: 1.5\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
        ),
        [
            "{file}:2: version: wrong type",
            "  expected: str | null",
            "  found:    float 1.5",
            '  fix:      quote it: version: "1.5"',
        ],
        field="version",
        line=2,
        env=None,
    ),
    Case(
        # YAML reads 1.10 as the float 1.1: the fix quotes what the file says, not what YAML read.
        "quote_as_written",
        (
            "name: shop\n"
            "version: 1.10\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
        ),
        [
            "{file}:2: version: wrong type",
            "  expected: str | null",
            "  found:    float 1.1",
            '  fix:      quote it: version: "1.10"',
        ],
        field="version",
        line=2,
        env=None,
    ),
    Case(
        "quote_a_yaml_boolean_as_written",
        BASE + "observability:\n  attributes:\n    tenant: yes\n",
        [
            "{file}:6: observability.attributes.tenant: wrong type",
            "  expected: str",
            "  found:    boolean True",
            '  fix:      quote it: tenant: "yes"',
        ],
        field="observability.attributes.tenant",
        line=6,
        env=None,
    ),
    Case(
        "key_read_as_a_number_is_quoted_as_written",
        BASE + "observability:\n  attributes:\n    tenant: acme\n    01: x\n",
        [
            "{file}:7: observability.attributes.1: invalid name",
            "  expected: a string key",
            "  found:    int 1",
            '  fix:      quote the key: "01":',
        ],
        field="observability.attributes.1",
        line=7,
        env=None,
    ),
    Case(
        # A quoted "1" is a valid name; the unquoted 01 below it is the one named, on its own line.
        "key_read_as_a_number_beside_a_quoted_one",
        BASE + 'observability:\n  attributes:\n    "1": a\n    tenant: acme\n    01: x\n',
        [
            "{file}:8: observability.attributes.1: invalid name",
            "  expected: a string key",
            "  found:    int 1",
            '  fix:      quote the key: "01":',
        ],
        field="observability.attributes.1",
        line=8,
        env=None,
    ),
    Case(
        "quote_int",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  otlp_endpoint: 4317\n"
        ),
        [
            "{file}:5: observability.otlp_endpoint: wrong type",
            "  expected: str | null",
            "  found:    int 4317",
            '  fix:      quote it: otlp_endpoint: "4317"',
        ],
        field="observability.otlp_endpoint",
        line=5,
        env=None,
    ),
    Case(
        "compute_scalar",
        ("name: shop\ncompute: duckdb\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:2: compute: wrong type",
            "  expected: mapping",
            "  found:    string 'duckdb'",
            "  fix:      make `compute` a mapping",
        ],
        field="compute",
        line=2,
        env=None,
    ),
    Case(
        "transforms_empty",
        ("name: shop\ncompute: {target: duckdb}\ntransforms: []\n"),
        [
            "{file}:3: transforms: invalid value",
            "  expected: list of length >= 1",
            "  found:    list []",
            "  fix:      for example transforms: [{type: dbt, path: <dbt project directory>}]",
        ],
        field="transforms",
        line=3,
        env=None,
    ),
    Case(
        "name_pattern",
        ("name: 'bad name'\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:1: name: invalid value",
            "  expected: str matching regex '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'",
            "  found:    string 'bad name'",
            "  fix:      for example name: <pipeline name>",
        ],
        field="name",
        line=1,
        env=None,
    ),
    Case(
        "name_empty",
        ("name: ''\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:1: name: invalid value",
            "  expected: str of length >= 1",
            "  found:    string ''",
            "  fix:      for example name: <pipeline name>",
        ],
        field="name",
        line=1,
        env=None,
    ),
    Case(
        "attr_bad",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  attributes:\n"
            "    team: data\n"
            "    bad: [1]\n"
        ),
        [
            "{file}:7: observability.attributes.bad: wrong type",
            "  expected: str",
            "  found:    list [1]",
            "  fix:      make `observability.attributes.bad` a str",
        ],
        field="observability.attributes.bad",
        line=7,
        env=None,
    ),
    Case(
        "attr_int",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  attributes:\n"
            "    team: data\n"
            "    n: 3\n"
        ),
        [
            "{file}:7: observability.attributes.n: wrong type",
            "  expected: str",
            "  found:    int 3",
            '  fix:      quote it: n: "3"',
        ],
        field="observability.attributes.n",
        line=7,
        env=None,
    ),
    Case(
        "env_name",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod: {}\n"
            "  'bad name':\n"
            "    compute: {target: duckdb}\n"
        ),
        [
            "{file}:6: environments.bad name: invalid name",
            "  expected: str matching regex '^[A-Za-z0-9_][A-Za-z0-9_-]*$'",
            "  found:    'bad name'",
            "  fix:      use letters, digits, `_` and `-` only (not starting with `-`)",
        ],
        field="environments.bad name",
        line=6,
        env=None,
    ),
    Case(
        "env_name_int",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod: {}\n"
            "  3: {}\n"
        ),
        [
            "{file}:6: environments.3: invalid name",
            "  expected: a string key",
            "  found:    int 3",
            '  fix:      quote the key: "3":',
        ],
        field="environments.3",
        line=6,
        env=None,
    ),
    Case(
        "env_bad_target",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod:\n"
            "    compute:\n"
            "      target: snowflak\n"
        ),
        [
            "{file}:7: environments.prod.compute.target: unsupported compute target",
            "  expected: one of duckdb, postgres, snowflake, bigquery, redshift, databricks, spark",
            "  found:    'snowflak'",
            "  fix:      did you mean `snowflake`?",
        ],
        field="environments.prod.compute.target",
        line=7,
        env=None,
    ),
    Case(
        "env_wrong_type",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod:\n"
            "    observability:\n"
            "      traces: [x]\n"
        ),
        [
            "{file}:7: environments.prod.observability.traces: wrong type",
            "  expected: bool",
            "  found:    list ['x']",
            "  fix:      make `environments.prod.observability.traces` a bool",
        ],
        field="environments.prod.observability.traces",
        line=7,
        env=None,
    ),
    Case(
        "env_scalar",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod: 3\n"
        ),
        [
            "{file}:5: environments.prod: wrong type",
            "  expected: mapping",
            "  found:    int 3",
            "  fix:      make `environments.prod` a mapping",
        ],
        field="environments.prod",
        line=5,
        env=None,
    ),
    Case(
        "default_env_bad",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "default_environment: 'a b'\n"
        ),
        [
            "{file}:4: default_environment: invalid value",
            "  expected: str matching regex '^[A-Za-z0-9_][A-Za-z0-9_-]*$'",
            "  found:    string 'a b'",
            "  fix:      make `default_environment` a str matching regex '^[A-Za-z0-9_][A-Za-z0-9_-]*$'",
        ],
        field="default_environment",
        line=4,
        env=None,
    ),
    Case(
        "secret_ref",
        (
            "name: shop\n"
            "compute:\n"
            "  target: duckdb\n"
            "  connection_secret_ref: 'a b'\n"
            "transforms: [{type: dbt, path: dbt}]\n"
        ),
        [
            "{file}:4: compute.connection_secret_ref: invalid value",
            "  expected: str matching regex '^[A-Za-z0-9_-]+$'",
            "  found:    string 'a b'",
            "  fix:      make `compute.connection_secret_ref` a str matching regex '^[A-Za-z0-9_-]+$'",
        ],
        field="compute.connection_secret_ref",
        line=4,
        env=None,
    ),
    Case(
        "prefix_empty",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms:\n"
            "  - type: dbt\n"
            "    path: dbt\n"
            "    asset_key_prefix: ['']\n"
        ),
        [
            "{file}:6: transforms[0].asset_key_prefix[0]: invalid value",
            "  expected: str of length >= 1",
            "  found:    string ''",
            "  fix:      make `transforms[0].asset_key_prefix[0]` a str of length >= 1",
        ],
        field="transforms[0].asset_key_prefix[0]",
        line=6,
        env=None,
    ),
    Case(
        "notmap",
        ("- a\n- b\n"),
        [
            "{file}: (document): the document must be a mapping",
            "  expected: keys such as name, compute, transforms",
            "  found:    list",
            "  fix:      start from the example in examples/shop/floe.yaml",
        ],
        field="",
        line=None,
        env=None,
    ),
    Case(
        "scalar_doc",
        ("just text\n"),
        [
            "{file}: (document): the document must be a mapping",
            "  expected: keys such as name, compute, transforms",
            "  found:    string",
            "  fix:      start from the example in examples/shop/floe.yaml",
        ],
        field="",
        line=None,
        env=None,
    ),
    Case(
        "empty_doc",
        "",
        [
            "{file}: (document): the document must be a mapping",
            "  expected: keys such as name, compute, transforms",
            "  found:    null",
            "  fix:      start from the example in examples/shop/floe.yaml",
        ],
        field="",
        line=None,
        env=None,
    ),
    Case(
        "yaml_syntax",
        ("name: shop\ncompute:\n  target: [duckdb\ntransforms: []\n"),
        [
            "{file}:4: (document): invalid YAML: while parsing a flow sequence expected ',' or ']', but got ':'",
            "  fix:      check indentation and quoting near that line",
        ],
        field="",
        line=4,
        env=None,
    ),
    Case(
        "yaml_tab",
        ("name: shop\ncompute:\n\ttarget: duckdb\n"),
        [
            "{file}:3: (document): invalid YAML: while scanning for the next token found character '\\t' that cannot start any token",
            "  fix:      check indentation and quoting near that line",
        ],
        field="",
        line=3,
        env=None,
    ),
    Case(
        "dup",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  traces: true\n"
            "  traces: false\n"
        ),
        [
            "{file}:6: (document): refused: key 'traces' is written twice in one mapping (first on line 5); keep one",
            "  fix:      see floe.yaml's reading rules in docs/configuration.md",
        ],
        field="",
        line=6,
        env=None,
    ),
    Case(
        "circ",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability: &loop\n"
            "  attributes: {a: b}\n"
            "  extra: *loop\n"
        ),
        [
            "{file}:4: (document): refused: an alias refers to a block that contains it (a circular reference)",
            "  fix:      see floe.yaml's reading rules in docs/configuration.md",
        ],
        field="",
        line=4,
        env=None,
    ),
    Case(
        "pytag",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "x: !!python/object/apply:os.system ['true']\n"
        ),
        [
            "{file}:4: (document): invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'",
            "  fix:      check indentation and quoting near that line",
        ],
        field="",
        line=4,
        env=None,
    ),
    Case(
        "type_name_mapping",
        (
            "name: shop\n"
            "version: {major: 1}\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
        ),
        [
            "{file}:2: version: wrong type",
            "  expected: str | null",
            "  found:    mapping {'major': 1}",
            "  fix:      make `version` a str | null",
        ],
        field="version",
        line=2,
        env=None,
    ),
    Case(
        "type_name_boolean",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "observability:\n"
            "  attributes: true\n"
        ),
        [
            "{file}:5: observability.attributes: wrong type",
            "  expected: mapping",
            "  found:    boolean True",
            "  fix:      make `observability.attributes` a mapping",
        ],
        field="observability.attributes",
        line=5,
        env=None,
    ),
    Case(
        "type_name_null",
        ("name: shop\ncompute:\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}:2: compute: wrong type",
            "  expected: mapping",
            "  found:    null None",
            "  fix:      make `compute` a mapping",
        ],
        field="compute",
        line=2,
        env=None,
    ),
    Case(
        "transforms_index",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms:\n"
            "  - type: dbt\n"
            "    path: a\n"
            "  - type: dbt\n"
            "    path: b\n"
            "    asset_key_prefix: shop\n"
        ),
        [
            "{file}:8: transforms[1].asset_key_prefix: wrong type",
            "  expected: list | null",
            "  found:    string 'shop'",
            "  fix:      make `transforms[1].asset_key_prefix` a list | null",
        ],
        field="transforms[1].asset_key_prefix",
        line=8,
        env=None,
    ),
    Case(
        "unknown_env",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod: {}\n"
            "  staging: {}\n"
        ),
        [
            "{file}: environments: environment 'prdo' is not defined",
            "  expected: one of dev, prod, staging",
            "  found:    'prdo'",
            "  fix:      did you mean `prod`?",
        ],
        field="environments",
        line=None,
        env="prdo",
    ),
    Case(
        "unknown_env_far",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod: {}\n"
        ),
        [
            "{file}: environments: environment 'zzzz' is not defined",
            "  expected: one of dev, prod",
            "  found:    'zzzz'",
            "  fix:      add `environments: {zzzz: {...}}` to floe.yaml",
        ],
        field="environments",
        line=None,
        env="zzzz",
    ),
    Case(
        "unknown_env_none",
        ("name: shop\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"),
        [
            "{file}: environments: environment 'qa' is not defined",
            "  expected: one of dev",
            "  found:    'qa'",
            "  fix:      add `environments: {qa: {...}}` to floe.yaml",
        ],
        field="environments",
        line=None,
        env="qa",
    ),
    Case(
        "env_override_merge_bad",
        (
            "name: shop\n"
            "compute: {target: duckdb}\n"
            "transforms: [{type: dbt, path: dbt}]\n"
            "environments:\n"
            "  prod:\n"
            "    transforms: [{type: dbt, path: ''}]\n"
        ),
        [
            "{file}:6: environments.prod.transforms[0].path: invalid value",
            "  expected: str of length >= 1",
            "  found:    string ''",
            "  fix:      make `environments.prod.transforms[0].path` a str of length >= 1",
        ],
        field="environments.prod.transforms[0].path",
        line=6,
        env="prod",
    ),
    Case(
        "env_enum",
        BASE + "environments:\n  prod:\n    governance: {classification_source: dbt_meat}\n",
        [
            "{file}:6: environments.prod.governance.classification_source: value not allowed",
            "  expected: one of dbt_meta, none",
            "  found:    'dbt_meat'",
            "  fix:      did you mean `dbt_meta`?",
        ],
        field="environments.prod.governance.classification_source",
        line=6,
        env="prod",
    ),
    Case(
        "env_unknown_observability",
        BASE + "environments:\n  prod:\n    observability:\n      lineage_endpont: x\n",
        [
            "{file}:7: environments.prod.observability.lineage_endpont: unknown field",
            "  expected: one of traces, lineage, logs, metrics, log_level, otlp_endpoint, lineage_endpoint, attributes",
            "  found:    'lineage_endpont'",
            "  fix:      did you mean `lineage_endpoint`?",
        ],
        field="environments.prod.observability.lineage_endpont",
        line=7,
    ),
    Case(
        "env_unknown_in_transform",
        BASE + "environments:\n  prod:\n    transforms:\n      - {type: dbt, path: a, extra: 1}\n",
        [
            "{file}:7: environments.prod.transforms[0].extra: unknown field",
            "  expected: one of type, path, asset_key_prefix",
            "  found:    'extra'",
            "  fix:      remove `extra`",
        ],
        field="environments.prod.transforms[0].extra",
        line=7,
    ),
    Case(
        "env_attribute_key_not_a_string",
        BASE + "environments:\n  prod:\n    observability:\n      attributes: {1: x}\n",
        [
            "{file}:7: environments.prod.observability.attributes.1: invalid name",
            "  expected: a string key",
            "  found:    int 1",
            '  fix:      quote the key: "1":',
        ],
        field="environments.prod.observability.attributes.1",
        line=7,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_mistake_gets_its_whole_error(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "floe.yaml"
    path.write_text(case.text, encoding="utf-8")
    with pytest.raises(FloeConfigError) as info:
        load_config(path, case.env)
    err = info.value
    assert str(err) == "\n".join(case.message).replace("{file}", str(path.resolve()))
    assert (err.file, err.field, err.line) == (str(path.resolve()), case.field, case.line)


def test_a_boolean_attribute_value_is_named_by_its_key(tmp_path: Path) -> None:
    text = BASE + "observability:\n  attributes:\n    team: data\n    flag: true\n"
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    err = info.value
    assert (err.field, err.line, err.expected, err.found) == (
        "observability.attributes.flag",
        7,
        "str",
        "boolean True",
    )


def test_the_same_mistake_read_from_text_bytes_or_file_says_the_same(tmp_path: Path) -> None:
    text = BASE.replace("duckdb", "duckbd")
    path = tmp_path / "floe.yaml"
    path.write_text(text)
    messages = set()
    for read in (
        lambda: parse_config(text, path),
        lambda: parse_config(text.encode(), str(path)),
        lambda: load_config(path),
        lambda: load_config(str(tmp_path)),
    ):
        with pytest.raises(FloeConfigError) as info:
            read()
        messages.add(str(info.value))
    assert messages == {
        f"{path}:2: compute.target: unsupported compute target\n"
        "  expected: one of duckdb, postgres, snowflake, bigquery, redshift, databricks, spark\n"
        "  found:    'duckbd'\n"
        "  fix:      did you mean `duckdb`?"
    }


# --- reading the file -----------------------------------------------------------------------


def test_a_missing_file_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(FloeConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value) == (
        f"{tmp_path / 'nope.yaml'}: (document): file not found\n"
        "  fix:      run from the directory holding floe.yaml, or pass its path"
    )
    assert (info.value.field, info.value.line) == ("", None)


def test_a_directory_without_floe_yaml_names_the_file_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FloeConfigError) as info:
        load_config(tmp_path)
    assert info.value.file == str(tmp_path / "floe.yaml")
    assert info.value.problem == "file not found"


def through_a_file(tmp: Path) -> Path:
    """A path through a regular file: the OS refuses it as not a directory."""
    (tmp / "file").write_text("")
    return tmp / "file" / "floe.yaml"


def directory_named_floe_yaml(tmp: Path) -> Path:
    """floe.yaml/floe.yaml, both directories: the inner one cannot be read as a file."""
    (tmp / "floe.yaml" / "floe.yaml").mkdir(parents=True)
    return tmp / "floe.yaml"


@pytest.mark.parametrize(
    ("make", "reason"),
    [(through_a_file, "Not a directory"), (directory_named_floe_yaml, "Is a directory")],
    ids=["not-a-directory", "is-a-directory"],
)
def test_an_unreadable_file_says_why(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    target = make(tmp_path)
    with pytest.raises(FloeConfigError) as info:
        load_config(target)
    where = target / "floe.yaml" if target.is_dir() else target
    assert str(info.value) == f"{where}: (document): cannot read the file ({reason})"
    assert (info.value.field, info.value.fix) == ("", None)


def test_bytes_that_are_not_utf8_name_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "floe.yaml"
    path.write_bytes(b"name: caf\xe9\n" + BASE.encode())
    with pytest.raises(FloeConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: (document): not UTF-8 text (byte 9)\n  fix:      save floe.yaml as UTF-8"
    )
    assert (info.value.field, info.value.line) == ("", None)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        # A control character: yaml's reader refuses it before any parsing.
        (
            BASE + 'observability:\n  attributes: {team: "da\x07ta"}\n',
            "invalid YAML: unacceptable character #x0007 (special characters are not allowed)\n"
            '  fix:      remove it, or write it as an escape (such as "\\t") in a double-quoted'
            " string",
            5,
        ),
        (
            "\n" + BASE + 'x: "\x07"\n',  # a blank first line is counted too
            "invalid YAML: unacceptable character #x0007 (special characters are not allowed)\n"
            '  fix:      remove it, or write it as an escape (such as "\\t") in a double-quoted'
            " string",
            5,
        ),
        (
            "\x1bname: shop\n",
            "invalid YAML: unacceptable character #x001b (special characters are not allowed)\n"
            '  fix:      remove it, or write it as an escape (such as "\\t") in a double-quoted'
            " string",
            1,
        ),
        (
            BASE + "governance: " + "[" * 20_000 + "]" * 20_000 + "\n",
            "refused: the document is nested too deeply\n"
            "  fix:      see floe.yaml's reading rules in docs/configuration.md",
            None,
        ),
        (
            BASE
            + "governance:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"  {n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
                for p, n in zip("abcd", "bcde", strict=True)
            ),
            "refused: the document expands to more than 100,000 values through its aliases"
            " (*name); write the repeated settings out, or share fewer levels\n"
            "  fix:      see floe.yaml's reading rules in docs/configuration.md",
            9,
        ),
        (
            BASE + "observability:\n  traces: true\n  lineage: true\n  traces: false\n",
            "refused: key 'traces' is written twice in one mapping (first on line 5); keep one\n"
            "  fix:      see floe.yaml's reading rules in docs/configuration.md",
            7,
        ),
        (
            BASE + "observability:\n  attributes: {a: '1'}\n  <<: {traces: true}\n",
            None,
            None,
        ),
    ],
    ids=[
        "control-character",
        "control-character-after-a-blank-line",
        "control-character-first-line",
        "nested",
        "alias-bomb",
        "duplicate-key",
        "merge-key-is-no-duplicate",
    ],
)
def test_the_yaml_reader_refusals(tmp_path: Path, text: str, message: str | None, line) -> None:
    path = tmp_path / "floe.yaml"
    if message is None:
        assert parse_config(text, path).spec.observability.traces is True
        return
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, path)
    where = path if line is None else f"{path}:{line}"
    assert str(info.value) == f"{where}: (document): {message}"
    assert (info.value.field, info.value.line) == ("", line)


# --- environments -----------------------------------------------------------------------------

ENVS = """\
name: shop
compute:
  target: duckdb
  properties: {path: shop.duckdb, threads: 2}
transforms: [{type: dbt, path: dbt}]
observability: {traces: false, attributes: {tenant: acme}}
default_environment: staging
environments:
  staging:
    compute:
      target: duckdb
      properties: {threads: 8}
  prod:
    compute:
      target: postgres
      properties: {host: db.internal}
  dev:
    transforms: [{type: dbt, path: other}]
    observability: {traces: true}
  qa:
"""


def test_an_override_naming_the_same_target_merges_properties() -> None:
    staging = parse_config(ENVS, "/x/floe.yaml")  # the default environment
    assert staging.environment == "staging"
    assert staging.spec.compute.target == "duckdb"
    assert staging.spec.compute.properties == {"path": "shop.duckdb", "threads": 8}


def test_an_override_switching_target_replaces_the_whole_compute_block() -> None:
    prod = parse_config(ENVS, "/x/floe.yaml", "prod")
    assert prod.spec.compute.target == "postgres"
    assert prod.spec.compute.properties == {"host": "db.internal"}
    # the rest of the document is the base's
    assert prod.spec.observability.attributes == {"tenant": "acme"}
    assert [t.path for t in prod.spec.transforms] == ["dbt"]


def test_an_override_replaces_lists_and_merges_mappings() -> None:
    dev = parse_config(ENVS, "/x/floe.yaml", "dev")
    assert [t.path for t in dev.spec.transforms] == ["other"]
    assert dev.spec.observability.traces is True
    assert dev.spec.observability.attributes == {"tenant": "acme"}
    assert dev.spec.compute.properties == {"path": "shop.duckdb", "threads": 2}


def test_an_empty_environment_is_the_base_document() -> None:
    qa = parse_config(ENVS, "/x/floe.yaml", "qa")
    base = parse_config(ENVS.replace("default_environment: staging", ""), "/x/floe.yaml", "qa")
    assert qa.spec.compute == base.spec.compute
    assert qa.spec.compute.properties == {"path": "shop.duckdb", "threads": 2}
    assert qa.environment == "qa"


def test_the_default_environment_needs_no_entry() -> None:
    config = parse_config(BASE, "/x/floe.yaml")
    assert (config.environment, config.spec.compute.properties) == ("dev", {})
    config = parse_config(BASE + "default_environment: live\n", "/x/floe.yaml")
    assert config.environment == "live"


def test_the_environments_are_kept_in_the_merged_spec() -> None:
    prod = parse_config(ENVS, "/x/floe.yaml", "prod")
    assert sorted(prod.spec.environments) == ["dev", "prod", "qa", "staging"]
    assert prod.spec.environments["qa"] is None


def test_an_environment_mistake_is_reported_in_the_environment_even_when_not_selected() -> None:
    text = ENVS.replace("      properties: {host: db.internal}", "      propertes: {}")
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, "/x/floe.yaml", "staging")
    assert info.value.field == "environments.prod.compute.propertes"
    assert info.value.line == 16
    assert info.value.fix == "did you mean `properties`?"


# --- FloeConfig.error: a later check (compile, profiles) pointing at where a field is written


def test_an_error_about_a_field_the_environment_sets_points_into_the_environment() -> None:
    staging = parse_config(ENVS, "/x/floe.yaml", "staging")
    err = staging.error("compute.properties", "threads too high", fix="lower it")
    assert str(err) == (
        "/x/floe.yaml:12: environments.staging.compute.properties: threads too high\n"
        "  fix:      lower it"
    )


def test_an_error_about_a_field_only_the_base_sets_points_at_the_base() -> None:
    prod = parse_config(ENVS, "/x/floe.yaml", "prod")
    err = prod.error(
        "observability.attributes.tenant", "unknown tenant", expected="a", found="'acme'"
    )
    assert str(err) == (
        "/x/floe.yaml:6: observability.attributes.tenant: unknown tenant\n"
        "  expected: a\n"
        "  found:    'acme'"
    )


def test_an_error_below_what_the_environment_writes_stays_at_the_base() -> None:
    # staging writes environments.staging.compute but not .properties.path: the line of
    # environments.staging.compute would be a wrong place, the base's path is the right one.
    staging = parse_config(ENVS, "/x/floe.yaml", "staging")
    err = staging.error("compute.properties.path", "not writable")
    assert (err.field, err.line) == ("compute.properties.path", 4)


def test_an_error_about_a_field_written_nowhere_points_at_its_nearest_parent() -> None:
    dev = parse_config(ENVS, "/x/floe.yaml", "dev")
    err = dev.error("compute.properties.schema", "required by this target")
    assert (err.field, err.line) == ("compute.properties.schema", 4)
    err = dev.error("transforms[0].path", "not a dbt project")
    assert (err.field, err.line) == ("environments.dev.transforms[0].path", 18)


def test_an_error_from_a_config_whose_bytes_are_not_utf8_still_builds() -> None:
    config = parse_config(BASE, "/x/floe.yaml")
    broken = FloeConfig(config.spec, "dev", Path("/x/floe.yaml"), b"name: caf\xe9\ncompute: {}\n")
    err = broken.error("compute", "bad")
    assert (err.field, err.line) == ("compute", 2)


def test_a_msgspec_message_floe_does_not_know_still_names_file_field_and_fix() -> None:
    # Every wording msgspec uses today has its own branch; a new one must not lose the place.
    text = "name: shop\nversion: x\n"
    err = explain(
        "Some new complaint - at `$.version`",
        {"version": "x"},
        FloeSpec,
        Path("/x/floe.yaml"),
        text,
        "",
    )
    assert str(err) == (
        "/x/floe.yaml:2: version: Some new complaint\n"
        "  found:    'x'\n"
        "  fix:      see schemas/floe.schema.json (`floe schema`) for what this field accepts"
    )


def test_an_absolute_path_is_kept_as_written(tmp_path: Path) -> None:
    # A symlinked project directory keeps the name the user gave it; relative ones resolve.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    config = parse_config(BASE, tmp_path / "floe.yaml")
    assert config.resolve_path(str(tmp_path / "link")) == tmp_path / "link"
    assert config.resolve_path("link") == (tmp_path / "real").resolve()


def test_the_type_walk_goes_through_mappings_and_lists() -> None:
    # What an unknown field or a bad value is checked against, found from its path.
    assert fields_at(FloeSpec, "environments.prod.compute") == [
        "target",
        "properties",
        "connection_secret_ref",
    ]
    assert fields_at(FloeSpec, "transforms[0]") == ["type", "path", "asset_key_prefix"]
    assert enum_choices(FloeSpec, "environments.prod.governance.classification_source") == [
        "dbt_meta",
        "none",
    ]
    # no struct or no literal there, or no such field
    assert fields_at(FloeSpec, "name") == []
    assert fields_at(FloeSpec, "transforms.type") == []
    assert fields_at(FloeSpec, "compute.nope") == []
    assert enum_choices(FloeSpec, "name") == []


# --- _line_of: the line number in every message -----------------------------------------------

DOC = """\
a:
  b:
    - x
    - c: 1
      d: [1, 2]
e: 5
"""


@pytest.mark.parametrize(
    ("field", "exact", "line"),
    [
        ("a", False, 1),
        ("a.b", False, 2),
        ("a.b[0]", False, 3),
        ("a.b[1].c", False, 4),
        ("a.b[1].d[1]", False, 5),
        ("e", True, 6),
        ("a.b[1].z", False, 4),  # the deepest written parent
        ("a.b[1].z", True, None),
        ("a.b[2]", False, 2),  # one past the end
        ("a.b[2]", True, None),
        ("a.b[7]", False, 2),
        ("a.b[7]", True, None),
        ("e.f", False, 6),  # below a scalar
        ("e.f", True, None),
        ("a[0]", False, 1),  # an index into a mapping
        ("a[0]", True, None),
        ("z", False, None),
        ("", False, None),
    ],
)
def test_the_line_of_a_field(field: str, exact: bool, line: int | None) -> None:
    assert line_of(DOC, field, exact=exact) == line


def test_no_line_in_text_that_is_not_yaml() -> None:
    assert line_of("a: [1\n", "a") is None
