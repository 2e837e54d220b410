"""What every target's profile is made of, and the secret-variable naming convention.

Secret variables: ``FLOE_<REF>_<ENV>_<CREDENTIAL>``, all upper case, every run of characters
other than letters and digits replaced by ``_``. ``<REF>`` is ``compute.connection_secret_ref``
(the project ``name`` when absent), ``<ENV>`` the environment compiled for and ``<CREDENTIAL>``
the credential (``PASSWORD``, ``TOKEN``, ``PRIVATE_KEY_PASSPHRASE``, ...). So the prod password of
``connection_secret_ref: shop_warehouse`` is ``FLOE_SHOP_WAREHOUSE_PROD_PASSWORD``, and dev and
prod never read the same variable. profiles.yml only holds ``{{ env_var('NAME') }}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from floe_core.redaction import is_credential_name

__all__ = [
    "CONTAINER_KEYS",
    "AuthMethod",
    "Identity",
    "TargetProfile",
    "env_var_name",
    "is_secret_key",
]

# Credential keys are named by floe_core.redaction.is_credential_name (one rule for profile keys,
# URL parameters and the redactor), checked against every adapter's Credentials class by
# tests/test_profiles.py. Its exceptions among the adapters' real keys:
_NOT_SECRET = frozenset(
    {
        "use_credential_provider",  # dbt-duckdb: the name of a provider (`aws`), not a secret
        "secrets",  # dbt-duckdb: a list of DuckDB secrets, each entry checked by its own keys
    }
)
#: Keys whose value holds many entries, each checked by its own key (``secrets: [{type: s3,
#: key_id: ..., secret: ...}]``). Under any other credential key a list or mapping is a
#: literal secret unless every value in it is an env_var() reference (``password: [S]``).
CONTAINER_KEYS = frozenset({"secrets", "keyfile_json", "settings"})


def env_var_name(ref: str, environment: str, credential: str) -> str:
    """``FLOE_<REF>_<ENV>_<CREDENTIAL>`` (see the module docstring)."""
    parts = (ref, environment, credential)
    return "FLOE_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").upper() for p in parts)


def is_secret_key(key: str) -> bool:
    """Whether a profile key holds a credential (so only an env_var() reference is allowed):
    ``password``, ``sslpassword``, ``passwd``, ``pass``, ``password2``, ``private_key_id``, ..."""
    return key.lower() not in _NOT_SECRET and is_credential_name(key)


# Maps a rendered profile output to floe_core.events.Connection fields (no secrets).
Identity = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class AuthMethod:
    """One way of authenticating to a target."""

    name: str
    # Profile keys floe fixes for this method (e.g. ``method: service-account``).
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Profile key -> credential suffix of the env var it reads (FLOE_<REF>_<ENV>_<suffix>).
    credentials: Mapping[str, str] = field(default_factory=dict)
    # Non-secret keys the user must give in compute.properties for this method
    # (each entry: alternatives, any one of which will do).
    required: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class TargetProfile:
    """How floe writes one compute target's dbt profile output."""

    target: str  # floe's name
    adapter_type: str  # dbt's `type:`
    defaults: Mapping[str, Any]
    methods: Mapping[str, AuthMethod]
    identity: Identity
    # The compute.properties key choosing the auth method, and the value meaning each method.
    method_key: str | None = None
    method_values: Mapping[str, str] = field(default_factory=dict)  # property value -> method
    default_method: str = ""
    # Keys dropped from the output for a method whose selector dbt does not know (e.g. key-pair).
    drop_method_key: frozenset[str] = frozenset()
    required: tuple[tuple[str, ...], ...] = ()  # non-secret keys every method needs
    path_keys: tuple[str, ...] = ()  # file paths: relative ones resolve against floe.yaml

    # Picks the method from more than the selector (e.g. Spark thrift with `auth: LDAP`).
    refine: Callable[[AuthMethod, Mapping[str, Any]], AuthMethod] | None = None

    def method_for(self, properties: Mapping[str, Any]) -> AuthMethod | None:
        """The auth method ``properties`` ask for; None if the selector's value is unknown."""
        if self.method_key is None or self.method_key not in properties:
            method: AuthMethod | None = self.methods[self.default_method]
        else:
            value = str(properties[self.method_key])
            method = self.methods.get(self.method_values.get(value, value))
        if method is not None and self.refine is not None:
            method = self.refine(method, properties)
        return method

    def accepted_method_values(self) -> list[str]:
        return sorted({*self.methods, *self.method_values})
