"""floe.yaml: the one file a data engineer writes.

:func:`load_config` reads it with :func:`floe_core.yamlload.safe_load` (yaml.safe_load without
alias bombs, circular aliases or duplicate keys), validates it against :class:`FloeSpec`
(unknown fields are errors, not silently dropped), applies one environment's overrides and
returns a :class:`FloeConfig`. Every problem raises :class:`FloeConfigError`, whose message
names the file (and line when known), the field path, what was expected, what was found and how
to fix it.

Environments: ``environments: {NAME: {...}}`` holds partial overrides that deep-merge into the
base document (mappings merge key by key; lists and scalars replace). One exception: an
environment that switches ``compute.target`` replaces the whole ``compute`` block, because
properties of one warehouse mean nothing to another. ``default_environment`` (default ``dev``)
is used when no environment is asked for; it needs no entry of its own.

Relative paths (``transforms[].path``) resolve against the directory of floe.yaml.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import msgspec
import yaml

from floe_core.errors import FloeConfigError
from floe_core.layout import CONFIG_FILE
from floe_core.mappings import deep_merge
from floe_core.yamlload import YamlShapeError, safe_load

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_ENVIRONMENT",
    "SUPPORTED_TARGETS",
    "ComputeConfig",
    "EnvironmentOverride",
    "FloeConfig",
    "FloeConfigError",
    "FloeSpec",
    "GovernanceConfig",
    "ObservabilityConfig",
    "TransformConfig",
    "config_schema",
    "config_schema_json",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_FILE = CONFIG_FILE
DEFAULT_ENVIRONMENT = "dev"

Target = Literal["duckdb", "postgres", "snowflake", "bigquery", "redshift", "databricks", "spark"]
SUPPORTED_TARGETS: tuple[str, ...] = get_args(Target)

T = TypeVar("T")

ClassificationSource = Literal["dbt_meta", "none"]
#: The lowest severity of the log lines exported (dbt's level names).
LogLevel = Literal["debug", "info", "warn", "error"]
Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
EnvName = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class ComputeConfig(_Section, frozen=True, kw_only=True):
    """The warehouse dbt runs against."""

    target: Annotated[
        Target, msgspec.Meta(description="Compute target: " + ", ".join(SUPPORTED_TARGETS))
    ]
    # Any dbt profile key of the target's adapter; overrides floe's defaults, unknown keys pass
    # through to dbt. Credentials only as "{{ env_var('NAME') }}" references.
    properties: dict[str, Any] = {}
    # Names the secret set this connection reads: env vars are FLOE_<REF>_<ENV>_<SECRET>.
    connection_secret_ref: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+$")] | None = None


class TransformConfig(_Section, frozen=True, kw_only=True):
    type: Literal["dbt"]
    path: Annotated[str, msgspec.Meta(min_length=1)]  # the dbt project dir, relative to floe.yaml
    # Put in front of every asset key of this project. Default: none with one project, the dbt
    # project's name with several (so `customers` of two projects never collide).
    asset_key_prefix: list[Annotated[str, msgspec.Meta(min_length=1)]] | None = None


class GovernanceConfig(_Section, frozen=True, kw_only=True):
    # dbt_meta: column classifications come from the column's `meta: {classification: ...}`.
    classification_source: ClassificationSource = "dbt_meta"


class ObservabilityConfig(_Section, frozen=True, kw_only=True):
    traces: bool = False
    lineage: bool = False
    # dbt's log lines and floe's own log records as OTLP logs, and the pipeline's metrics;
    # unset, they follow `traces` (OpenTelemetry on means all three signals).
    logs: bool | None = None
    metrics: bool | None = None
    log_level: LogLevel = "info"
    otlp_endpoint: str | None = None
    lineage_endpoint: str | None = None
    # Added to every span and lineage run (tenant, team, ...).
    attributes: dict[str, str] = {}


class ComputeOverride(_Section, frozen=True, kw_only=True):
    target: Target | msgspec.UnsetType = msgspec.UNSET
    properties: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    connection_secret_ref: (
        Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+$")] | msgspec.UnsetType
    ) = msgspec.UNSET


class GovernanceOverride(_Section, frozen=True, kw_only=True):
    classification_source: ClassificationSource | msgspec.UnsetType = msgspec.UNSET


class ObservabilityOverride(_Section, frozen=True, kw_only=True):
    traces: bool | msgspec.UnsetType = msgspec.UNSET
    lineage: bool | msgspec.UnsetType = msgspec.UNSET
    logs: bool | msgspec.UnsetType | None = msgspec.UNSET
    metrics: bool | msgspec.UnsetType | None = msgspec.UNSET
    log_level: LogLevel | msgspec.UnsetType = msgspec.UNSET
    otlp_endpoint: str | msgspec.UnsetType | None = msgspec.UNSET
    lineage_endpoint: str | msgspec.UnsetType | None = msgspec.UNSET
    attributes: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class EnvironmentOverride(_Section, frozen=True, kw_only=True):
    """Partial floe.yaml for one environment; deep-merged into the base document."""

    compute: ComputeOverride | msgspec.UnsetType = msgspec.UNSET
    transforms: Annotated[list[TransformConfig], msgspec.Meta(min_length=1)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    governance: GovernanceOverride | msgspec.UnsetType = msgspec.UNSET
    observability: ObservabilityOverride | msgspec.UnsetType = msgspec.UNSET


class FloeSpec(_Section, frozen=True, kw_only=True):
    """The floe.yaml document."""

    name: Name
    version: str | None = None
    compute: ComputeConfig
    transforms: Annotated[list[TransformConfig], msgspec.Meta(min_length=1)]
    governance: GovernanceConfig = GovernanceConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    default_environment: EnvName = DEFAULT_ENVIRONMENT
    # An environment with nothing to override may be left empty (`staging:`).
    environments: dict[EnvName, EnvironmentOverride | None] = {}


@dataclass(frozen=True)
class FloeConfig:
    """floe.yaml resolved for one environment (overrides applied, paths absolute)."""

    spec: FloeSpec  # the merged document; ``spec.environments`` is kept for reference
    environment: str
    path: Path  # absolute path of floe.yaml
    source: bytes  # its bytes, for the source hash

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """A path from floe.yaml: relative ones are relative to floe.yaml's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def transform_paths(self) -> list[Path]:
        return [self.resolve_path(t.path) for t in self.spec.transforms]

    def error(self, field: str, problem: str, **details: Any) -> FloeConfigError:
        """A :class:`FloeConfigError` about ``field`` (a path in the merged document), reported
        where it is written: under ``environments.<env>`` when this environment sets it."""
        text = self.source.decode("utf-8", errors="replace")
        in_env = f"environments.{self.environment}.{field}"
        line = _line_of(text, in_env, exact=True)
        if line is not None:
            field = in_env
        else:
            line = _line_of(text, field)
        return FloeConfigError(self.path, field, problem, line=line, **details)


