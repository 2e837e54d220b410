"""The Dagster half of ``floe run``: materialize the selected assets in this process.

``floe run`` (in ``floe_cli``) prepares the project, starts the sidecar and prints the summary;
this module is the part that touches Dagster: build the definitions from the compiled artifacts,
resolve a dbt selection to asset keys (:func:`plan_materialization`), then execute the implicit
asset job in process on the current instance while following its event log
(:meth:`Materialization.execute`, :class:`~floe_dagster.progress.RunWatcher`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import IO, Any

from floe_core.artifacts import CompiledArtifacts
from floe_core.errors import SelectionError
from floe_dagster.compat import asset_graph, implicit_asset_job
from floe_dagster.progress import RunTally, RunWatcher

__all__ = ["Materialization", "SelectionError", "plan_materialization", "selected_keys"]


@dataclass(frozen=True)
class Materialization:
    """The asset job and the asset keys one ``floe run`` materializes (None: all)."""

    job: Any
    selection: list[Any] | None

    @property
    def what(self) -> str:
        if self.selection is None:
            return "all assets"
        return f"{len(self.selection)} selected assets"

    def execute(
        self,
        run_id: str,
        say: Callable[[str], None],
        dbt_output: IO[str],
        tags: dict[str, str] | None = None,
    ) -> tuple[bool, RunTally]:
        """Run it as Dagster run ``run_id`` on the current instance.

        ``say`` gets one line per noteworthy event while the run goes; whatever dbt and Dagster
        print goes to ``dbt_output``. Returns whether the run succeeded and what it did.
        """
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
        watcher = RunWatcher(instance, run_id, say)
        watcher.start()
        try:
            with redirect_stdout(dbt_output):
                result = self.job.execute_in_process(
                    instance=instance,
                    run_id=run_id,
                    asset_selection=self.selection,
                    raise_on_error=False,
                    tags=tags or {},
                    run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                )
        finally:
            tally = watcher.stop()
        from floe_dagster.step import events_dropped

        run = instance.get_run_by_id(run_id)
        if run is not None:
            tally.events_dropped, tally.events_drop_reason = events_dropped(run.tags)
        return result.success, tally


def plan_materialization(
    artifacts: CompiledArtifacts, select: str | None = None, exclude: str | None = None
) -> Materialization:
    """The definitions of ``artifacts`` and what ``select``/``exclude`` pick from them."""
    from floe_dagster.assets import build_definitions

    defs = build_definitions(artifacts)
    job = implicit_asset_job(defs)
    selection = selected_keys(defs, select, exclude) if select or exclude else None
    return Materialization(job, selection)


def selected_keys(defs: Any, select: str | None, exclude: str | None) -> list[Any]:
    """dbt selection syntax (``--select stg_orders+``) resolved to asset keys."""
    from dagster_dbt import build_dbt_asset_selection

    assets = [a for a in defs.assets or () if hasattr(a, "keys")]
    selection = build_dbt_asset_selection(
        assets, dbt_select=select or "fqn:*", dbt_exclude=exclude or ""
    )
    keys = sorted(selection.resolve(asset_graph(defs)), key=lambda k: tuple(k.path))
    if not keys:
        raise SelectionError(
            f"--select {select!r}"
            + (f" --exclude {exclude!r}" if exclude else "")
            + " matched no dbt model, seed or snapshot"
        )
    return keys
