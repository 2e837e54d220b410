"""dbt profiles for the 7 compute targets, built from floe.yaml's ``compute`` section.

One module per target (``duckdb``, ``postgres``, ``snowflake``, ``bigquery``, ``redshift``,
``databricks``, ``spark``) declares its defaults, auth methods and identity fields; this module
merges them with ``compute.properties`` into one dbt target output:

    target defaults  <  auth method settings  <  credential env_var() refs  <  compute.properties

so any property overrides floe's default and unknown keys pass through to dbt untouched.
Credentials are never values: each is ``{{ env_var('FLOE_<REF>_<ENV>_<CREDENTIAL>') }}``
(convention in :mod:`floe_dbt.profiles._base`), and a literal credential in floe.yaml is refused
with the name of the variable to set instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from floe_core.config import FloeConfig
from floe_core.mappings import deep_merge
from floe_core.redaction import strip_url_credentials, url_credentials
from floe_dbt.env_vars import env_var, env_var_names, is_env_var_ref
from floe_dbt.profiles import bigquery, databricks, duckdb, postgres, redshift, snowflake, spark
from floe_dbt.profiles._base import (
    CONTAINER_KEYS,
    AuthMethod,
    TargetProfile,
    env_var_name,
    is_secret_key,
)

__all__ = [
    "TARGETS",
    "AuthMethod",
    "ProfileOutput",
    "TargetProfile",
    "build_output",
    "ensure_local_dirs",
    "env_var",
    "env_var_name",
    "refuse_literal_secrets_everywhere",
    "render_profiles_yml",
]

TARGETS: Mapping[str, TargetProfile] = {
    p.target: p
    for p in (
        duckdb.PROFILE,
        postgres.PROFILE,
        snowflake.PROFILE,
        bigquery.PROFILE,
        redshift.PROFILE,
        databricks.PROFILE,
        spark.PROFILE,
    )
}


@dataclass(frozen=True)
class ProfileOutput:
    """One dbt target output, ready for profiles.yml (credentials as env_var() refs only)."""

    target: str
    adapter_type: str
    auth_method: str
    output: dict[str, Any]
    # Environment variables the output reads credentials from (names, never values).
    secret_env_vars: tuple[str, ...]


def build_output(config: FloeConfig) -> ProfileOutput:
    """The dbt target output for ``config``'s compute section; raises FloeConfigError."""
    compute = config.spec.compute
    profile = TARGETS[compute.target]
    props = dict(compute.properties)
    _refuse_literal_secrets(config, props, "compute.properties")

    method = profile.method_for(props)
    if method is None:
        raise config.error(
            f"compute.properties.{profile.method_key}",
            f"unsupported auth method for {compute.target}",
            expected="one of " + ", ".join(profile.accepted_method_values()),
            found=repr(props.get(profile.method_key or "")),
            fix=f"set {profile.method_key} to one of those (or remove it for "
            f"{profile.default_method})",
        )
    if profile.method_key in props and method.name in profile.drop_method_key:
        del props[profile.method_key]

    ref = compute.connection_secret_ref or config.spec.name
    output: dict[str, Any] = {"type": profile.adapter_type}
    for key, value in profile.defaults.items():
        output[key] = _fill(value, config)
    output.update(method.settings)
    for key, credential in method.credentials.items():
        _set_dotted(output, key, env_var(env_var_name(ref, config.environment, credential)))
    output = deep_merge(output, props)
    output["type"] = profile.adapter_type

    for key in profile.path_keys:
        value = output.get(key)
        if isinstance(value, str) and _is_local_relative_path(value):
            output[key] = str(config.resolve_path(value))

    _require(config, profile, method, output)
    secret_vars = tuple(sorted(set(_secret_env_vars(output))))
    return ProfileOutput(
        target=compute.target,
        adapter_type=profile.adapter_type,
        auth_method=method.name,
        output=output,
        secret_env_vars=secret_vars,
    )


def ensure_local_dirs(target: str, output: Mapping[str, Any]) -> None:
    """Create the directory of a local database file (DuckDB cannot create it itself)."""
    if target != "duckdb":
        return
    value = output.get("path")
    if isinstance(value, str) and Path(value).is_absolute():
        Path(value).parent.mkdir(parents=True, exist_ok=True, mode=0o700)


def render_profiles_yml(
    profile_name: str | Sequence[str], target_name: str, output: Mapping[str, Any]
) -> str:
    """profiles.yml text holding one target, under each profile name (one per dbt project)."""
    names = [profile_name] if isinstance(profile_name, str) else list(dict.fromkeys(profile_name))
    document = {
        name: {"target": target_name, "outputs": {target_name: dict(output)}} for name in names
    }
    header = (
        "# Generated by `floe compile` from floe.yaml; overwritten on every compile.\n"
        "# Credentials are env_var() references: set the variables, never edit values in.\n"
    )
    return header + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1_000_000
    )