def load_config(path: Path | str = DEFAULT_CONFIG_FILE, env: str | None = None) -> FloeConfig:
    """Read, validate and resolve floe.yaml for ``env`` (default: its default_environment)."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        path = path / DEFAULT_CONFIG_FILE
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise FloeConfigError(
            path,
            "",
            "file not found",
            fix="run from the directory holding floe.yaml, or pass its path",
        ) from None
    except OSError as exc:
        raise FloeConfigError(path, "", f"cannot read the file ({exc.strerror})") from None
    return parse_config(source, path, env)


def parse_config(source: bytes | str, path: Path | str, env: str | None = None) -> FloeConfig:
    """Validate floe.yaml ``source`` (as read from ``path``) and resolve it for ``env``."""
    raw_bytes = source.encode() if isinstance(source, str) else source
    path = Path(path)
    text = _decode_text(raw_bytes, path)
    data = _safe_load(text, path)
    spec = _convert(data, FloeSpec, path, text, prefix="")

    environment = env or spec.default_environment
    overrides = data.get("environments") or {}
    if environment not in overrides and environment != spec.default_environment:
        known = sorted({spec.default_environment, *overrides})
        raise FloeConfigError(
            path,
            "environments",
            f"environment {environment!r} is not defined",
            expected="one of " + ", ".join(known),
            found=repr(environment),
            fix=_did_you_mean(environment, known)
            or f"add `environments: {{{environment}: {{...}}}}` to floe.yaml",
        )
    if environment in overrides:
        merged = _merge_environment(data, overrides[environment])
        _convert(merged, FloeSpec, path, text, prefix="", env_name=environment)
        spec = msgspec.convert(merged, FloeSpec)
    return FloeConfig(spec=spec, environment=environment, path=path, source=raw_bytes)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of floe.yaml, for editors (``floe schema``)."""
    schema: dict[str, Any] = msgspec.json.schema(FloeSpec)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "floe.yaml",
        **schema,
    }


