"""What loading a generated dbt profile in a test needs: no internet, a loopback OIDC server
(Databricks OAuth discovers its endpoints), dbt's global flags set once. Used as fixtures
(tests/conftest.py) by the profile tests and the sentinel test."""

from __future__ import annotations

import json
import socket
import threading
from argparse import Namespace
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["forbid_internet", "serve_oidc", "set_dbt_flags"]

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def forbid_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve or reach a non-loopback host fails the test."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host is not None:
            raise AssertionError(f"test tried to reach {host!r}: nothing may call the internet")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


class _OidcHandler(BaseHTTPRequestHandler):
    """The one request Databricks' SDK makes while validating an OAuth M2M profile."""

    def do_GET(self) -> None:
        base = f"http://{self.headers['Host']}"
        if self.path != "/oidc/.well-known/oauth-authorization-server":
            self.send_error(404)
            return
        body = json.dumps(
            {
                "authorization_endpoint": f"{base}/oidc/v1/authorize",
                "token_endpoint": f"{base}/oidc/v1/token",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_oidc() -> Iterator[str]:
    """A loopback OIDC discovery server, as a generator: its base URL, then shutdown."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OidcHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def set_dbt_flags() -> None:
    from dbt.flags import set_from_args

    set_from_args(Namespace(), None)
