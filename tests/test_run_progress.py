"""``floe run``'s progress lines and tally come from the run's own events, heard in process.

The watcher listens to the instance's event stream instead of re-reading the event log while the
step writes to it (issue 13: that re-reading was floe's largest cost in the run's process at
1,000 models); an instance without listeners still gets the same lines from its storage.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from floe_dagster.progress import RunTally, RunWatcher


@dg.asset
def upstream() -> int:
    return 1


@dg.asset(deps=[upstream])
def downstream() -> None:
    return None


@dg.asset_check(asset=downstream)
def downstream_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=upstream)
def upstream_is_not() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


class StorageOnly:
    """An instance as an older or remote one looks to the watcher: no listeners, storage only."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self.reads = 0

    def get_records_for_run(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self._instance.get_records_for_run(*args, **kwargs)


def watch_one_run(watched: Any, instance: dg.DagsterInstance) -> tuple[RunTally, list[str]]:
    lines: list[str] = []
    job = dg.define_asset_job("all").resolve(
        asset_graph=dg.Definitions(
            assets=[upstream, downstream], asset_checks=[downstream_is_fine, upstream_is_not]
        ).resolve_asset_graph()
    )
    run_id = "5b0c7a1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d"
    watcher = RunWatcher(watched, run_id, lines.append, interval_s=0.01)
    watcher.start()
    result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    tally = watcher.stop()
    assert result.success
    return tally, lines


def assert_saw_the_run(tally: RunTally, lines: list[str]) -> None:
    assert sorted(tally.planned) == ["downstream", "upstream"]
    assert sorted(tally.materialized) == ["downstream", "upstream"]
    assert tally.not_materialized == []
    assert tally.checks_passed == 1
    assert tally.checks_failed == ["upstream:upstream_is_not"]
    assert sum("ok     upstream" in line for line in lines) == 1  # each event heard once
    assert sum("ok     downstream" in line for line in lines) == 1
    assert any("FAIL   check upstream:upstream_is_not" in line for line in lines)
    assert any("assets planned" in line for line in lines)


def test_the_watcher_hears_the_run_in_process_without_reading_storage() -> None:
    with dg.instance_for_test() as instance:
        reads = 0
        real = instance.get_records_for_run

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return real(*args, **kwargs)

        instance.get_records_for_run = counted  # type: ignore[method-assign]
        tally, lines = watch_one_run(instance, instance)
        assert reads == 0
        assert_saw_the_run(tally, lines)


def test_an_instance_without_listeners_is_read_from_storage_with_the_same_result() -> None:
    with dg.instance_for_test() as instance:
        storage_only = StorageOnly(instance)
        tally, lines = watch_one_run(storage_only, instance)
        assert storage_only.reads > 0
        assert_saw_the_run(tally, lines)
