"""Delivery of encoded RunEvents through the transports openlineage-python configures.

openlineage-python's transports are built to never bother the caller: HTTP retries for seconds
then raises, Kafka logs delivery errors and returns, composite swallows a failing child. The
sidecar needs the opposite: a delivery either lands or raises promptly (the engine keeps the
cursor and retries with backoff, from the spool), and an event the backend refuses for good is
reported so it can go to dead-letter while the rest keep flowing.

So each transport type is configured with openlineage-python's own config classes (the keys
users know: url, endpoint, timeout, auth, compression, custom_headers, sslContext...), then:

* ``http`` (and ``async_http``): one POST per batch to ``<endpoint>/batch`` when the backend
  offers it (probed once, remembered after a 404/405/501), else one POST per event, in order.
  No retries inside; a 2xx is delivered; 408, 425, 429, 5xx, 401, 403, 404, redirects and
  network errors raise (a 429 or 503 with ``Retry-After`` raises :class:`ThrottledError`, and
  the engine waits that long before the next attempt); any other 4xx rejects that event with
  the response text. Events of a
  batch already accepted are not re-sent when the engine retries the same batch, so a retry never
  replays a START after its COMPLETE.
* ``file`` with ``append: true`` (the embedded default): NDJSON appended and fsynced per batch.
* ``console``: NDJSON on standard output.
* ``kafka``: produced with openlineage-python's partition key (the root job, so a run's events
  stay in order), flushed, and any delivery error raises.
* ``composite``: each child gets every batch; a child that failed is retried alone, children that
  already took the batch are skipped. ``continue_on_success: false`` means fail-over (the first
  child that takes the batch is enough), ``continue_on_failure: false`` stops at the first
  failure.
* anything else (``file`` without append, ``msk_iam``, ``datadog``, ``gcplineage``, ``transform``,
  a custom class): openlineage-python's transport, one ``emit`` per event; an exception raises.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from floe_core.errors import DeliveryError, LineageConfigError, ThrottledError
from floe_core.fsutil import append_lines
from floe_core.redaction import Redactor, secret_values, strip_url_credentials
from floe_sidecar.engine.retry import THROTTLE_STATUSES, parse_retry_after
from floe_sidecar.sinks.base import Rejection

__all__ = [
    "CompositeDelivery",
    "ConsoleDelivery",
    "Delivery",
    "DeliveryError",
    "FileDelivery",
    "HttpDelivery",
    "KafkaDelivery",
    "TransportDelivery",
    "build_delivery",
]

log = logging.getLogger(__name__)

_REASON_CHARS = 2000
# 4xx answers that say nothing about the event itself: retry instead of rejecting it.
_RETRY_4XX = frozenset({401, 403, 404, 405, 407, 408, 421, 425, 429})
_NO_BATCH = frozenset({404, 405, 501})


class Delivery(Protocol):
    name: str

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        """Deliver JSON-encoded RunEvents in order; raise :class:`DeliveryError` to retry."""
        ...

    def close(self) -> None: ...


def _batch_key(events: Sequence[bytes]) -> tuple[int, int]:
    return len(events), hash(tuple(events))


def _redact(url: str) -> str:
    """A URL fit for a log line or the status file: no user info, no query string."""
    return strip_url_credentials(url)


def batch_url(url: str) -> str:
    """``<endpoint>/batch`` built on the path, so a query string (``?api_key=...``) stays a
    query string instead of swallowing ``/batch``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/batch"))


