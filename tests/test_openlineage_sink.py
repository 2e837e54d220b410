"""The OpenLineage sink: configuration users know, delivery that raises or rejects, never loses.

Every HTTP test talks to a real server on loopback (support.lineage.Receiver) that can be
made to answer 4xx, 503 or nothing at all.
"""

from __future__ import annotations

import json
import socket
import stat
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support import data
from support.data import shop_events
from support.lineage import Receiver, assert_run_order

from floe_core.artifacts import CompiledArtifacts
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.openlineage.config import LineageConfigError, resolve_lineage_config
from floe_sidecar.sinks.openlineage.delivery import (
    CompositeDelivery,
    DeliveryError,
    FileDelivery,
    HttpDelivery,
    KafkaDelivery,
    TransportDelivery,
    build_delivery,
)
from floe_sidecar.sinks.openlineage.sink import OpenLineageSink, build_openlineage_sink


def artifacts(lineage: bool = True, endpoint: str | None = None) -> CompiledArtifacts:
    return data.artifacts(lineage=lineage, lineage_endpoint=endpoint)


def settings(tmp_path: Path, env: dict[str, str] | None = None, **kw: Any) -> SidecarSettings:
    return SidecarSettings(
        spool_dir=tmp_path / ".floe" / "spool",
        artifacts=kw.pop("arts", artifacts()),
        environ=env or {},
        **kw,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def sink_for(transport: dict[str, Any], max_batch: int = 200) -> OpenLineageSink:
    return OpenLineageSink(build_delivery(transport), "dbt", max_batch=max_batch)


def lineage(sink: OpenLineageSink, **variant: Any) -> list[dict[str, Any]]:
    return [item for event in shop_events(**variant) for item in sink.translate(event)]


# --- configuration ------------------------------------------------------------------------------


def test_lineage_off_by_floe_yaml_or_openlineage_disabled(tmp_path: Path) -> None:
    assert build_openlineage_sink(settings(tmp_path, arts=artifacts(lineage=False))) is None
    env = {"OPENLINEAGE_DISABLED": "true", "OPENLINEAGE_URL": "http://127.0.0.1:9"}
    assert build_openlineage_sink(settings(tmp_path, env)) is None
    # No compiled artifacts and no OpenLineage configuration: nothing asked for lineage.
    assert build_openlineage_sink(settings(tmp_path, arts=None)) is None


def test_embedded_default_is_an_ndjson_file_under_the_output_dir(tmp_path: Path) -> None:
    sink = build_openlineage_sink(settings(tmp_path, output_dir=tmp_path / "out"))
    assert sink is not None and isinstance(sink.delivery, FileDelivery)
    events = lineage(sink)
    assert sink.deliver(events[:5]) == []
    assert sink.deliver(events[5:]) == []
    path = tmp_path / "out" / "lineage" / "openlineage.ndjson"
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == events
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_openlineage_url_and_api_key(tmp_path: Path, receiver: Receiver) -> None:
    env = {"OPENLINEAGE_URL": receiver.url, "OPENLINEAGE_API_KEY": "s3cret"}
    config = resolve_lineage_config(settings(tmp_path, env))
    assert config is not None and config.source == "OPENLINEAGE_URL"
    assert "s3cret" not in config.source
    sink = build_openlineage_sink(settings(tmp_path, env))
    assert sink is not None
    assert sink.deliver(lineage(sink)[:2]) == []
    assert receiver.received[0].headers["Authorization"] == "Bearer s3cret"
    assert receiver.received[0].path == "/api/v1/lineage"


def test_lineage_endpoint_from_floe_yaml(tmp_path: Path, receiver: Receiver) -> None:
    for endpoint, path in (
        (receiver.url, "/api/v1/lineage"),
        (receiver.url + "/api/v2/lineage", "/api/v2/lineage"),
    ):
        config = resolve_lineage_config(settings(tmp_path, arts=artifacts(endpoint=endpoint)))
        assert config is not None and config.source == "observability.lineage_endpoint"
        sink = OpenLineageSink.from_config(config)
        assert sink.deliver(lineage(sink)[:1]) == []
        assert receiver.received[-1].path == path
    with pytest.raises(LineageConfigError, match="lineage_endpoint"):
        resolve_lineage_config(settings(tmp_path, arts=artifacts(endpoint="marquez:5000")))


def test_openlineage_yml_with_gzip_headers_and_env_overrides(
    tmp_path: Path, receiver: Receiver
) -> None:
    config_file = tmp_path / "ol.yml"
    config_file.write_text(
        "transport:\n"
        "  type: http\n"
        "  url: http://127.0.0.1:9\n"
        "  compression: gzip\n"
        "  custom_headers: {X-Team: data}\n"
        "  auth: {type: api_key, apiKey: from-file}\n"
    )
    env = {
        "OPENLINEAGE_CONFIG": str(config_file),
        "OPENLINEAGE__TRANSPORT__URL": receiver.url,  # env overrides the file
        "OPENLINEAGE_NAMESPACE": "prod",
    }
    sink = build_openlineage_sink(settings(tmp_path, env))
    assert sink is not None and sink.namespace == "prod"
    events = lineage(sink)
    assert sink.deliver(events[:3]) == []
    got = receiver.received[0]
    assert got.headers["Content-Encoding"] == "gzip"
    assert got.headers["X-Team"] == "data"
    assert got.headers["Authorization"] == "Bearer from-file"
    assert receiver.events() == events[:3]
    assert {e["job"]["namespace"] for e in receiver.events()} == {"prod"}


def test_dynamic_env_transport_and_composite_alias(tmp_path: Path, receiver: Receiver) -> None:
    out = tmp_path / "events.ndjson"
    env = {
        "OPENLINEAGE__TRANSPORT__TYPE": "composite",
        "OPENLINEAGE__TRANSPORT__TRANSPORTS__LOCAL__TYPE": "file",
        "OPENLINEAGE__TRANSPORT__TRANSPORTS__LOCAL__LOG_FILE_PATH": str(out),
        "OPENLINEAGE__TRANSPORT__TRANSPORTS__LOCAL__APPEND": "true",
        "OPENLINEAGE_URL": receiver.url,
    }
    sink = build_openlineage_sink(settings(tmp_path, env))
    assert sink is not None and isinstance(sink.delivery, CompositeDelivery)
    assert sorted(c.name for c in sink.delivery.children) == ["default_http", "local"]
    events = lineage(sink)[:4]
    assert sink.deliver(events) == []
    assert [json.loads(line) for line in out.read_text().splitlines()] == events
    assert receiver.events() == events


def test_bad_openlineage_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(LineageConfigError, match=r"nope\.yml"):
        resolve_lineage_config(
            settings(tmp_path, {"OPENLINEAGE_CONFIG": str(tmp_path / "nope.yml")})
        )
    bad = tmp_path / "bad.yml"
    bad.write_text("transport: [unclosed\n")
    with pytest.raises(LineageConfigError, match=r"bad\.yml"):
        resolve_lineage_config(settings(tmp_path, {"OPENLINEAGE_CONFIG": str(bad)}))


# --- HTTP delivery semantics -------------------------------------------------------------------


def test_single_endpoint_in_order_after_probing_for_batch(receiver: Receiver) -> None:
    sink = sink_for({"type": "http", "url": receiver.url})
    events = lineage(sink)
    for start in range(0, len(events), 7):
        assert sink.deliver(events[start : start + 7]) == []
    assert receiver.events() == events
    assert_run_order(receiver.events())
    assert isinstance(sink.delivery, HttpDelivery) and sink.delivery.batch_supported is False
    batch_probes = [r for r in receiver.requests if r[0].endswith("/batch")]
    assert batch_probes == [("/api/v1/lineage/batch", 404)]  # probed once, then remembered


def test_batch_endpoint_is_used_when_offered(receiver: Receiver) -> None:
    receiver.batch = True
    sink = sink_for({"type": "http", "url": receiver.url})
    events = lineage(sink)
    assert sink.deliver(events[:10]) == []
    assert sink.deliver(events[10:]) == []
    assert [r.path for r in receiver.received] == ["/api/v1/lineage/batch"] * 2
    assert receiver.events() == events


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_4xx_for_one_event_rejects_it_with_the_response(receiver: Receiver, batch: bool) -> None:
    receiver.batch = batch
    receiver.reject = lambda e: (
        e["job"]["name"] == "seed.shop.raw_orders" and e["eventType"] == "COMPLETE"
    )
    url = receiver.url.replace("http://", "http://user:s3cret@")  # never in a dead-letter line
    sink = sink_for({"type": "http", "url": url})
    events = lineage(sink)
    rejections = sink.deliver(events)
    assert all("s3cret" not in r.reason for r in rejections)
    [bad] = [i for i, e in enumerate(events) if receiver.reject(e)]
    assert [r.index for r in rejections] == [bad]
    assert "HTTP 400" in rejections[0].reason
    assert "invalid event: job seed.shop.raw_orders" in rejections[0].reason
    assert receiver.events() == events[:bad] + events[bad + 1 :]


def test_503_raises_and_a_retry_resumes_without_resending(receiver: Receiver) -> None:
    receiver.fail_after = 5
    sink = sink_for({"type": "http", "url": receiver.url})
    events = lineage(sink)[:12]
    with pytest.raises(DeliveryError, match="HTTP 503"):
        sink.deliver(events)
    assert receiver.events() == events[:5]
    receiver.mode = "ok"
    assert sink.deliver(events) == []  # the engine retries the same batch
    assert receiver.events() == events  # nothing twice: no START replayed after its COMPLETE


def test_a_hanging_backend_raises_after_the_timeout(receiver: Receiver) -> None:
    receiver.mode, receiver.hang_s = "hang", 5.0
    sink = sink_for({"type": "http", "url": receiver.url, "timeout": 0.3})
    began = time.monotonic()
    with pytest.raises(DeliveryError, match="Timeout"):
        sink.deliver(lineage(sink)[:1])
    assert time.monotonic() - began < receiver.hang_s


def test_connection_refused_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = sink_for({"type": "http", "url": f"http://user:pw@127.0.0.1:{port}"})
    with pytest.raises(DeliveryError) as caught:
        sink.deliver(lineage(sink)[:2])
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("status", [401, 403, 429])
def test_answers_about_the_backend_not_the_event_retry(receiver: Receiver, status: int) -> None:
    receiver._answer = lambda path, body, headers: receiver._log(path, status, "no")  # type: ignore[method-assign]
    sink = sink_for({"type": "http", "url": receiver.url})
    with pytest.raises(DeliveryError, match=f"HTTP {status}"):
        sink.deliver(lineage(sink)[:1])


# --- other transports ---------------------------------------------------------------------------


def test_composite_retries_only_the_failed_child(tmp_path: Path, receiver: Receiver) -> None:
    out = tmp_path / "lineage.ndjson"
    receiver.mode = "unavailable"
    sink = sink_for(
        {
            "type": "composite",
            "transports": {
                "backend": {"type": "http", "url": receiver.url},
                "local": {"type": "file", "log_file_path": str(out), "append": True},
            },
        }
    )
    events = lineage(sink)[:6]
    with pytest.raises(DeliveryError, match="backend"):
        sink.deliver(events)
    assert len(out.read_text().splitlines()) == 6
    receiver.mode = "ok"
    assert sink.deliver(events) == []
    assert len(out.read_text().splitlines()) == 6  # not written twice
    assert receiver.events() == events


def test_composite_failover_needs_one_child(tmp_path: Path, receiver: Receiver) -> None:
    receiver.mode = "unavailable"
    out = tmp_path / "fallback.ndjson"
    sink = sink_for(
        {
            "type": "composite",
            "continue_on_success": False,
            "transports": [
                {"type": "http", "url": receiver.url, "name": "primary"},
                {"type": "file", "log_file_path": str(out), "append": True, "name": "fallback"},
            ],
        }
    )
    events = lineage(sink)[:3]
    assert sink.deliver(events) == []
    assert len(out.read_text().splitlines()) == 3


def test_file_transport_without_append_goes_through_openlineage_python(tmp_path: Path) -> None:
    sink = sink_for({"type": "file", "log_file_path": str(tmp_path / "ol")})
    assert isinstance(sink.delivery, TransportDelivery)
    events = lineage(sink)[:3]
    assert sink.deliver(events) == []
    files = sorted(tmp_path.glob("ol-*.json"))
    assert len(files) == 3

    def without_empty_facets(event: dict[str, Any]) -> dict[str, Any]:
        for side in ("inputs", "outputs"):
            for dataset in event[side]:
                for key in ("inputFacets", "outputFacets"):
                    if dataset.get(key) == {}:
                        del dataset[key]
        return event

    assert [without_empty_facets(json.loads(f.read_text())) for f in files] == events


def test_console_writes_ndjson_to_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    sink = sink_for({"type": "console"})
    events = lineage(sink)[:2]
    assert sink.deliver(events) == []
    out = capfdbinary.readouterr().out.decode()
    assert [json.loads(line) for line in out.splitlines()] == events


class _FakeProducer:
    """Stands in for confluent_kafka.Producer: no Kafka broker or client library exists here."""

    fail: str | None = None
    instances: ClassVar[list[_FakeProducer]] = []

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.produced: list[tuple[str, str, bytes]] = []
        self.pending: list[Any] = []
        _FakeProducer.instances.append(self)

    def produce(self, topic: str, key: str, value: bytes, on_delivery: Any) -> None:
        self.produced.append((topic, key, value))
        self.pending.append(on_delivery)

    def flush(self, timeout: float = -1) -> int:
        for callback in self.pending:
            callback(_FakeProducer.fail, None)
        self.pending = []
        return 0


def test_kafka_keys_by_root_job_and_raises_on_delivery_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        sys.modules, "confluent_kafka", types.SimpleNamespace(Producer=_FakeProducer)
    )
    sink = sink_for(
        {"type": "kafka", "topic": "lineage", "config": {"bootstrap.servers": "127.0.0.1:9092"}}
    )
    assert isinstance(sink.delivery, KafkaDelivery)
    events = lineage(sink)[:4]
    assert sink.deliver(events) == []
    producer = _FakeProducer.instances[-1]
    assert [json.loads(v) for _, _, v in producer.produced] == events
    assert {key for _, key, _ in producer.produced} == {"run:dbt/shop_job"}
    monkeypatch.setattr(_FakeProducer, "fail", "broker down")
    with pytest.raises(DeliveryError, match="broker down"):
        sink.deliver(events)


def test_the_lineage_package_imports_neither_dagster_nor_dbt() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from floe_sidecar.sinks.openlineage.delivery import build_delivery\n"
        "build_delivery({'type': 'http', 'url': 'http://127.0.0.1:9'})\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(','.join(sorted(roots & {'dagster', 'dbt', 'dagster_dbt'})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