def config_schema_json() -> str:
    """:func:`config_schema` as stable, pretty JSON text (what schemas/floe.schema.json holds)."""
    return msgspec.json.format(msgspec.json.encode(config_schema()), indent=2).decode() + "\n"


# --- internals -------------------------------------------------------------------------------


def _decode_text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FloeConfigError(
            path, "", f"not UTF-8 text (byte {exc.start})", fix="save floe.yaml as UTF-8"
        ) from None


def _safe_load(text: str, path: Path) -> dict[str, Any]:
    try:
        data = safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        shape = isinstance(exc, YamlShapeError)  # valid YAML, refused for its shape
        raise FloeConfigError(
            path,
            "",
            f"refused: {problem}" if shape else f"invalid YAML: {problem}",
            line=line,
            fix="see floe.yaml's reading rules in docs/configuration.md"
            if shape
            else "check indentation and quoting near that line",
        ) from None
    except yaml.reader.ReaderError as exc:
        # The one unmarked error yaml's loader raises (every other one is a MarkedYAMLError).
        # A control character: yaml names its offset in the text; the message names its line.
        raise FloeConfigError(
            path,
            "",
            f"invalid YAML: unacceptable character #x{exc.character:04x} ({exc.reason})",
            line=text.count("\n", 0, exc.position) + 1,
            fix='remove it, or write it as an escape (such as "\\t") in a double-quoted string',
        ) from None
    if not isinstance(data, dict):
        raise FloeConfigError(
            path,
            "",
            "the document must be a mapping",
            expected="keys such as name, compute, transforms",
            found=_type_name(data),
            fix="start from the example in examples/shop/floe.yaml",
        )
    return data


def _merge_environment(base: dict[str, Any], override: Any) -> dict[str, Any]:
    merged = {k: v for k, v in base.items()}
    if not isinstance(override, dict):
        return merged
    base_compute = base.get("compute")
    over_compute = override.get("compute")
    if (
        isinstance(base_compute, dict)
        and isinstance(over_compute, dict)
        and "target" in over_compute
        and over_compute["target"] != base_compute.get("target")
    ):
        override = {**override}
        merged["compute"] = over_compute
        del override["compute"]
    return deep_merge(merged, override)


_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
# A mapping key that fails its constraint (an environment named "bad name").
_KEY_ERROR = re.compile(r"^(?P<msg>.*?) - at `key` in `\$(?P<path>[^`]*)`$", re.S)
# msgspec's names of the kinds of value it found, as Python types.
_KINDS: dict[str, type | tuple[type, ...]] = {
    "array": list,
    "object": dict,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "null": type(None),
}


def _convert(
    data: Any, kind: type[T], path: Path, text: str, *, prefix: str, env_name: str | None = None
) -> T:
    """msgspec.convert with errors rewritten into FloeConfigErrors."""
    if env_name is None:
        # Validate each environment's override first, so its errors carry its own path.
        envs = data.get("environments") if isinstance(data, dict) else None
        if isinstance(envs, dict):
            for name, override in envs.items():
                if override is not None:
                    prefix_ = f"environments.{name}"
                    _convert_one(override, EnvironmentOverride, path, text, prefix_)
    return _convert_one(data, kind, path, text, prefix)


def _convert_one(data: Any, kind: type[T], path: Path, text: str, prefix: str) -> T:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise _explain(str(exc), data, kind, path, text, prefix) from None


