"""Keeping credential values out of what floe writes: one redactor for every text it exports.

dbt scrubs its own secrets (``DBT_ENV_SECRET_*``) from its log, but a dbt log line, a warehouse
error or a floe log record can still carry a value floe knows to be secret: a warehouse password
the generated profile reads from the environment, an OTLP header (often an API key), an
OpenLineage API key, or the password in a URL (``https://user:secret@host``). The adapter builds
one :class:`Redactor` from its environment when a step starts and passes every log message and
field through it before the line becomes an event; the value never reaches the spool.

Only values of at least :data:`MIN_SECRET_CHARS` characters are redacted: shorter ones would
turn ordinary words into ``[redacted]`` and protect nothing.

Besides values, this module owns the two other facts both processes need about credentials:
which *names* hold one (:func:`is_credential_name`: profile keys, URL query parameters) and how
a URL is shown or stored without its credentials (:func:`redact_url` for display: user info and
secret-looking query values replaced; :func:`strip_url_credentials` for identities: user info,
query string and fragment removed, so a dataset namespace never depends on a token).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "Redactor",
    "is_credential_name",
    "is_secret_variable",
    "redact_url",
    "secret_values",
    "strip_url_credentials",
    "url_credentials",
]

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
    "OPENLINEAGE_ENDPOINT",
    "OPENLINEAGE__TRANSPORT__URL",
    "OPENLINEAGE__TRANSPORT__ENDPOINT",
)
# Any variable named like a credential (FLOE_SHOP_PROD_PASSWORD, DBT_ENV_SECRET_X, ...).
# (dbt's own convention: a DBT_ENV_SECRET_ variable is never rendered outside the connection.)
# `_PWD`, not `PWD`: the shell's PWD and OLDPWD hold the working directory, not a password.
_SECRET_NAME = re.compile(
    r"(^DBT_ENV_SECRET_|PASSWORD\d*$|PASSWD$|_PASS$|_PWD$|PASSPHRASE$|SECRET$|TOKEN$"
    r"|API_KEY$|APIKEY$|PRIVATE_KEY$|PRIVATE_KEY_ID$|CLIENT_SECRET$|ACCESS_KEY$"
    r"|SECRET_ACCESS_KEY$|KEYFILE_JSON$)"
)

# Key and parameter names holding a credential: any name containing one of these...
_CREDENTIAL_PART = re.compile(
    r"password|passwd|passphrase|secret|token|private_?key|api_?key|access_?key|credential"
    r"|signature|bearer|jwt"
)
# ... or made only of / ending in one of these words (``pass``, ``db_pwd``, ``?key=``, ``?sig=``).
_CREDENTIAL_WORDS = frozenset({"pass", "pwd", "pw", "key", "sig", "sas"})
_CREDENTIAL_LAST_WORDS = frozenset({"pass", "pwd", "pw"})
# ... unless it names where a credential is, or what kind, not the credential itself.
_NOT_CREDENTIAL_SUFFIXES = ("_path", "_file", "_uri", "_url", "_endpoint", "_type", "_method")
_NOT_CREDENTIAL = frozenset({"access_key_id", "key_id", "client_id", "oauth_client_id"})


def is_credential_name(name: str) -> bool:
    """Whether a key or query parameter called ``name`` holds a credential.

    ``password``, ``sslpassword``, ``password2``, ``passwd``, ``pass``, ``private_key_id``,
    ``api_key``, ``motherduck_token``, ``X-Amz-Signature``, ``?key=`` are; ``private_key_path``,
    ``token_uri``, ``auth_type``, ``access_key_id`` are not (a location, a kind, a public id).
    """
    normal = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not normal or normal in _NOT_CREDENTIAL or normal.endswith(_NOT_CREDENTIAL_SUFFIXES):
        return False
    if _CREDENTIAL_PART.search(normal):
        return True
    words = normal.split("_")
    return normal in _CREDENTIAL_WORDS or words[-1] in _CREDENTIAL_LAST_WORDS


def is_secret_variable(name: str) -> bool:
    """Whether an environment variable called ``name`` holds a credential by its name alone."""
    return name in _SECRET_VARIABLES or _SECRET_NAME.search(name.upper()) is not None


def redact_url(url: str, *, drop_userinfo: bool = False) -> str:
    """``url`` fit to be shown or stored: user info and secret-looking query values replaced by
    ``[redacted]``; everything else (scheme, host, path, other parameters) kept as written.

    Works on relative references too (``api/v1/lineage?api_key=...``). ``drop_userinfo``: leave
    the user info out instead of marking it (``http://host/...``).
    """
    text = url.strip()
    head, hash_, fragment = text.partition("#")
    base, question, query = head.partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            host = authority.rsplit("@", 1)[1]
            authority = host if drop_userinfo else f"{REDACTED}@{host}"
        base = f"{scheme}{sep}{authority}{slash}{path}"
    if question:
        query = "&".join(_redact_parameter(item) for item in query.split("&"))
    if hash_ and ("=" in fragment or "token" in fragment.lower()):
        fragment = REDACTED  # OAuth implicit flows put tokens here
    return base + question + query + hash_ + fragment


def _redact_parameter(item: str) -> str:
    name, eq, _ = item.partition("=")
    if eq and is_credential_name(unquote(name)):
        return f"{name}={REDACTED}"
    return item


def strip_url_credentials(value: str) -> str:
    """``value`` without user info, query string or fragment (``md:db?motherduck_token=x`` ->
    ``md:db``, ``postgres://u:pw@h/db`` -> ``postgres://h/db``): what may identify a dataset."""
    base = value.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        base = f"{scheme}{sep}{authority.rsplit('@', 1)[-1]}{slash}{path}"
    return base


def url_credentials(value: str) -> list[str]:
    """The credential parts written into ``value`` (a URL, or a ``md:``-style connection
    string): the password of its user info and the values of secret-looking query parameters.
    Empty for a value that carries none."""
    found: list[str] = []
    base, _, query = value.strip().split("#", 1)[0].partition("?")
    _, sep, rest = base.partition("://")
    if sep:
        authority = rest.partition("/")[0]
        if "@" in authority:
            _, colon, password = authority.rsplit("@", 1)[0].partition(":")
            if colon and password:
                found.append(password)
    for item in query.split("&") if query else ():
        name, eq, parameter = item.partition("=")
        if eq and parameter and is_credential_name(unquote(name)):
            found.append(parameter)
    return found


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
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if is_credential_name(name):
            yield value
            yield quote(value, safe="")


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
        if is_secret_variable(name):
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
