"""Where floe meets versions of Dagster, dagster-dbt and dbt-core: every private API, in one place.

floe supports dagster 1.9-1.13 with its matching dagster-dbt 0.25-0.29 and dbt-core 1.9-1.12
(the CI matrix in ``scripts/matrix.sh`` proves each stack). Public APIs that changed within that
range are bridged here by probing what the installed version offers (a keyword argument, a
settings field), never by comparing version numbers.

Private APIs are listed in :data:`PRIVATE_APIS`, each with what floe uses it for, the versions it
was tested on, and the public path floe takes instead when it is missing. Nothing outside this
module imports a private name: :func:`fast_start` resolves them all, or returns ``None``, and
then the caller takes the public path and :func:`warn_public_path` says so once per process.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

__all__ = [
    "DBT_PROCESS_SITE",
    "PRIVATE_APIS",
    "TESTED_STACKS",
    "FastStart",
    "PrivateApi",
    "asset_events",
    "asset_graph",
    "can_hand_dbt_process",
    "dbt_process_handed",
    "fast_start",
    "implicit_asset_job",
    "installed_versions",
    "missing_private_apis",
    "translator_settings",
    "warn_public_path",
]

log = logging.getLogger("floe_dagster.compat")

#: The stacks the CI matrix runs (scripts/stacks/*.txt pin each one exactly).
TESTED_STACKS = (
    "dagster 1.9.13 / dagster-dbt 0.25.13 / dbt-core 1.9.8",
    "dagster 1.11.16 / dagster-dbt 0.27.16 / dbt-core 1.10.23",
    "dagster 1.13.27 / dagster-dbt 0.29.27 / dbt-core 1.11 (the lock) and 1.12.6",
)


@dataclass(frozen=True)
class PrivateApi:
    """One private name floe uses: what for, where it was tested, and what happens without it."""

    module: str
    name: str  # attribute path inside ``module`` ("DbtCliResource._get_unique_target_path")
    used_for: str
    tested_on: str
    fallback: str
    # Keyword arguments the callable must accept (checked against its signature).
    needs_kwargs: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"


_FAST_START_FALLBACK = (
    "the public DbtCliResource.cli(): dagster-dbt's own start (on dagster-dbt >= 0.26 it runs "
    "`dbt --version` first, a few seconds per step), and dbt's lines reach floe in the step's "
    "thread instead of a reader thread of their own"
)
_FAST_START_TESTED = "dagster-dbt 0.29.27"

#: Every private API of dagster, dagster-dbt or dbt that floe uses. All of them serve
#: ``FloeDbtResource.start`` (see resource.py for why it exists).
PRIVATE_APIS: tuple[PrivateApi, ...] = (
    PrivateApi(
        module="dagster_dbt.asset_utils",
        name="extract_runtime_selection_from_args",
        used_for="split --select/--exclude out of the dbt arguments, as DbtCliResource.cli does",
        tested_on=_FAST_START_TESTED,
        fallback=_FAST_START_FALLBACK,
    ),
    PrivateApi(
        module="dagster_dbt.asset_utils",
        name="get_updated_cli_invocation_params_for_context",
        used_for="dagster-dbt's subset selection for the assets and checks of the step",
        tested_on=_FAST_START_TESTED,
        fallback=_FAST_START_FALLBACK,
        needs_kwargs=(
            "context",
            "manifest",
            "dagster_dbt_translator",
            "runtime_selects",
            "runtime_excludes",
        ),
    ),
    PrivateApi(
        module="dagster_dbt",
        name="DbtCliResource._get_unique_target_path",
        used_for="the unique target directory per invocation, named as dagster-dbt names it",
        tested_on=_FAST_START_TESTED,
        fallback=_FAST_START_FALLBACK,
        needs_kwargs=("context",),
    ),
    PrivateApi(
        module="dagster_dbt",
        name="DbtCliInvocation.run",
        used_for="start dbt as dagster-dbt does, without its `dbt --version` and adapter set-up",
        tested_on=_FAST_START_TESTED,
        fallback=_FAST_START_FALLBACK,
        needs_kwargs=(
            "args",
            "env",
            "manifest",
            "dagster_dbt_translator",
            "project_dir",
            "target_path",
            "raise_on_error",
            "context",
            "adapter",
            "cli_version",
            "dbt_project",
        ),
    ),
    PrivateApi(
        module="dagster_dbt",
        name="DbtCliInvocation._stream_stdout",
        used_for="hand each parsed dbt line to floe from a reader thread, before dagster-dbt",
        tested_on=_FAST_START_TESTED,
        fallback=_FAST_START_FALLBACK,
    ),
)

#: Optional, not one of :data:`PRIVATE_APIS`: the name ``DbtCliInvocation.run`` starts dbt
#: through. Replaced for the length of that call, it hands ``run`` the dbt process ``floe run``
#: started ahead of the step (``floe_dbt.warm``); without it the step starts dbt itself.
DBT_PROCESS_SITE = PrivateApi(
    module="dagster_dbt.core.dbt_cli_invocation",
    name="subprocess",
    used_for="hand DbtCliInvocation.run the dbt runner floe run started ahead of the step",
    tested_on=_FAST_START_TESTED,
    fallback="the step starts dbt itself (the waiting runner is stopped unused)",
)


def can_hand_dbt_process() -> bool:
    """Whether :func:`dbt_process_handed` can hand ``DbtCliInvocation.run`` a process here."""
    try:
        return _resolve(DBT_PROCESS_SITE) is subprocess
    except LookupError:
        return False


class _HandingSubprocess:
    """``subprocess`` as ``DbtCliInvocation.run`` sees it while a process is being handed: its
    ``Popen`` of exactly ``command`` returns what ``launch`` gives (once), if anything."""

    def __init__(
        self, command: list[str], launch: Callable[[], subprocess.Popen[bytes] | None]
    ) -> None:
        self.command = command
        self.launch: Callable[[], subprocess.Popen[bytes] | None] | None = launch

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:
        command = kwargs.get("args", args[0] if args else None)
        launch = self.launch
        if launch is not None and [str(a) for a in command or ()] == self.command:
            self.launch = None
            process = launch()
            if process is not None:
                return process
        return subprocess.Popen(*args, **kwargs)


@contextmanager
def dbt_process_handed(
    command: list[str], launch: Callable[[], subprocess.Popen[bytes] | None]
) -> Iterator[Callable[[], bool]]:
    """For the length of the block, dagster-dbt's start of ``command`` takes ``launch()``'s
    process instead (a fresh one if it gives None).

    Yields a check: whether ``launch`` was called (if not, the caller stops what it would have
    launched).
    """
    module = importlib.import_module(DBT_PROCESS_SITE.module)
    handing = _HandingSubprocess(command, launch)
    setattr(module, DBT_PROCESS_SITE.name, handing)
    try:
        yield lambda: handing.launch is None
    finally:
        setattr(module, DBT_PROCESS_SITE.name, subprocess)


def _resolve(api: PrivateApi) -> Any:
    """The object ``api`` names, or raise ``LookupError`` saying what is missing or different."""
    try:
        obj: Any = importlib.import_module(api.module)
    except ImportError as exc:
        raise LookupError(f"{api.module} cannot be imported ({exc})") from None
    for part in api.name.split("."):
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            raise LookupError(f"{api.qualified_name} does not exist") from None
        if isinstance(obj, classmethod | staticmethod):
            obj = obj.__func__
    if api.needs_kwargs:
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            raise LookupError(f"{api.qualified_name} has no inspectable signature") from None
        missing = [k for k in api.needs_kwargs if k not in params]
        if missing:
            raise LookupError(f"{api.qualified_name} takes no {', '.join(missing)}")
    return obj


@cache
def missing_private_apis() -> tuple[str, ...]:
    """Why each missing or changed private API cannot be used here (empty: all present)."""
    reasons: list[str] = []
    for api in PRIVATE_APIS:
        try:
            _resolve(api)
        except LookupError as exc:
            reasons.append(str(exc))
    return tuple(reasons)


@dataclass(frozen=True)
class FastStart:
    """The private pieces of dagster-dbt that ``FloeDbtResource.start`` is built from."""

    extract_runtime_selection_from_args: Callable[..., Any]
    get_updated_cli_invocation_params_for_context: Callable[..., Any]


def fast_start() -> FastStart | None:
    """The resolved private API for the fast start, or None when any piece is missing here."""
    if missing_private_apis():
        return None
    utils = importlib.import_module("dagster_dbt.asset_utils")
    return FastStart(
        extract_runtime_selection_from_args=utils.extract_runtime_selection_from_args,
        get_updated_cli_invocation_params_for_context=(
            utils.get_updated_cli_invocation_params_for_context
        ),
    )


_warned = threading.Event()


def warn_public_path(warn: Callable[[str], None] | None = None) -> str | None:
    """Say once per process that floe takes the public path, and why; returns the message."""
    reasons = missing_private_apis()
    if not reasons or _warned.is_set():
        return None
    _warned.set()
    versions = ", ".join(f"{k} {v}" for k, v in installed_versions().items())
    message = (
        f"floe: {'; '.join(reasons)} ({versions}; floe's fast dbt start was tested on "
        f"{_FAST_START_TESTED}). Using {_FAST_START_FALLBACK}."
    )
    log.warning(message)
    if warn is not None:
        warn(message)
    return message


@cache
def installed_versions() -> dict[str, str]:
    """The installed versions of the packages this module bridges (absent ones left out)."""
    found: dict[str, str] = {}
    for dist in ("dagster", "dagster-dbt", "dbt-core"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


# --- public APIs that changed within the supported range ---------------------------------------


def translator_settings(**wanted: bool) -> Any:
    """``DagsterDbtTranslatorSettings`` with each wanted setting this dagster-dbt knows.

    ``enable_source_tests_as_checks`` arrived in dagster-dbt 0.26: on 0.25, dbt tests on sources
    run but are not asset checks (the support table in the README says so).
    """
    from dagster_dbt import DagsterDbtTranslatorSettings

    known = {f.name for f in dataclasses.fields(DagsterDbtTranslatorSettings)}
    return DagsterDbtTranslatorSettings(**{k: v for k, v in wanted.items() if k in known})


@cache
def _accepts(function: Callable[..., Any], keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def asset_events(event: Any, invocation: Any, context: Any) -> Iterator[Any]:
    """dagster-dbt's Dagster events for one dbt event (``project=`` where it is accepted)."""
    kwargs: dict[str, Any] = {
        "manifest": invocation.manifest,
        "dagster_dbt_translator": invocation.dagster_dbt_translator,
        "context": context,
        "target_path": invocation.target_path,
    }
    if _accepts(type(event).to_default_asset_events, "project"):
        kwargs["project"] = getattr(invocation, "project", None)
    return event.to_default_asset_events(**kwargs)


def implicit_asset_job(defs: Any) -> Any:
    """All of ``defs``' assets as one job (``resolve_...`` from dagster 1.10, else ``get_...``)."""
    resolve = getattr(defs, "resolve_implicit_global_asset_job_def", None)
    return resolve() if resolve is not None else defs.get_implicit_global_asset_job_def()


def asset_graph(defs: Any) -> Any:
    """``defs``' asset graph (``resolve_asset_graph`` from dagster 1.10, ``get_...`` before)."""
    resolve = getattr(defs, "resolve_asset_graph", None)
    return resolve() if resolve is not None else defs.get_asset_graph()