class _Dumper(yaml.SafeDumper):
    """Writes ``{{ env_var('X') }}`` in double quotes, the way dbt's docs show it."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if "{{" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


# --- internals -------------------------------------------------------------------------------


def _fill(value: Any, config: FloeConfig) -> Any:
    if isinstance(value, str) and "{" in value:
        return value.format(name=config.spec.name, environment=config.environment)
    return value


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _get_dotted(source: Mapping[str, Any], dotted: str) -> Any:
    value: Any = source
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _is_local_relative_path(value: str) -> bool:
    if "{{" in value or value in ("", ":memory:") or "://" in value or value.startswith("md:"):
        return False
    return not Path(value).expanduser().is_absolute()


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(field path, key, value) of every mapping entry, nested ones included."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            sub = f"{path}.{key}"
            yield sub, str(key), item
            yield from _walk(item, sub)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _leaves(value: Any) -> Iterator[Any]:
    """Every scalar inside ``value`` (itself when it is one)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _is_literal_secret(key: str, value: Any) -> bool:
    """Whether ``key: value`` writes a credential into floe.yaml itself."""
    if is_secret_key(key) and key.lower() not in CONTAINER_KEYS:
        # Any literal: strings, numbers, booleans, and lists or mappings holding one.
        return any(leaf is not None and not is_env_var_ref(leaf) for leaf in _leaves(value))
    if isinstance(value, str):
        # A URL or connection string with a password or token in it (postgres://u:pw@h/db).
        return any(not is_env_var_ref(part) for part in url_credentials(value))
    return False


def refuse_literal_secrets_everywhere(config: FloeConfig) -> None:
    """Refuse a literal credential in any environment of floe.yaml, not only ``config``'s:
    `floe validate` of dev must not say "valid" while ``environments.prod`` holds a password."""
    names = [config.environment, config.spec.default_environment, *config.spec.environments]
    for name in dict.fromkeys(names):
        other = config if name == config.environment else reload_for(config, name)
        _refuse_literal_secrets(other, other.spec.compute.properties, "compute.properties")


def reload_for(config: FloeConfig, environment: str) -> FloeConfig:
    """``config``'s floe.yaml resolved for another environment."""
    from floe_core.config import parse_config

    return parse_config(config.source, config.path, environment)


def _refuse_literal_secrets(config: FloeConfig, props: Mapping[str, Any], base: str) -> None:
    compute = config.spec.compute
    profile = TARGETS[compute.target]
    method = profile.method_for(props)
    generated = method.credentials if method is not None else {}
    ref = compute.connection_secret_ref or config.spec.name
    for field, key, value in _walk(props, base):
        if value is None or not _is_literal_secret(key, value):
            continue
        dotted = field[len(base) + 1 :]
        if not is_secret_key(key):
            name = env_var_name(ref, config.environment, re.sub(r"\W+", "_", dotted))
            raise config.error(
                field,
                "a URL with a credential in it refused (it would end up in generated files, "
                "events and logs)",
                expected="the URL without user:password@ or secret query parameters, the "
                "credential in its own key as an env_var() reference",
                found="a URL with a literal credential (value not shown)",
                fix=f"move the credential out of `{key}`, e.g. into the environment variable "
                f'{name}, and write it as "{env_var(name)}" where the adapter reads it',
            )
        if dotted in generated:
            name = env_var_name(ref, config.environment, generated[dotted])
            fix = (
                f"delete `{key}` from floe.yaml and set the environment variable {name}: "
                "the generated profile already reads it from there"
            )
        else:
            name = env_var_name(ref, config.environment, re.sub(r"\W+", "_", dotted))
            fix = f'write {key}: "{env_var(name)}" and set the environment variable {name}'
        raise config.error(
            field,
            "literal secret in floe.yaml refused (it would end up in generated files)",
            expected="an env_var() reference without a default, e.g. " + env_var(name),
            found=f"a literal {_kind(value)} (value not shown)",
            fix=fix,
        )


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _require(
    config: FloeConfig, profile: TargetProfile, method: AuthMethod, output: Mapping[str, Any]
) -> None:
    for alternatives in (*profile.required, *method.required):
        if any(_get_dotted(output, key) not in (None, "") for key in alternatives):
            continue
        key = alternatives[0]
        choice = " or ".join(f"`{k}`" for k in alternatives)
        raise config.error(
            f"compute.properties.{key}",
            f"required by target {profile.target} (auth method {method.name})",
            expected=f"{choice} under compute.properties (a value, or an env_var() reference)",
            found="nothing",
            fix=f"add {key}: ... under compute.properties",
        )


def _secret_env_vars(output: Mapping[str, Any]) -> Iterator[str]:
    """Variables read in a credential position: under a credential key, or inside a URL's
    user info or query string (``md:db?motherduck_token={{ env_var('X') }}``)."""
    for _field, key, value in _walk(output, ""):
        if isinstance(value, str) and "env_var" in value:
            outside = set(env_var_names(strip_url_credentials(value)))
            yield from (name for name in env_var_names(value) if name not in outside)
        if (
            isinstance(value, str)
            and "env_var" in value
            and (
                is_secret_key(key)
                or key
                in (
                    "private_key_path",
                    "keyfile",
                    "client_id",
                    "oauth_client_id",
                    "access_key_id",
                    "private_key_id",
                )
            )
        ):
            yield from env_var_names(value)
