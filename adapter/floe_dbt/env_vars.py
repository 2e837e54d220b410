"""dbt's ``{{ env_var('NAME'[, 'default']) }}``: writing one, recognising one, reading names out
of a value and resolving the non-secret ones, all from one definition of the syntax."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["env_var", "env_var_names", "is_env_var_ref", "resolve_env_refs"]

# The call itself: env_var('NAME') or env_var("NAME", 'default').
_CALL = (
    r"""env_var\(\s*(['"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)\1"""
    r"""(?:\s*,\s*(['"])(?P<default>.*?)\3)?\s*\)"""
)
_CALL_RE = re.compile(_CALL)
# The call as a Jinja expression: {{ env_var(...) }}.
_REF_RE = re.compile(r"\{\{\s*" + _CALL + r"\s*\}\}")


def env_var(name: str) -> str:
    """The dbt reference to an environment variable, as written into profiles.yml."""
    return "{{ env_var('" + name + "') }}"


def is_env_var_ref(value: object) -> bool:
    """Whether ``value`` is exactly one ``{{ env_var('NAME') }}`` without a default (a default
    would be a literal secret)."""
    if not isinstance(value, str):
        return False
    match = _REF_RE.fullmatch(value.strip())
    return match is not None and match.group("default") is None


def env_var_names(value: str) -> list[str]:
    """The names of every ``env_var(...)`` call in ``value``, in order."""
    return [match.group("name") for match in _CALL_RE.finditer(value)]


def resolve_env_refs(value: str, environ: Mapping[str, str]) -> str | None:
    """``value`` with each ``{{ env_var('X'[, 'default']) }}`` replaced; None if one is unset
    and has no default."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        name, default = match.group("name"), match.group("default")
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing = True
        return ""

    result = _REF_RE.sub(substitute, value)
    return None if missing else result