class HttpDelivery:
    """OpenLineage's HTTP API, with the http transport's configuration keys."""

    def __init__(self, params: dict[str, Any], name: str = "http") -> None:
        import requests
        from openlineage.client.transport.http import HttpCompression, HttpConfig
        from requests.adapters import HTTPAdapter

        self.name = name
        config = HttpConfig.from_dict(dict(params))
        url = config.url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LineageConfigError(
                f"OpenLineage http transport: not an http(s) URL: {_redact(url)}"
            )
        self.url = urljoin(url, config.endpoint)
        self.batch_url = batch_url(self.url)
        # An exception's text (requests puts the request path and query in it) passes through
        # this before it reaches a log line or the status file.
        self._scrub = Redactor(secret_values({"OPENLINEAGE_URL": self.url}))
        self._auth = config.auth
        self._headers = {"Content-Type": "application/json", **config.custom_headers}
        self._gzip = config.compression == HttpCompression.GZIP
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self.timeout = config.timeout
        self._verify: bool | str = config.verify
        self._cert: str | tuple[str, str] | None = None
        # Client certificates (`ssl_context`) arrived in openlineage-python 1.54.
        ssl_context = getattr(config, "ssl_context", None)
        if ssl_context is not None:
            if ssl_context.ca_cert_path:
                self._verify = ssl_context.ca_cert_path
            self._cert = ssl_context.as_requests_cert()
        self._session = requests.Session()
        # No retries below us: the engine retries, from the spool, with backoff.
        adapter = HTTPAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._exceptions = (requests.RequestException,)
        #: None until probed; then whether ``<endpoint>/batch`` exists.
        self.batch_supported: bool | None = None
        # Progress through the batch being delivered: (batch key, events done, rejections so far).
        self._progress: tuple[tuple[int, int], int, list[Rejection]] | None = None

    def _post(self, url: str, body: bytes) -> tuple[int, str]:
        """POST ``body``: (status, the start of the response text). A 429 or 503 with a
        ``Retry-After`` raises :class:`ThrottledError`."""
        headers = dict(self._headers)
        try:
            bearer = self._auth.get_bearer()
        except Exception as exc:  # token providers (jwt, oauth2, custom) may raise anything
            reason = self._scrub.redact(str(exc))
            raise DeliveryError(f"lineage auth token: {type(exc).__name__}: {reason}") from None
        if bearer:
            headers["Authorization"] = bearer
        data = gzip.compress(body, compresslevel=3) if self._gzip else body
        try:
            response = self._session.post(
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                verify=self._verify,
                cert=self._cert,
                allow_redirects=False,
            )
        except self._exceptions as exc:
            reason = self._scrub.redact(str(exc))
            raise DeliveryError(f"POST {_redact(url)}: {type(exc).__name__}: {reason}") from None
        with response:
            status, text = response.status_code, response.text[:_REASON_CHARS]
            if status in THROTTLE_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None:
                    raise ThrottledError(
                        f"POST {_redact(url)}: HTTP {status} (Retry-After {retry_after:g}s): "
                        f"{text[:200]}",
                        retry_after=retry_after,
                    )
            return status, text

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        if not events:
            return []
        key = _batch_key(events)
        done, rejections = 0, []
        if self._progress is not None and self._progress[0] == key:
            done, rejections = self._progress[1], list(self._progress[2])
        self._progress = None
        batch_refused = False
        if done == 0 and len(events) > 1 and self.batch_supported is not False:
            if self._deliver_batch(events):
                return []
            batch_refused = self.batch_supported is not False
        for index in range(done, len(events)):
            try:
                status, text = self._post(self.url, events[index])
            except DeliveryError:
                self._progress = (key, index, rejections)
                raise
            if 200 <= status < 300:
                continue
            if 400 <= status < 500 and status not in _RETRY_4XX:
                rejections.append(
                    Rejection(index, f"HTTP {status} from {_redact(self.url)}: {text}")
                )
                continue
            self._progress = (key, index, rejections)
            raise DeliveryError(f"POST {_redact(self.url)}: HTTP {status}: {text[:200]}")
        if batch_refused and not rejections:
            # The batch endpoint refused events the single endpoint takes: stop using it.
            log.info("lineage batch endpoint refused a batch the single endpoint took")
            self.batch_supported = False
        return rejections

    def _deliver_batch(self, events: Sequence[bytes]) -> bool:
        """True when the batch endpoint took the batch; False to send the events one by one."""
        status, text = self._post(self.batch_url, b"[" + b",".join(events) + b"]")
        if 200 <= status < 300:
            if self.batch_supported is None:
                log.info(
                    "lineage backend offers %s: delivering in batches", _redact(self.batch_url)
                )
            self.batch_supported = True
            return True
        if status in _NO_BATCH and self.batch_supported is None:
            log.info("lineage backend has no batch endpoint (HTTP %s): one POST per event", status)
            self.batch_supported = False
            return False
        if 400 <= status < 500 and status not in _RETRY_4XX:
            return False  # one event spoils the batch: send them one by one to find it
        raise DeliveryError(f"POST {_redact(self.batch_url)}: HTTP {status}: {text[:200]}")

    def close(self) -> None:
        self._session.close()


