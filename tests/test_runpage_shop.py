"""The run page of a real run: `floe run --html` of examples/shop with a failing model (real dbt on
DuckDB through Dagster, a real sidecar), opened in real headless Chromium with the network off.

What the page shows is checked against the files the sidecar wrote, read here independently:
every dataset of the run is a node, the edges are exactly the lineage events' inputs x outputs,
the failing model is marked failed with dbt's error text, the skipped one skipped, and the
waterfall lists every span. Column lineage: the models' events carry the ``columnLineage`` facet,
and selecting the seed's pii column must highlight exactly the columns its facets lead to,
downstream. A screenshot of the page is saved (see ``ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.adapter import add_broken_model, copy_example
from support.browser import chromium_path, open_browser
from support.environment import REPO_ROOT, need
from support.runpage import column_downstream

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 420
ARTIFACTS = Path(os.environ.get("FLOE_TEST_ARTIFACTS") or REPO_ROOT / ".test-artifacts")
_OBSERVABILITY_ENV = ("FLOE_", "OPENLINEAGE", "OTEL_", "DAGSTER_HOME")
RECORD_VIOLATIONS = (
    "window.__violations = [];"
    " document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.blockedURI + ' ' + e.violatedDirective));"
)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_OBSERVABILITY_ENV)}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _root(event: dict[str, Any]) -> str:
    parent = event["run"].get("facets", {}).get("parent") or {}
    return str((parent.get("root") or {}).get("run", {}).get("runId") or event["run"]["runId"])


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(project, run id, page path) of a real failing `floe run --html`."""
    project = copy_example(tmp_path_factory.mktemp("runpage") / "shop")
    add_broken_model(project)
    result = subprocess.run(
        [sys.executable, "-m", "floe_cli", "run", "--html"],
        cwd=project,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the pipeline failed: that is the run's outcome
    run_id = re.search(r"Dagster run ([0-9a-f-]{36})", output)
    page = re.search(r"floe run: the page of run (\S+) .* is at (\S+)", output)
    assert run_id and page, output
    assert page.group(1) == run_id.group(1)
    return project, run_id.group(1), page.group(2)


def test_the_page_of_a_real_failing_run_in_chromium(shop_run: tuple[Path, str, str]) -> None:
    chromium = chromium_path()
    need(
        chromium is not None,
        "Debian's chromium (apt-get install chromium); scripts/ensure-system-libs.sh installs it",
    )
    assert chromium is not None
    project, run_id, shown = shop_run
    page = project / shown
    assert page == project / ".floe" / "html" / f"run-{run_id}.html"
    assert page.stat().st_mode & 0o777 == 0o600

    # The truth, from the files the sidecar wrote.
    events = [
        e
        for e in _json_lines(project / ".floe" / "lineage" / "openlineage.ndjson")
        if _root(e) == run_id
    ]
    datasets = {(d["namespace"], d["name"]) for e in events for d in e["inputs"] + e["outputs"]}
    edges = {(i["name"], o["name"]) for e in events for i in e["inputs"] for o in e["outputs"]}
    trace = run_id.replace("-", "")
    spans = {
        s["spanId"]
        for request in _json_lines(project / ".floe" / "traces" / "otlp-traces.jsonl")
        for resource in request["resourceSpans"]
        for scope in resource["scopeSpans"]
        for s in scope["spans"]
        if s["traceId"] == trace
    }
    failed = next(
        e
        for e in events
        if e["eventType"] == "FAIL" and e["job"]["name"].endswith("broken.build.run")
    )
    dbt_error = failed["run"]["facets"]["errorMessage"]["message"]
    assert "no_such_column" in dbt_error
    assert len(datasets) >= 12 and len(spans) >= 25

    with open_browser(chromium) as browser:
        browser.offline()
        browser.before_load(RECORD_VIOLATIONS)
        browser.open(page.as_uri())
        browser.wait_for("document.documentElement.dataset.floeReady")
        nodes = browser.evaluate(
            "[...document.querySelectorAll('#viewport .node')].map(n =>"
            " [n.dataset.namespace, n.dataset.name, n.dataset.outcome])"
        )
        assert {(ns, name) for ns, name, _ in nodes} == datasets
        assert len(nodes) == len(datasets)
        outcomes = {name: outcome for _, name, outcome in nodes}
        assert outcomes["shop.main.broken"] == "failed"
        assert outcomes["shop.main.after_broken"] == "skipped"
        assert outcomes["shop.main.customers"] == "ok"
        assert outcomes["shop.main_web.events"] == "input"
        drawn = browser.evaluate(
            "[...document.querySelectorAll('#viewport path.edge')].map(p =>"
            " [p.dataset.source, p.dataset.target])"
        )
        assert {(a, b) for a, b in drawn} == edges and len(drawn) == len(edges)

        # The failing model: dbt's error on hover (the node's title) and in the details.
        title = browser.evaluate(
            "document.querySelector('.node[data-name=\"shop.main.broken\"] title').textContent"
        )
        assert dbt_error in title
        assert browser.evaluate("document.getElementById('dataset-error').textContent") == dbt_error
        assert browser.evaluate("document.getElementById('run-outcome').textContent") == "failed"

        rows = browser.evaluate(
            "[...document.querySelectorAll('.wf .row')].map(r => r.dataset.spanId)"
        )
        assert set(rows) == spans and len(rows) == len(spans)
        summary = browser.evaluate("document.getElementById('summary').innerText")
        assert f"{len(spans)}\n" in summary

        # Column lineage: every model of the run carries it; selecting the declared pii column
        # of the seed highlights exactly the columns its facets lead to, downstream.
        with_lineage = {
            o["name"]
            for e in events
            for o in e["outputs"]
            if (o.get("facets") or {}).get("columnLineage")
        }
        assert {"shop.main.stg_customers", "shop.main.customers"} <= with_lineage
        start = ("shop.main_raw.raw_customers", "email")
        expected = column_downstream(events, start)
        assert {("shop.main.stg_customers", "email"), ("shop.main.customers", "email")} <= expected
        browser.click(f'.node[data-name="{start[0]}"] .col[data-col="{start[1]}"]')
        browser.wait_for("document.querySelector('.col.c-sel')")
        down = browser.evaluate(
            "[...document.querySelectorAll('.col.c-down')].map(c =>"
            " [c.closest('.node').dataset.name, c.dataset.col])"
        )
        assert {(a, b) for a, b in down} == expected
        details = browser.evaluate("document.getElementById('details').innerText")
        assert "DIRECT/IDENTITY" in details and "pii \u00b7 inherited" in details

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "run-page.png"
        browser.screenshot(shot)
        assert shot.stat().st_size > 20_000
        assert browser.console_errors() == []
        assert browser.evaluate("window.__violations") == []
        assert browser.requests() == [page.as_uri()]
