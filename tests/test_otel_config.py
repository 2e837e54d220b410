"""Where the sidecar sends traces: floe.yaml's observability block and the OTEL_* variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import data

from floe_core.artifacts import (
    CompiledArtifacts,
)
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.otel.config import (
    DEFAULT_TIMEOUT_S,
    FileExport,
    OtlpExport,
    TraceConfig,
    TraceConfigError,
    resolve_trace_config,
)
from floe_sidecar.sinks.otel.sink import build_trace_sink


def _artifacts(
    traces: bool = True, endpoint: str | None = None, attributes: dict[str, str] | None = None
) -> CompiledArtifacts:
    return data.artifacts(
        environment="prod",
        traces=traces,
        otlp_endpoint=endpoint,
        attributes=attributes or {"tenant": "acme"},
    )


def _config(
    tmp_path: Path, artifacts: CompiledArtifacts | None = None, **environ: str
) -> TraceConfig | None:
    settings = SidecarSettings(spool_dir=tmp_path / "spool", artifacts=artifacts, environ=environ)
    return resolve_trace_config(settings)


def _otlp(tmp_path: Path, artifacts: CompiledArtifacts | None = None, **environ: str) -> OtlpExport:
    config = _config(tmp_path, artifacts, **environ)
    assert config is not None and isinstance(config.export, OtlpExport)
    return config.export


def test_standalone_means_no_sink(tmp_path: Path) -> None:
    settings = SidecarSettings(spool_dir=tmp_path / "spool", artifacts=_artifacts(traces=False))
    assert build_trace_sink(settings) is None
    assert build_trace_sink(SidecarSettings(spool_dir=tmp_path / "spool")) is None


def test_traces_false_wins_over_an_endpoint_in_the_environment(tmp_path: Path) -> None:
    assert (
        _config(tmp_path, _artifacts(traces=False), OTEL_EXPORTER_OTLP_ENDPOINT="http://h:4318")
        is None
    )


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_SDK_DISABLED": "true"},
        {"OTEL_SDK_DISABLED": "TRUE"},
        {"OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_standard_switches_turn_traces_off(tmp_path: Path, environ: dict[str, str]) -> None:
    assert _config(tmp_path, _artifacts(endpoint="http://h:4318"), **environ) is None


def test_unknown_traces_exporter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceConfigError, match=r"OTEL_TRACES_EXPORTER='zipkin'.*otlp"):
        _config(tmp_path, _artifacts(), OTEL_TRACES_EXPORTER="zipkin")


def test_traces_on_without_endpoint_writes_a_local_file(tmp_path: Path) -> None:
    config = _config(tmp_path, _artifacts())
    assert config is not None
    assert config.export == FileExport(path=tmp_path / "traces" / "otlp-traces.jsonl")


def test_floe_yaml_endpoint_port_4317_means_grpc(tmp_path: Path) -> None:
    export = _otlp(tmp_path, _artifacts(endpoint="http://collector:4317"))
    assert export.protocol == "grpc"
    assert export.endpoint == "http://collector:4317"
    assert export.insecure is True
    assert export.timeout_s == DEFAULT_TIMEOUT_S


def test_floe_yaml_endpoint_otherwise_http_with_the_traces_path(tmp_path: Path) -> None:
    export = _otlp(tmp_path, _artifacts(endpoint="https://otlp.example.com/"))
    assert (export.protocol, export.endpoint) == (
        "http/protobuf",
        "https://otlp.example.com/v1/traces",
    )
    already = _otlp(tmp_path, _artifacts(endpoint="http://c:4318/v1/traces"))
    assert already.endpoint == "http://c:4318/v1/traces"


def test_environment_overrides_floe_yaml(tmp_path: Path) -> None:
    export = _otlp(
        tmp_path,
        _artifacts(endpoint="http://from-yaml:4318"),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://from-env:9999",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert (export.protocol, export.endpoint) == ("grpc", "http://from-env:9999")


def test_signal_specific_variables_win_and_are_used_as_is(tmp_path: Path) -> None:
    export = _otlp(
        tmp_path,
        None,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://base:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://traces:4318/custom/path",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="9000",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="1500",
    )
    assert export.endpoint == "http://traces:4318/custom/path"
    assert export.protocol == "http/protobuf"
    assert export.timeout_s == 1.5  # milliseconds, as the specification says


def test_without_artifacts_an_endpoint_variable_turns_traces_on(tmp_path: Path) -> None:
    export = _otlp(tmp_path, None, OTEL_EXPORTER_OTLP_ENDPOINT="http://localhost:4317")
    assert export.protocol == "grpc"


def test_grpc_security_follows_the_scheme_then_insecure(tmp_path: Path) -> None:
    grpc = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert _otlp(tmp_path, _artifacts(endpoint="https://c:4317"), **grpc).insecure is False
    assert _otlp(tmp_path, _artifacts(endpoint="c:4317"), **grpc).insecure is False
    assert (
        _otlp(
            tmp_path, _artifacts(endpoint="c:4317"), OTEL_EXPORTER_OTLP_INSECURE="true", **grpc
        ).insecure
        is True
    )


def test_headers_are_parsed_and_kept_out_of_repr(tmp_path: Path) -> None:
    export = _otlp(
        tmp_path,
        _artifacts(endpoint="http://c:4318"),
        OTEL_EXPORTER_OTLP_HEADERS="x-honeycomb-team=s3cr3t,x-tenant=a%20b",
    )
    assert export.headers == {"x-honeycomb-team": "s3cr3t", "x-tenant": "a b"}
    assert "s3cr3t" not in repr(export)
    sink = build_trace_sink(
        SidecarSettings(
            spool_dir=tmp_path / "spool",
            artifacts=_artifacts(endpoint="http://user:pw@c:4318"),
            environ={"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr3t"},
        )
    )
    assert sink is not None
    assert sink.destination == "http://c:4318/v1/traces"
    assert "s3cr3t" not in repr(sink.config)
    sink.close()


def test_tls_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TraceConfigError, match=r"OTEL_EXPORTER_OTLP_CERTIFICATE=.*no such file"):
        _config(
            tmp_path,
            _artifacts(endpoint="https://c:4318"),
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(tmp_path / "missing.pem"),
        )
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    export = _otlp(
        tmp_path,
        _artifacts(endpoint="https://c:4318"),
        OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=str(ca),
    )
    assert export.certificate_file == str(ca)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "protobuf only"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "expected grpc or http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "expected milliseconds"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "0"}, "must be positive"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "expected one of none, gzip"),
        ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-3"}, "positive whole number"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "tenant"}, "'tenant' is not key=value"),
    ],
)
def test_bad_values_name_the_variable(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(TraceConfigError, match=message) as caught:
        _config(tmp_path, _artifacts(endpoint="http://c:4318"), **environ)
    assert next(iter(environ)) in str(caught.value)


def test_http_endpoint_needs_a_scheme(tmp_path: Path) -> None:
    with pytest.raises(TraceConfigError, match="needs an http:// or https:// URL"):
        _config(tmp_path, _artifacts(endpoint="collector:4318"))


def test_resource_service_name_and_attribute_precedence(tmp_path: Path) -> None:
    default = _config(tmp_path, _artifacts())
    assert default is not None
    assert default.resource == {
        "service.name": "floe",
        "tenant": "acme",
        "deployment.environment.name": "prod",
    }
    config = _config(
        tmp_path,
        _artifacts(attributes={"tenant": "acme", "team": "data"}),
        OTEL_RESOURCE_ATTRIBUTES="service.name=from-attrs,team=ops,k8s.pod.name=p%2F1",
        OTEL_SERVICE_NAME="pipelines",
    )
    assert config is not None
    assert config.resource == {
        "service.name": "pipelines",  # OTEL_SERVICE_NAME beats OTEL_RESOURCE_ATTRIBUTES
        "team": "data",  # floe.yaml's attributes beat the environment's, as in Resource.create
        "k8s.pod.name": "p/1",
        "tenant": "acme",
        "deployment.environment.name": "prod",
    }


def test_batch_size_and_compression(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        _artifacts(endpoint="http://c:4318"),
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="100",
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION="gzip",
    )
    assert config is not None and isinstance(config.export, OtlpExport)
    assert (config.max_batch, config.export.compression) == (100, "gzip")


def test_the_trace_package_imports_neither_dagster_nor_dbt() -> None:
    code = (
        "import sys, floe_sidecar.sinks.otel, floe_sidecar.sinks.otel.sink\n"
        "import floe_sidecar.sinks.otel.exporters\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_dbt', 'dbt'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