def _explain(
    message: str, data: Any, kind: type, path: Path, text: str, prefix: str
) -> FloeConfigError:
    key_error = _KEY_ERROR.match(message)
    if key_error:
        return _explain_key(
            key_error.group("msg"), key_error.group("path"), data, path, text, prefix
        )
    match = _MSGSPEC_ERROR.match(message)
    assert match is not None
    msg = match.group("msg")
    rel = _dotted(match.group("path") or "")
    if "[...]" in rel:
        got = re.search(r", got `(\w+)`", msg)
        rel = _concrete_key(data, rel, _KINDS.get(got.group(1)) if got else None)
    field = _join(prefix, rel)

    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        name = unknown.group(1)
        allowed = _fields_at(kind, rel)
        full = _join(field, name)
        suggestion = _did_you_mean(name, allowed)
        return FloeConfigError(
            path,
            full,
            "unknown field",
            expected="one of " + ", ".join(allowed) if allowed else None,
            found=repr(name),
            fix=suggestion or f"remove `{name}`",
            line=_line_of(text, full),
        )
    missing = re.match(r"Object missing required field `(.+)`", msg)
    if missing:
        name = missing.group(1)
        full = _join(field, name)
        where = f"under `{field}`" if field else "at the top level"
        return FloeConfigError(
            path,
            full,
            "required field is missing",
            expected=_EXAMPLES.get(name),
            fix=f"add `{name}:` {where}",
            line=_line_of(text, field) if field else None,
        )
    found_value = _value_at(data, rel)
    line = _line_of(text, field)
    if field.endswith("compute.target"):
        return FloeConfigError(
            path,
            field,
            "unsupported compute target",
            expected="one of " + ", ".join(SUPPORTED_TARGETS),
            found=repr(found_value),
            fix=_did_you_mean(str(found_value), list(SUPPORTED_TARGETS))
            or "pick one of the 7 supported targets",
            line=line,
        )
    enum = re.match(r"Invalid enum value (.+)", msg)
    if enum:
        choices = _enum_choices(kind, rel)
        return FloeConfigError(
            path,
            field,
            "value not allowed",
            expected="one of " + ", ".join(choices) if choices else None,
            found=enum.group(1),
            fix=_did_you_mean(str(found_value), choices) or "use one of the allowed values",
            line=line,
        )
    typed = re.match(r"Expected `(.+?)`(?:, got `(.+)`)?(.*)$", msg)
    if typed:
        expected = typed.group(1) + (typed.group(3) or "")
        expected = expected.replace("array", "list").replace("object", "mapping")
        fix = f"make `{field}` a {expected}"
        if rel.split(".")[-1] in _EXAMPLES and not typed.group(2):
            fix = f"for example {_EXAMPLES[rel.split('.')[-1]]}"
        if expected.startswith("str") and isinstance(found_value, int | float):
            spelled = _written(text, field) or str(found_value)
            fix = f'quote it: {field.rsplit(".", 1)[-1]}: "{spelled}"'
        return FloeConfigError(
            path,
            field,
            "wrong type" if typed.group(2) else "invalid value",
            expected=expected,
            found=f"{_type_name(found_value)} {found_value!r}",
            fix=fix,
            line=line,
        )
    return FloeConfigError(
        path,
        field,
        msg,
        found=repr(found_value),
        fix="see schemas/floe.schema.json (`floe schema`) for what this field accepts",
        line=line,
    )


def _explain_key(
    msg: str, msgspec_path: str, data: Any, path: Path, text: str, prefix: str
) -> FloeConfigError:
    """A mapping key refused by its constraint, named and located (not `(document)`)."""
    rel = _dotted(msgspec_path)
    field = _join(prefix, rel)
    mapping = _value_at(data, rel)
    pattern = re.search(r"matching regex '(.+)'", msg)
    bad = next(
        (
            key
            for key in (mapping if isinstance(mapping, dict) else ())
            if not isinstance(key, str) or (pattern and not re.search(pattern.group(1), key))
        ),
        None,
    )
    full = _join(field, str(bad)) if bad is not None else field
    expected = msg.replace("Expected `", "").replace("`", "", 1)
    fix = "use letters, digits, `_` and `-` only (not starting with `-`)"
    found = repr(bad)
    line = _line_of(text, full)
    if bad is not None and not isinstance(bad, str):  # `1:` or `true:` read as a number, a bool
        spelled, key_line = _written_key(text, field, bad)
        expected = "a string key"
        found = f"{_type_name(bad)} {bad!r}"
        fix = f'quote the key: "{spelled}":'
        line = key_line or line
    return FloeConfigError(
        path, full, "invalid name", expected=expected, found=found, fix=fix, line=line
    )


