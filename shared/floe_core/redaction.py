"""Keeping credential values out of what floe writes: one redactor for every text it exports.

dbt scrubs its own secrets (``DBT_ENV_SECRET_*``) from its log, but a dbt log line, a warehouse
error or a floe log record can still carry a value floe knows to be secret: a warehouse password
the generated profile reads from the environment, an OTLP header (often an API key), an
OpenLineage API key, or the password in a URL (``https://user:secret@host``). The adapter builds
one :class:`Redactor` from its environment when a step starts and passes every log message and
field through it before the line becomes an event; the value never reaches the spool.

Only values of at least :data:`MIN_SECRET_CHARS` characters are redacted: shorter ones would
turn ordinary words into ``[redacted]`` and protect nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "Redactor", "secret_values"]

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4

# Variables whose whole value is a credential.
_SECRET_VARIABLES = (
    "OPENLINEAGE_API_KEY",
    "OPENLINEAGE__TRANSPORT__AUTH__API_KEY",
    "OPENLINEAGE__TRANSPORT__AUTH__TOKEN",
)
# Variables holding `key=value,...` headers: every value is treated as a credential.
_HEADER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
)
# Variables holding URLs: their password, user info and query values are credentials.
_URL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OPENLINEAGE_URL",
    "OPENLINEAGE__TRANSPORT__URL",
)
# Any variable named like a credential (FLOE_SHOP_PROD_PASSWORD, DBT_ENV_SECRET_X, ...).
_SECRET_NAME = re.compile(
    r"(^DBT_ENV_SECRET_|PASSWORD$|PASSPHRASE$|SECRET$|TOKEN$|API_KEY$|APIKEY$|PRIVATE_KEY$"
    r"|CLIENT_SECRET$|ACCESS_KEY$|SECRET_ACCESS_KEY$|KEYFILE_JSON$)"
)


def _url_secrets(url: str) -> Iterable[str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        yield userinfo
        yield unquote(userinfo)
        _, _, password = userinfo.partition(":")
        if password:
            yield password
            yield unquote(password)
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        yield value


def _header_values(raw: str) -> Iterable[str]:
    for item in raw.split(","):
        _, sep, value = item.partition("=")
        if sep:
            yield value.strip()
            yield unquote(value.strip())


def secret_values(environ: Mapping[str, str], secret_env_vars: Iterable[str] = ()) -> set[str]:
    """Every credential value ``environ`` holds that floe knows of.

    ``secret_env_vars``: the variables the generated dbt profile reads credentials from (the
    compiled artifacts list them); besides those, OTLP headers, OpenLineage keys, the secret parts
    of endpoint URLs, and any variable named like a credential.
    """
    found: set[str] = set()
    for name in secret_env_vars:
        value = environ.get(name)
        if value:
            found.add(value)
    for name, value in environ.items():
        if not value:
            continue
        if name in _SECRET_VARIABLES or _SECRET_NAME.search(name):
            found.add(value)
        elif name in _HEADER_VARIABLES or name.startswith(
            "OPENLINEAGE__TRANSPORT__CUSTOM_HEADERS__"
        ):
            found.update(_header_values(value) if "=" in value else (value,))
        elif name in _URL_VARIABLES:
            found.update(_url_secrets(value))
        elif name.startswith("OPENLINEAGE__TRANSPORT__AUTH__") and name.endswith("KEY"):
            found.add(value)
    return {value for value in found if len(value) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces each known secret value in a text with ``[redacted]`` (longest values first)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], secret_env_vars: Iterable[str] = ()
    ) -> Redactor:
        return cls(secret_values(environ, secret_env_vars))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)
