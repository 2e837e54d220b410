"""Test support for the Dagster adapter: the example project compiled and parsed, a real Dagster
materialization of it, the spool read back, and a Unix-socket sidecar stand-in that can ack,
stall or hang up."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import Event, decode_event
from floe_core.spool import list_segments
from floe_core.transport import format_ack
from floe_dagster.manifest import parse_project
from floe_dbt.compile import compile_floe
from support.environment import EXAMPLE_DIR


def source_tests_are_checks() -> bool:
    """Whether this dagster-dbt makes dbt tests on sources asset checks (0.26 and later)."""
    from floe_dagster.compat import translator_settings

    settings = translator_settings(enable_source_tests_as_checks=True)
    return bool(getattr(settings, "enable_source_tests_as_checks", False))


def copy_example(dest: Path) -> Path:
    """A private copy of examples/shop (same exclusions as the ``example_dir`` fixture)."""
    shutil.copytree(
        EXAMPLE_DIR,
        dest,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*", "dbt_packages"),
    )
    return dest


def prepare(project: Path, env: str | None = None) -> CompiledArtifacts:
    """``floe compile`` then ``dbt parse``: what a user (or ``floe run``) does before Dagster."""
    artifacts = compile_floe(project / "floe.yaml", env=env, output_dir=project / ".floe")
    parse_project(artifacts)
    # Recompile so the classifications compiled from the manifest are in the artifacts too.
    return compile_floe(project / "floe.yaml", env=env, output_dir=project / ".floe")


def add_broken_model(project: Path) -> None:
    """A model that fails at run time (unknown column) and one that depends on it."""
    marts = project / "dbt" / "models" / "marts"
    (marts / "broken.sql").write_text(
        "select order_id from {{ ref('stg_orders') }} where no_such_column = 1\n"
    )
    (marts / "after_broken.sql").write_text("select * from {{ ref('broken') }}\n")


def set_observability(project: Path, *, enabled: bool) -> None:
    floe_yaml = project / "floe.yaml"
    text = floe_yaml.read_text()
    value = "true" if enabled else "false"
    for key in ("traces", "lineage"):
        text = text.replace(f"  {key}: true", f"  {key}: {value}")
    floe_yaml.write_text(text)


def set_prod_schema(project: Path, schema: str) -> None:
    floe_yaml = project / "floe.yaml"
    floe_yaml.write_text(floe_yaml.read_text().replace("schema: shop", f"schema: {schema}"))


@dataclass
class Materialization:
    artifacts: CompiledArtifacts
    run_id: str
    success: bool
    events: list[Any]  # DagsterEvent
    logs: list[Any]  # EventLogEntry (all records, Dagster events and messages)
    run_tags: dict[str, str]
    manifest: dict[str, Any]
    spool_dir: Path | None = None
    asset_specs: dict[Any, Any] = field(default_factory=dict)  # AssetKey -> AssetSpec
    check_keys: set[Any] = field(default_factory=set)

    @property
    def messages(self) -> list[str]:
        return [r.user_message for r in self.logs if not r.is_dagster_event]

    def materialized(self) -> set[tuple[str, ...]]:
        return {
            tuple(e.asset_key.path)
            for e in self.events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        }

    def target_dir(self) -> Path:
        """The dbt target directory of this run's invocation (dagster-dbt names it)."""
        target = Path(self.artifacts.dbt_project_path) / "target"
        found = sorted(target.glob(f"*-{self.run_id[:7]}-*"))
        assert len(found) == 1, found
        return found[0]

    def run_results(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.json.decode(
            (self.target_dir() / "run_results.json").read_bytes()
        )
        return data


@contextmanager
def env_vars(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def materialize(
    artifacts: CompiledArtifacts,
    env: Mapping[str, str | None],
    selection: list[Any] | None = None,
) -> Materialization:
    """Materialize the definitions for real (in process, ephemeral instance)."""
    from dagster import DagsterInstance

    from floe_dagster.assets import build_definitions
    from floe_dagster.compat import implicit_asset_job

    defs = build_definitions(artifacts)
    job = implicit_asset_job(defs)
    repo = defs.get_repository_def()
    specs = {}
    checks = set()
    for assets_def in repo.assets_defs_by_key.values():
        specs.update({spec.key: spec for spec in assets_def.specs})
        checks.update(assets_def.check_keys)
    instance = DagsterInstance.ephemeral()
    with env_vars(env):
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=selection
        )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    manifest = msgspec.json.decode(Path(artifacts.dbt_manifest_path).read_bytes())
    return Materialization(
        artifacts=artifacts,
        run_id=result.run_id,
        success=result.success,
        events=list(result.all_events),
        logs=list(instance.all_logs(result.run_id)),
        run_tags=dict(run.tags),
        manifest=manifest,
        spool_dir=Path(env["FLOE_SPOOL_DIR"]) if env.get("FLOE_SPOOL_DIR") else None,
        asset_specs=specs,
        check_keys=checks,
    )


def read_spool(directory: Path) -> list[Event]:
    """Every event in the spool's segments, in order (fails on any undecodable line)."""
    events: list[Event] = []
    for segment in list_segments(directory):
        for line in segment.read_bytes().splitlines():
            events.append(decode_event(line))
    return events


class SidecarStandIn:
    """A Unix-socket listener speaking the sidecar's protocol (persist, then ``ACK <n>``).

    ``mode``: "ack" acknowledges every line; "silent" reads but never acks; "stall" accepts and
    never reads; "hangup" acks ``hangup_after`` lines then closes the connection.
    """

    def __init__(self, path: Path, mode: str = "ack", hangup_after: int = 0) -> None:
        self.path = path
        self.mode = mode
        self.hangup_after = hangup_after
        self.lines: list[bytes] = []
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            if self.mode == "stall":
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        acked = 0
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            if not complete:
                continue
            self.lines.extend(line + b"\n" for line in complete)
            if self.mode == "silent":
                continue
            count = len(complete)
            if self.mode == "hangup" and acked + count >= self.hangup_after:
                count = self.hangup_after - acked
                if count:
                    conn.sendall(format_ack(count))
                conn.close()
                return
            conn.sendall(format_ack(count))
            acked += count

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for conn in self._conns:
            with suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)