def _written_key(text: str, field: str, key: Any) -> tuple[str, int | None]:
    """A non-string mapping key under ``field`` as the file spells it (``01``, ``yes``), and
    its line."""
    _, node = _node_at(text, field)
    for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":str"):
            continue
        try:
            loaded = yaml.safe_load(key_node.value)
        except yaml.YAMLError:
            continue
        if loaded == key and type(loaded) is type(key):
            return str(key_node.value), key_node.start_mark.line + 1
    return str(key), None


def _concrete_key(data: Any, rel: str, kind: type | tuple[type, ...] | None) -> str:
    """``rel`` with its first ``[...]`` (msgspec: some key of a mapping) replaced by the key
    whose value is of the wrong ``kind``, so the error names it."""
    head, _, tail = rel.partition("[...]")
    mapping = _value_at(data, head)
    if not isinstance(mapping, dict):
        return rel
    for key, value in mapping.items():
        inner = _value_at(value, _dotted(tail)) if tail else value
        if kind is None or (
            isinstance(inner, kind) and not (kind is int and isinstance(inner, bool))
        ):
            return _join(head, str(key)) + tail
    return rel


_EXAMPLES = {
    "transforms": "transforms: [{type: dbt, path: <dbt project directory>}]",
    "compute": "compute: {target: duckdb}",
    "name": "name: <pipeline name>",
}


def _dotted(msgspec_path: str) -> str:
    return msgspec_path[1:] if msgspec_path.startswith(".") else msgspec_path


def _join(prefix: str, rel: str) -> str:
    if not prefix:
        return rel
    if not rel:
        return prefix
    return prefix + rel if rel.startswith("[") else f"{prefix}.{rel}"


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\.\.\.)\]")


def _parts(rel: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index in _PATH_PART.findall(rel):
        if name:
            out.append(name)
        elif index.isdigit():
            out.append(int(index))
    return out


def _value_at(data: Any, rel: str) -> Any:
    for part in _parts(rel):
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _type_at(kind: Any, rel: str) -> Any:
    info: Any = msgspec.inspect.type_info(kind)
    for part in _parts(rel):
        info = _unwrap(info)
        if isinstance(info, msgspec.inspect.StructType) and isinstance(part, str):
            fields = {f.name: f.type for f in info.fields}
            if part not in fields:
                return None
            info = fields[part]
        elif isinstance(info, msgspec.inspect.ListType) and isinstance(part, int):
            info = info.item_type
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
    return _unwrap(info)


def _unwrap(info: Any) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        for t in info.types:
            if not isinstance(t, msgspec.inspect.NoneType):
                return t
    return info


def _fields_at(kind: Any, rel: str) -> list[str]:
    info = _type_at(kind, rel)
    if isinstance(info, msgspec.inspect.StructType):
        return [f.name for f in info.fields]
    return []


def _enum_choices(kind: Any, rel: str) -> list[str]:
    info = _type_at(kind, rel)
    if isinstance(info, msgspec.inspect.LiteralType):
        return [str(v) for v in info.values]
    return []


def _did_you_mean(name: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _line_of(text: str, field: str, *, exact: bool = False) -> int | None:
    """1-based line of ``field`` (a dotted path) in the YAML text, found via the node tree;
    the deepest existing parent's line unless ``exact``."""
    line, node = _node_at(text, field)
    return line if node is not None or not exact else None


def _written(text: str, field: str) -> str | None:
    """The scalar at ``field`` exactly as the file spells it (``1.10``, ``yes``), not as YAML
    read it (``1.1``, ``True``): what a fix that says "quote it" must quote."""
    _, node = _node_at(text, field)
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _node_at(text: str, field: str) -> tuple[int | None, Any]:
    """The line of the deepest node on ``field``'s path, and ``field``'s own node (None when
    the path stops short of it)."""
    if not field:
        return None, None
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None, None
    line: int | None = None
    for part in _parts(field):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if getattr(key, "value", None) == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line, None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line, None
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line, None
    return line, node