class FileDelivery:
    """OpenLineage NDJSON appended to one file, fsynced before the cursor moves past it."""

    def __init__(self, path: Path, name: str = "file") -> None:
        self.name = name
        self.path = path

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        if not events:
            return []
        try:
            append_lines(self.path, b"".join(event + b"\n" for event in events))
        except OSError as exc:
            raise DeliveryError(f"appending to {self.path}: {exc}") from exc
        return []

    def close(self) -> None:
        return None


class ConsoleDelivery:
    """NDJSON on standard output (the console transport, without going through logging)."""

    def __init__(self, name: str = "console") -> None:
        self.name = name

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        out = sys.stdout.buffer
        out.write(b"".join(event + b"\n" for event in events))
        out.flush()
        return []

    def close(self) -> None:
        return None


def _run_message_key(event: dict[str, Any]) -> str:
    """openlineage-python's Kafka key: the root job, else the parent job, else the job."""
    parent = event.get("run", {}).get("facets", {}).get("parent") or {}
    job = (parent.get("root") or {}).get("job") or parent.get("job") or event["job"]
    return f"run:{job['namespace']}/{job['name']}"


class KafkaDelivery:
    """The kafka transport's config (``config``, ``topic``, ``messageKey``), with errors raised."""

    def __init__(self, params: dict[str, Any], name: str = "kafka") -> None:
        from openlineage.client.transport.kafka import KafkaConfig

        self.name = name
        config = KafkaConfig.from_dict(dict(params))
        try:
            import confluent_kafka
        except ModuleNotFoundError:
            raise LineageConfigError(
                "the OpenLineage kafka transport needs confluent-kafka "
                "(pip install 'openlineage-python[kafka]')"
            ) from None
        self.topic = config.topic
        self.message_key = config.messageKey
        self.timeout = float(params.get("flush_timeout", 10.0))
        self._producer = confluent_kafka.Producer(config.config)

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        errors: list[str] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for body in events:
            key = self.message_key or _run_message_key(json.loads(body))
            try:
                self._producer.produce(
                    topic=self.topic, key=key, value=body, on_delivery=on_delivery
                )
            except (BufferError, ValueError, RuntimeError) as exc:
                raise DeliveryError(f"kafka topic {self.topic}: {exc}") from exc
        left = self._producer.flush(self.timeout)
        if errors or left:
            detail = errors[0] if errors else f"{left} message(s) not acknowledged"
            raise DeliveryError(f"kafka topic {self.topic}: {detail}")
        return []

    def close(self) -> None:
        self._producer.flush(self.timeout)


