"""The examples end to end, as a user runs them: `floe run`, then everything checked from what it
left behind (the Dagster instance, the lineage file, the traces file) against dbt's manifests.

- examples/shop: one dbt project;
- examples/marketing: two dbt projects (the shop and marketing, which reads the shop's customers)
  in one floe.yaml: both materialize, asset keys are per project, and every node of both gets
  its lineage and its span under the one Dagster run, on one trace with one root span.

The compatibility matrix (scripts/matrix.sh) runs this module on every supported stack, against
the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.adapter import source_tests_are_checks
from support.environment import REPO_ROOT

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 600
EXECUTED = frozenset({"model", "seed", "snapshot", "test"})
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")


def floe_command() -> list[str]:
    """The `floe` console script of this interpreter's environment (the wheel's, in the matrix)."""
    script = Path(sys.executable).parent / "floe"
    assert script.is_file(), f"no `floe` script beside {sys.executable}"
    return [str(script)]


@dataclass(frozen=True)
class Pipeline:
    project: Path  # the directory holding floe.yaml
    output: str
    run_id: str
    manifests: dict[str, dict[str, Any]]  # dbt project name -> manifest

    @property
    def floe_dir(self) -> Path:
        return self.project / ".floe"

    def nodes(self, *types: str) -> dict[str, dict[str, Any]]:
        found = {}
        for manifest in self.manifests.values():
            for unique_id, props in manifest["nodes"].items():
                if props["resource_type"] not in types:
                    continue
                if props.get("config", {}).get("materialized") == "ephemeral":
                    continue
                found[unique_id] = props
        return found

    def spans(self) -> list[dict[str, Any]]:
        lines = (self.floe_dir / "traces" / "otlp-traces.jsonl").read_text().splitlines()
        return [
            span
            for line in lines
            for resource in json.loads(line)["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    def lineage(self) -> list[dict[str, Any]]:
        lines = (self.floe_dir / "lineage" / "openlineage.ndjson").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def run_example(tmp_path: Path, name: str) -> Pipeline:
    """Copy examples/ (the marketing example points at ../shop) and `floe run` one of them."""
    examples = tmp_path / "examples"
    shutil.copytree(
        REPO_ROOT / "examples",
        examples,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*", "dbt_packages"),
    )
    project = examples / name
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [*floe_command(), "run"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    artifacts = json.loads((project / ".floe" / "compiled_artifacts.json").read_text())
    manifests = {}
    for transform in artifacts["transforms"]:
        manifest_path = Path(transform.get("manifest_path") or artifacts["dbt_manifest_path"])
        manifest = json.loads(manifest_path.read_text())
        manifests[manifest["metadata"]["project_name"]] = manifest
    run_id = next(
        line.split("Dagster run ", 1)[1].split()[0].rstrip(")")
        for line in output.splitlines()
        if "Dagster run " in line
    )
    return Pipeline(project=project, output=output, run_id=run_id, manifests=manifests)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return run_example(tmp_path_factory.mktemp("shop"), "shop")


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return run_example(tmp_path_factory.mktemp("marketing"), "marketing")


def materialized_keys(pipeline: Pipeline) -> Counter[str]:
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(pipeline.floe_dir / "dagster")
    try:
        with DagsterInstance.get() as instance:
            records = instance.get_records_for_run(
                pipeline.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
            ).records
            keys = [r.event_log_entry.dagster_event.asset_key for r in records]
    finally:
        os.environ.pop("DAGSTER_HOME", None)
    return Counter(key.to_user_string() for key in keys if key is not None)


def expected_checks(pipeline: Pipeline) -> int:
    tests = pipeline.nodes("test")
    if source_tests_are_checks():
        return len(tests)
    return sum(
        1
        for props in tests.values()
        if not all(d.startswith("source.") for d in props["depends_on"]["nodes"])
    )


def assert_pipeline(pipeline: Pipeline, dataset_keys: dict[str, str]) -> None:
    """Every asset, check, lineage event and span the run must have left behind."""
    output = pipeline.output
    assert f"assets: {len(dataset_keys)} materialized" in output, output
    assert f"checks: {expected_checks(pipeline)} passed" in output, output

    assert materialized_keys(pipeline) == Counter(dataset_keys.values())

    spans = pipeline.spans()
    trace_ids = {span["traceId"] for span in spans}
    assert trace_ids == {pipeline.run_id.replace("-", "")}, "one trace: the Dagster run's"
    roots = [span for span in spans if not span.get("parentSpanId")]
    assert [root["name"] for root in roots] == ["RUN __ASSET_JOB"], "exactly one root span"
    by_id = {span["spanId"]: span for span in spans}
    assert len(by_id) == len(spans), "no span exported twice"
    invocations = [span for span in spans if span["name"] == "dbt build"]
    assert len(invocations) == len(pipeline.manifests), "one dbt invocation per project"
    assert all(span["parentSpanId"] == roots[0]["spanId"] for span in invocations)

    node_spans: dict[str, dict[str, Any]] = {}
    for span in spans:
        attributes = {a["key"]: a["value"] for a in span.get("attributes", [])}
        unique_id = attributes.get("dbt.unique_id", {}).get("stringValue")
        if unique_id is not None:
            assert unique_id not in node_spans, f"two spans for {unique_id}"
            node_spans[unique_id] = span
    executed = pipeline.nodes(*EXECUTED)
    missing = sorted(set(executed) - set(node_spans))
    assert not missing, f"no span for {missing}"
    for unique_id in executed:
        span = node_spans[unique_id]
        assert span["status"].get("code") != 2, f"{unique_id} span is an error"
        parent = by_id[span["parentSpanId"]]
        assert parent["name"] == "dbt build" and parent["parentSpanId"] == roots[0]["spanId"]

    states: dict[str, set[str]] = {}
    for event in pipeline.lineage():
        trace = event["run"]["facets"].get("floe_trace", {})
        assert trace.get("traceId") == pipeline.run_id.replace("-", "")
        states.setdefault(trace.get("spanId", ""), set()).add(event["eventType"])
    for unique_id in executed:
        span_id = node_spans[unique_id]["spanId"]
        assert states.get(span_id, set()) >= {"START", "COMPLETE"}, unique_id
    root_states = states[roots[0]["spanId"]]
    assert "COMPLETE" in root_states and "FAIL" not in root_states


def dataset_keys(pipeline: Pipeline, prefixed: bool) -> dict[str, str]:
    """unique_id -> the Dagster asset key floe gives each model, seed and snapshot."""
    keys = {}
    for unique_id, props in pipeline.nodes("model", "seed", "snapshot").items():
        path = [props["name"]]
        schema = props.get("config", {}).get("schema")
        if schema:
            path.insert(0, schema)
        if prefixed:
            path.insert(0, props["package_name"])
        keys[unique_id] = "/".join(path)
    return keys


def test_shop_example_runs_end_to_end(shop: Pipeline) -> None:
    assert_pipeline(shop, dataset_keys(shop, prefixed=False))


def test_two_dbt_projects_run_end_to_end_on_one_trace(two_projects: Pipeline) -> None:
    assert set(two_projects.manifests) == {"shop", "marketing"}
    keys = dataset_keys(two_projects, prefixed=True)
    # Both projects have a model named `customers`: their asset keys differ by project.
    assert keys["model.shop.customers"] == "shop/customers"
    assert keys["model.marketing.customers"] == "marketing/customers"
    assert_pipeline(two_projects, keys)


def test_each_project_has_its_own_profile_group_and_step(two_projects: Pipeline) -> None:
    profiles = (two_projects.floe_dir / "profiles" / "profiles.yml").read_text()
    assert "\nshop:\n" in f"\n{profiles}" and "\nmarketing:\n" in profiles

    from floe_core.artifacts import load_artifacts
    from floe_dagster.assets import build_definitions

    artifacts = load_artifacts(two_projects.floe_dir / "compiled_artifacts.json")
    defs = build_definitions(artifacts)
    repo = defs.get_repository_def()
    groups: dict[str, set[str]] = {}
    ops: dict[str, str] = {}
    for key, assets_def in repo.assets_defs_by_key.items():
        if not assets_def.is_executable:
            continue
        groups.setdefault(key.path[0], set()).add(assets_def.group_names_by_key[key])
        ops[key.to_user_string()] = assets_def.node_def.name
    assert groups == {"shop": {"shop"}, "marketing": {"marketing"}}
    assert ops["shop/customers"] == "shop_dbt"
    assert ops["marketing/customers"] == "marketing_dbt"
    # marketing's source is the shop's model: one asset, so Dagster runs marketing after it.
    marketing = repo.assets_defs_by_key[_key("marketing", "customers")]
    assert _key("shop", "customers") in marketing.dependency_keys


def _key(*path: str) -> Any:
    from dagster import AssetKey

    return AssetKey(list(path))
