"""What the engine is asked to do, and the one place where the list of sinks is built.

Sinks come from two places:

* the built-in outputs, each from its factory ``build_*(settings) -> Sink | None`` (None: that
  output is switched off), imported lazily so a broken optional dependency names its sink;
* ``--sink`` specifications: ``console``, ``file:PATH``, or ``python:MODULE:FACTORY`` for a sink
  from your own code (the factory is called with the :class:`SidecarSettings` and returns a sink or
  None). Each may be named: ``NAME=file:PATH``. The name keys the sink's cursor, so renaming a
  sink makes it start again from the oldest segment still in the spool.

``python:`` imports and runs the named module: it is configuration an operator writes, like any
plugin, never something read from events.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floe_core.errors import SinkConfigError
from floe_core.layout import LINEAGE_SINK, LOGS_SINK, METRICS_SINK, TRACES_SINK, check_sink_name
from floe_core.transport import MAX_LINE_BYTES
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Sink
from floe_sidecar.sinks.console import ConsoleSink
from floe_sidecar.sinks.file import FileSink

__all__ = [
    "BUILTIN_SINKS",
    "EngineOptions",
    "SinkConfigError",
    "SinkSpec",
    "build_sinks",
    "parse_sink_spec",
]


@dataclass(frozen=True)
class EngineOptions:
    spool_dir: Path
    socket_path: Path | None = None
    socket_group: str | None = None
    #: Move delivered segments here instead of deleting them.
    archive_dir: Path | None = None
    deadletter_path: Path | None = None
    #: Deliver what is in the spool, then exit (no socket, no watching).
    once: bool = False
    #: --once: stop after this many seconds even if something is still pending (None: no limit).
    once_timeout: float | None = None
    #: After SIGTERM/SIGINT: how long sinks may keep delivering before they are cut off.
    grace: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Consumers look at the spool at least this often, notifications or not.
    rescan_interval: float = 1.0
    #: A sink with a partial batch waits this long once for more before delivering.
    linger: float = 0.002
    #: Watch the spool for changes (inotify); off, the rescan interval alone finds new lines.
    watch: bool = True
    watch_step_ms: int = 5
    watch_debounce_ms: int = 20
    status_interval: float = 2.0
    max_line_bytes: int = MAX_LINE_BYTES
    #: fsync the intake segment before each ACK (survive a machine crash, not just ours).
    intake_fsync: bool = False
    intake_segment_bytes: int = 16 * 1024 * 1024
    intake_seal_after_idle: float = 2.0
    #: Warn (and show in status) when one deliver has not returned after this many seconds.
    stall_warning: float = 30.0
    #: A run pod's sidecar whose spool a node's sidecar adopts: mark it released at a clean stop.
    handoff: bool = False
    #: A node's sidecar: adopt the spools ended run pods left in ``<adopt_dir>/*/spool``.
    adopt_dir: Path | None = None
    #: ... and one whose sidecar died without releasing it once idle for this long.
    adopt_after: float = 30.0


@dataclass(frozen=True)
class SinkSpec:
    kind: str  # console | file | python
    name: str
    target: str = ""  # file path, or "module:factory"
    #: Given as NAME=...; a python sink then takes this name instead of its own.
    named: bool = False


#: Built-in outputs: (sink kind, module, factory). Each factory returns a sink or None (off).
BUILTIN_SINKS: tuple[tuple[str, str, str], ...] = (
    (LINEAGE_SINK, "floe_sidecar.sinks.openlineage.sink", "build_openlineage_sink"),
    (TRACES_SINK, "floe_sidecar.sinks.otel.sink", "build_trace_sink"),
    (LOGS_SINK, "floe_sidecar.sinks.otel.logs_sink", "build_log_sink"),
    (METRICS_SINK, "floe_sidecar.sinks.otel.metrics_sink", "build_metric_sink"),
)


def parse_sink_spec(text: str) -> SinkSpec:
    """``[NAME=]console`` | ``[NAME=]file:PATH`` | ``[NAME=]python:MODULE:FACTORY``."""
    name = None
    body = text
    head, sep, rest = text.partition("=")
    if sep and ":" not in head:
        name, body = head, rest
    kind, _, target = body.partition(":")
    named = name is not None
    if kind == "console" and not target:
        spec = SinkSpec("console", name or "console", named=named)
    elif kind == "file" and target:
        spec = SinkSpec("file", name or "file", target, named=named)
    elif kind == "python" and target.count(":") == 1 and all(target.split(":")):
        spec = SinkSpec("python", name or target.split(":")[1], target, named=named)
    else:
        raise SinkConfigError(
            f"--sink {text!r}: expected console, file:PATH or python:MODULE:FACTORY "
            "(optionally prefixed by NAME=)"
        )
    try:
        check_sink_name(spec.name)
    except ValueError as exc:
        raise SinkConfigError(f"--sink {text!r}: {exc}") from None
    return spec


def _load_factory(label: str, module_name: str, attr: str) -> Callable[[SidecarSettings], Any]:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SinkConfigError(
            f"sink {label}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SinkConfigError(f"sink {label}: {module_name} has no callable {attr!r}")
    return factory


def _call_factory(
    label: str, factory: Callable[[SidecarSettings], Any], settings: SidecarSettings
) -> Sink[Any] | None:
    try:
        sink = factory(settings)
    except SinkConfigError:
        raise
    except Exception as exc:
        raise SinkConfigError(f"sink {label}: {type(exc).__name__}: {exc}") from exc
    if sink is None:
        return None
    for attr in ("name", "max_batch", "translate", "deliver", "close"):
        if not hasattr(sink, attr):
            raise SinkConfigError(f"sink {label}: the factory returned an object without {attr}")
    return sink


def _build_spec(spec: SinkSpec, settings: SidecarSettings) -> Sink[Any] | None:
    if spec.kind == "console":
        return ConsoleSink(spec.name)
    if spec.kind == "file":
        return FileSink(Path(spec.target), spec.name)
    module_name, attr = spec.target.split(":")
    sink = _call_factory(spec.name, _load_factory(spec.name, module_name, attr), settings)
    if sink is not None and spec.named:
        sink.name = spec.name
    return sink


def build_sinks(
    settings: SidecarSettings,
    extra: Sequence[SinkSpec | Sink[Any]] = (),
    *,
    builtin: bool = True,
) -> list[Sink[Any]]:
    """Every configured sink, in a stable order; names are checked to be unique and plain."""
    sinks: list[Sink[Any]] = []
    if builtin:
        for kind, module_name, attr in BUILTIN_SINKS:
            sink = _call_factory(kind, _load_factory(kind, module_name, attr), settings)
            if sink is not None:
                sinks.append(sink)
    for item in extra:
        sink = _build_spec(item, settings) if isinstance(item, SinkSpec) else item
        if sink is not None:
            sinks.append(sink)
    seen: set[str] = set()
    for sink in sinks:
        try:
            check_sink_name(sink.name)
        except ValueError as exc:
            raise SinkConfigError(str(exc)) from None
        if sink.name in seen:
            raise SinkConfigError(
                f"two sinks are named {sink.name!r}; name one with --sink NAME=... "
                "(the name keys its cursor)"
            )
        seen.add(sink.name)
    return sinks