def _client_event(event: dict[str, Any]) -> Any:
    """A RunEvent dict as openlineage-python's event object (facets stay plain dicts)."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )

    def dataset(cls: Any, data: dict[str, Any], extra: str) -> Any:
        return cls(
            namespace=data["namespace"],
            name=data["name"],
            facets=data.get("facets", {}),
            **{extra: data.get(extra, {})},
        )

    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=event["run"].get("facets", {})),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=event["job"].get("facets", {}),
        ),
        producer=event["producer"],
        inputs=[dataset(InputDataset, d, "inputFacets") for d in event.get("inputs", [])],
        outputs=[dataset(OutputDataset, d, "outputFacets") for d in event.get("outputs", [])],
    )


class TransportDelivery:
    """Any other openlineage-python transport, one ``emit`` per event; exceptions retry."""

    def __init__(self, params: dict[str, Any], name: str | None = None) -> None:
        from openlineage.client.transport import get_default_factory

        self.transport = get_default_factory().create(dict(params))
        self.name = name or str(params.get("type"))

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        for body in events:
            try:
                self.transport.emit(_client_event(json.loads(body)))
            except Exception as exc:  # a third-party transport may raise anything
                raise DeliveryError(f"{self.name} transport: {type(exc).__name__}: {exc}") from exc
        return []

    def close(self) -> None:
        self.transport.close(timeout=5.0)


class CompositeDelivery:
    def __init__(
        self,
        children: list[Delivery],
        *,
        continue_on_failure: bool = True,
        continue_on_success: bool = True,
        name: str = "composite",
    ) -> None:
        if not children:
            raise LineageConfigError("OpenLineage composite transport: no child transports")
        self.name = name
        self.children = children
        self.continue_on_failure = continue_on_failure
        self.continue_on_success = continue_on_success
        self._done: dict[str, tuple[int, int]] = {}  # child name -> batch key it already took

    def deliver(self, events: Sequence[bytes]) -> list[Rejection]:
        key = _batch_key(events)
        rejected: dict[int, list[str]] = {}
        failures: list[str] = []
        retry_after: float | None = None
        successes = 0
        for child in self.children:
            if self._done.get(child.name) != key:
                try:
                    for rejection in child.deliver(events):
                        rejected.setdefault(rejection.index, []).append(
                            f"{child.name}: {rejection.reason}"
                        )
                except DeliveryError as exc:
                    failures.append(f"{child.name}: {exc}")
                    if exc.retry_after is not None:
                        retry_after = max(retry_after or 0.0, exc.retry_after)
                    if not self.continue_on_failure:
                        break
                    continue
                self._done[child.name] = key
            successes += 1
            if not self.continue_on_success:
                break
        all_needed = self.continue_on_success
        if failures and (all_needed or successes == 0):
            raise DeliveryError("; ".join(failures), retry_after=retry_after)
        return [
            Rejection(index, " | ".join(reasons)) for index, reasons in sorted(rejected.items())
        ]

    def close(self) -> None:
        for child in self.children:
            child.close()


def _local_path(path: str) -> Path | None:
    if path.startswith("file://"):
        return Path(urlsplit(path).path)
    return None if "://" in path else Path(path)


def build_delivery(transport: dict[str, Any], name: str | None = None) -> Delivery:
    """The delivery for one openlineage-python transport config."""
    params = {k: v for k, v in transport.items() if k not in ("name", "priority")}
    kind = str(params.get("type", ""))
    label = name or str(transport.get("name") or kind)
    if kind in ("http", "async_http"):
        return HttpDelivery(params, label)
    if kind == "file" and params.get("append") in (True, "true", "True"):
        path = _local_path(str(params.get("log_file_path", "")))
        if path is not None and str(path):
            return FileDelivery(path, label)
    if kind == "console":
        return ConsoleDelivery(label)
    if kind == "kafka":
        return KafkaDelivery(params, label)
    if kind == "composite":
        return _composite(params, label)
    return TransportDelivery(params, label)


def _composite(params: dict[str, Any], name: str) -> CompositeDelivery:
    from openlineage.client.transport.composite import CompositeConfig

    config = CompositeConfig.from_dict(dict(params))
    raw = config.transports
    entries: list[dict[str, Any]]
    if isinstance(raw, dict):
        entries = [{**child, "name": key} for key, child in raw.items() if child]
    else:
        entries = [dict(child) for child in raw]
    if config.sort_transports:
        entries.sort(key=lambda child: int(child.get("priority", 0)), reverse=True)
    children: list[Delivery] = []
    for position, entry in enumerate(entries):
        label = str(entry.get("name") or f"{entry.get('type')}#{position}")
        children.append(build_delivery(entry, label))
    return CompositeDelivery(
        children,
        continue_on_failure=_bool(config.continue_on_failure),
        continue_on_success=_bool(config.continue_on_success),
        name=name,
    )


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)
