"""One self-contained HTML page for a run: the lineage graph, column lineage, the span waterfall.

``floe show --html`` and ``floe run --html`` write it from the local lineage and trace files (and
the spool's undelivered events). Three steps, one module each: :mod:`.read` finds the run's events
and spans on disk, :mod:`.build` turns them into one :class:`~.model.RunModel` (pure), and
:mod:`.render` writes that model into an HTML page that loads nothing from anywhere.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from floe_cli.runpage.build import build_run
from floe_cli.runpage.model import RunModel
from floe_cli.runpage.read import RunFiles, RunInput, RunNotFound, read_run
from floe_cli.runpage.render import render_page
from floe_core.fsutil import atomic_write
from floe_core.layout import PAGES_DIR

__all__ = [
    "PageWritten",
    "RunFiles",
    "RunModel",
    "RunNotFound",
    "build_run",
    "default_page_path",
    "read_run",
    "render_page",
    "write_run_page",
]


@dataclass(frozen=True)
class PageWritten:
    path: Path
    model: RunModel
    notes: tuple[str, ...]  # what could not be read, said to the user


def default_page_path(floe_dir: Path, run_id: str) -> Path:
    """``.floe/html/run-<run id>.html``."""
    return floe_dir / PAGES_DIR / f"run-{run_id}.html"


def model_of(found: RunInput) -> RunModel:
    return build_run(
        found.run_id,
        found.events,
        found.spans,
        trace_id=found.trace_id,
        sources=found.sources,
        notes=found.notes,
    )


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Decoded JSON is millions of small acyclic objects: reference counting frees them, and
    the cyclic collector's full passes over them tripled the time of a 2,000-model page."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_run_page(
    files: RunFiles, run_id: str | None, output: Path | None, floe_dir: Path
) -> PageWritten:
    """Read run ``run_id`` (default: the latest), build its page and write it (owner-only)."""
    with _no_cyclic_gc():
        found = read_run(files, run_id)
        model = model_of(found)
        page = render_page(model).encode("utf-8")
    path = output if output is not None else default_page_path(floe_dir, model.run_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, page, durable=False)
    return PageWritten(path, model, tuple(found.notes))
