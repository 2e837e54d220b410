"""The run page from hand-built events: the model (graph, outcomes, columns, classifications,
checks, spans), finding the run on disk, the HTML it writes, and the page in real headless
Chromium: column selection, offline, no request leaving the file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.browser import chromium_path, open_browser
from support.environment import REPO_ROOT, need
from support.runpage import (
    AFTER,
    BROKEN,
    CUSTOMERS,
    ERROR,
    EVENTS,
    ORDERS,
    RAW,
    RUN_ID,
    SLOW,
    STG,
    TRACE_ID,
    lineage_events,
    otlp_spans,
    write_run_files,
)

from floe_cli.runpage import RunFiles, RunNotFound, build_run, read_run, render_page
from floe_cli.runpage.model import RunModel, SpanRow
from floe_cli.runpage.read import span_from_otlp

ARTIFACTS = Path(os.environ.get("FLOE_TEST_ARTIFACTS") or REPO_ROOT / ".test-artifacts")


def model() -> RunModel:
    spans = [s for s in (span_from_otlp(raw) for raw in otlp_spans()) if s is not None]
    return build_run(RUN_ID, lineage_events(), spans)


def by_name(run: RunModel) -> dict[str, Any]:
    return {d.name: d for d in run.datasets}


# --- the model ---------------------------------------------------------------------------------


def test_every_dataset_read_or_written_is_a_node_and_edges_are_inputs_times_outputs() -> None:
    run = model()
    events = lineage_events()
    expected_nodes = {
        (d["namespace"], d["name"]) for e in events for d in e["inputs"] + e["outputs"]
    }
    assert {(d.namespace, d.name) for d in run.datasets} == expected_nodes
    expected_edges = {
        (i["name"], o["name"]) for e in events for i in e["inputs"] for o in e["outputs"]
    }
    names = [d.name for d in run.datasets]
    assert {(names[e.source], names[e.target]) for e in run.edges} == expected_edges
    assert len(run.edges) == len(expected_edges)  # each edge once


def test_outcomes_errors_kinds_and_groups() -> None:
    datasets = by_name(model())
    assert {n: d.outcome for n, d in datasets.items()} == {
        RAW: "ok",
        STG: "ok",
        ORDERS: "ok",
        CUSTOMERS: "ok",
        BROKEN: "failed",
        AFTER: "skipped",  # ABORT without a START: dbt skipped it
        SLOW: "unfinished",  # ABORT after a START: the invocation ended while it ran
        EVENTS: "input",
    }
    assert datasets[BROKEN].error == ERROR
    assert datasets[CUSTOMERS].error is None
    assert datasets[RAW].kind == "seed" and datasets[EVENTS].kind == "input"
    assert datasets[STG].group == "staging" and datasets[CUSTOMERS].group == "marts"
    assert datasets[RAW].group == "seeds"  # no folder under seeds/: the resource type
    assert datasets[STG].schema == "shop.main" and datasets[STG].label == "stg_customers"
    assert datasets[CUSTOMERS].span_id == f"{4:016x}"


def test_columns_types_and_classifications_with_their_origin() -> None:
    datasets = by_name(model())
    stg = {c.name: c for c in datasets[STG].columns}
    assert [c.name for c in datasets[STG].columns] == ["customer_id", "email", "email_hash"]
    assert stg["email"].type == "VARCHAR"
    raw = datasets[RAW]
    raw_index = model().datasets.index(raw)
    [inherited] = stg["email"].classifications
    assert (inherited.name, inherited.origin) == ("pii", "inherited")
    assert [(s.dataset, s.field) for s in inherited.sources] == [(raw_index, "email")]
    [masked] = stg["email_hash"].classifications
    assert (masked.name, masked.origin) == ("pii", "masked")
    assert stg["customer_id"].classifications == []
    [declared] = {c.name: c for c in raw.columns}["email"].classifications
    assert declared.origin == "declared"
    # Only the tags facet says so (no floe_classifications facet there): still inherited.
    customers = {c.name: c for c in datasets[CUSTOMERS].columns}
    assert [(c.name, c.origin) for c in customers["email"].classifications] == [
        ("pii", "inherited")
    ]


def test_column_lineage_edges_with_transformations_and_dataset_dependencies() -> None:
    run = model()
    names = [d.name for d in run.datasets]
    edges = {
        (names[e.source], e.source_field, names[e.target], e.target_field): e
        for e in run.column_edges
    }
    assert set(edges) == {
        (RAW, "id", STG, "customer_id"),
        (RAW, "email", STG, "email"),
        (RAW, "email", STG, "email_hash"),
        (STG, "customer_id", CUSTOMERS, "customer_id"),
        (STG, "email", CUSTOMERS, "email"),
        (ORDERS, "order_id", CUSTOMERS, "orders"),
    }
    hashed = edges[(RAW, "email", STG, "email_hash")].transformations[0]
    assert (hashed.type, hashed.subtype, hashed.masking) == ("DIRECT", "TRANSFORMATION", True)
    aggregate = edges[(ORDERS, "order_id", CUSTOMERS, "orders")].transformations[0]
    assert aggregate.subtype == "AGGREGATION" and not aggregate.masking
    [join] = by_name(run)[CUSTOMERS].depends_on
    assert (names[join.dataset], join.field) == (ORDERS, "customer_id")


def test_checks_summary_and_run_facts() -> None:
    run = model()
    datasets = by_name(run)
    [passed] = datasets[CUSTOMERS].checks
    assert (passed.name, passed.status, passed.column) == ("unique", "passed", "customer_id")
    [failed] = datasets[ORDERS].checks
    assert failed.status == "failed" and "Got 2 results" in (failed.message or "")
    s = run.summary
    assert s.assets == {"failed": 1, "ok": 4, "skipped": 1, "unfinished": 1}
    assert (s.checks_passed, s.checks_failed) == (1, 1)
    # 22 lines, one a duplicate delivery of the same (runId, eventType): counted once.
    assert len(lineage_events()) == 22 and s.lineage_events == 21
    assert s.spans == 9 and s.span_errors == 1
    assert (run.run_id, run.trace_id, run.job_name) == (RUN_ID, TRACE_ID, "__ASSET_JOB")
    assert run.outcome == "failed" and run.error == ERROR
    assert run.invocations == ["5ba46fd9-8673-42e4-aaee-5e52b08a036c"]
    assert run.duration_s == pytest.approx(8.0)


def test_spans_in_waterfall_order_with_depth_and_no_duplicates() -> None:
    raw = otlp_spans()
    spans = [s for s in (span_from_otlp(r) for r in [*raw, raw[3]]) if s is not None]
    run = build_run(RUN_ID, [], spans)
    assert [(s.name, s.depth) for s in run.spans[:3]] == [
        ("RUN __ASSET_JOB", 0),
        ("dbt build", 1),
        ("seed.shop.raw_customers", 2),
    ]
    assert len(run.spans) == len(raw)  # the duplicate delivery shows once
    starts = [s.start_ns for s in run.spans if s.depth == 2]
    assert starts == sorted(starts)
    broken = next(s for s in run.spans if s.name == "model.shop.broken")
    assert broken.status == "error" and broken.message == ERROR
    assert broken.events[0].attributes["exception.message"] == ERROR
    assert build_run(RUN_ID, lineage_events()).duration_s == 8.0  # no spans: lineage's times
    # Lineage off: the run's facts come from the root span.
    assert run.job_name == "RUN __ASSET_JOB" and run.outcome == "succeeded"


def test_a_span_whose_parent_is_missing_is_a_root() -> None:
    orphan = SpanRow(
        span_id="aa", parent_id="ff", depth=0, name="x", start_ns=1, end_ns=2, status="ok"
    )
    assert [s.depth for s in build_run(RUN_ID, [], [orphan]).spans] == [0]


# --- finding the run on disk -------------------------------------------------------------------


def _other_run(floe_dir: Path) -> str:
    """A second, later run appended to both files, as a second `floe run` would."""
    other = "0190a6f2-0000-7000-8000-000000000001"
    lineage = floe_dir / "lineage" / "openlineage.ndjson"
    text = lineage.read_text().replace(RUN_ID, other).replace("2026-12-01", "2026-12-02")
    with lineage.open("a") as f:
        f.write(text)
        f.write('{"eventType": "START", "run": {"runId": "torn')  # a line still being written
    return other


def test_read_run_picks_the_latest_run_or_the_one_asked_for(tmp_path: Path) -> None:
    lineage, traces = write_run_files(tmp_path)
    other = _other_run(tmp_path)
    files = RunFiles(lineage=lineage, traces=traces)
    latest = read_run(files)
    assert latest.run_id == other and latest.spans == []  # that run has no spans
    assert len(latest.events) == len(lineage_events())
    asked = read_run(files, RUN_ID.upper())
    assert asked.run_id == RUN_ID and asked.trace_id == TRACE_ID
    assert len(asked.spans) == len(otlp_spans()) and len(asked.events) == len(lineage_events())
    assert read_run(files, TRACE_ID[:12]).run_id == RUN_ID  # a unique prefix, dashes or not
    with pytest.raises(RunNotFound, match="ambiguous"):
        read_run(files, "0190a6f2")
    with pytest.raises(RunNotFound, match="no run 'feedface'.*latest runs there: " + other):
        read_run(files, "feedface")


def test_a_spool_segment_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.ndjson"
    outside.write_text("{}\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "20260101T000000.000000001-events-1-aaaaaa.ndjson").symlink_to(outside)
    lineage, traces = write_run_files(tmp_path)
    found = read_run(RunFiles(lineage=lineage, traces=traces, spool=spool, cwd=tmp_path))
    assert found.run_id == RUN_ID
    assert found.notes == [
        f"{spool}/20260101T000000.000000001-events-1-aaaaaa.ndjson is a symbolic link: not read"
    ]
    assert found.sources == ["lineage/openlineage.ndjson", "traces/otlp-traces.jsonl"]
    page = render_page(build_run(found.run_id, found.events, notes=found.notes))
    assert '<ul class="notes" id="notes"><li>' in page and "symbolic link: not read" in page


def test_read_run_says_what_is_missing(tmp_path: Path) -> None:
    files = RunFiles(lineage=tmp_path / "nope.ndjson", traces=tmp_path / "nope.jsonl")
    with pytest.raises(RunNotFound, match=r"nope\.ndjson.*do not exist.*floe run"):
        read_run(files)
    (tmp_path / "empty.ndjson").write_text("")
    with pytest.raises(RunNotFound, match="no run in"):
        read_run(RunFiles(lineage=tmp_path / "empty.ndjson", traces=None))


def test_read_run_translates_the_spool_through_the_sidecar(
    tmp_path: Path, example_dir: Path
) -> None:
    """Undelivered floe events in the spool appear on the page as the sidecar translates them."""
    from support.data import shop_events

    from floe_core.events import encode_event
    from floe_dbt.compile import compile_floe
    from floe_sidecar.sinks.openlineage import translate_event
    from floe_sidecar.sinks.otel.translate import SpanTranslator

    compile_floe(example_dir / "floe.yaml", output_dir=example_dir / ".floe")
    events = shop_events(fail_model="stg_payments")
    spool = example_dir / ".floe" / "spool"
    spool.mkdir()
    (spool / "20260101T000000.000000001-events-1-aaaaaa.ndjson").write_bytes(
        b"".join(encode_event(e) + b"\n" for e in events)
    )
    found = read_run(
        RunFiles(
            lineage=example_dir / ".floe" / "lineage" / "openlineage.ndjson",  # not there yet
            traces=None,
            spool=spool,
            artifacts=example_dir / ".floe" / "compiled_artifacts.json",
            cwd=example_dir,
        )
    )
    assert found.notes == []
    expected = [item for e in events for item in translate_event(e)]
    assert found.run_id == events[0].invocation.run.run_id  # type: ignore[union-attr]
    assert sorted(json.dumps(e, sort_keys=True) for e in found.events) == sorted(
        json.dumps(e, sort_keys=True) for e in expected
    )
    translator = SpanTranslator({})
    spans = {r.span_id for e in events for r in translator.translate(e)}
    assert {s.span_id for s in found.spans} == spans and spans
    assert found.sources[-1] == ".floe/spool (1 undelivered spool segments)"
    run = build_run(found.run_id, found.events, found.spans)
    assert {d.outcome for d in run.datasets} >= {"ok", "failed", "skipped"}


# --- the HTML ----------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_its_csp_allows_only_its_own_script_and_style() -> None:
    html = render_page(model())
    assert html.startswith("<!DOCTYPE html>")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp, html[:500]
    policy = csp.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"'sha256-{digest(scripts[0])}'" in policy
    assert f"'sha256-{digest(styles[0])}'" in policy
    # Nothing is loaded from anywhere: no src, href or url() pointing outside the file.
    assert not re.search(r'\s(src|href)="', html)
    assert "url(" not in styles[0] and "@import" not in styles[0]
    assert "http://" not in scripts[0] and "https://" not in scripts[0]


def test_data_that_looks_like_markup_stays_data() -> None:
    hostile = "x</script><script>alert(1)</script><!--"
    events = lineage_events()
    events[3]["outputs"][0]["facets"]["schema"]["fields"][0]["name"] = hostile
    failed = next(e for e in events if e["eventType"] == "FAIL" and e["job"]["name"] == "broken")
    failed["run"]["facets"]["errorMessage"]["message"] = hostile
    html = render_page(build_run(RUN_ID, events))
    data = re.search(r'<script type="application/json" id="floe-run">(.*?)</script>', html, re.S)
    assert data is not None
    assert "<" not in data.group(1) and ">" not in data.group(1)
    assert html.count("<script") == 2  # the data block and the page's own script
    decoded = json.loads(data.group(1))
    assert hostile in json.dumps(decoded, ensure_ascii=False)


def test_floe_show_html_writes_the_page_owner_only(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "floe.yaml").write_text("name: shop\n")
    write_run_files(project / ".floe")
    result = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "--html", "--run", RUN_ID[:8]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = project / ".floe" / "html" / f"run-{RUN_ID}.html"
    assert f"is at .floe/html/run-{RUN_ID}.html" in result.stdout
    assert page.stat().st_mode & 0o777 == 0o600
    assert RUN_ID in page.read_text()
    out = tmp_path / "elsewhere" / "page.html"
    again = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "--html", "-o", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and out.is_file(), again.stderr
    wrong = subprocess.run(
        [sys.executable, "-m", "floe_cli", "show", "--html", "--run", "feedface"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 2 and "no run 'feedface'" in wrong.stderr


# --- in the browser ----------------------------------------------------------------------------

# Installed before the page's own script runs: records what the Content-Security-Policy blocked.
RECORD_VIOLATIONS = (
    "window.__violations = [];"
    " document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.blockedURI + ' ' + e.violatedDirective));"
)


@pytest.fixture
def chromium() -> str:
    found = chromium_path()
    need(
        found is not None,
        "Debian's chromium (apt-get install chromium); scripts/ensure-system-libs.sh installs it",
    )
    assert found is not None
    return found


def test_selecting_a_classified_column_highlights_its_lineage_offline(
    tmp_path: Path, chromium: str
) -> None:
    page = tmp_path / "run.html"
    page.write_text(render_page(model()))
    with open_browser(chromium) as browser:
        browser.offline()
        browser.before_load(RECORD_VIOLATIONS)
        browser.open(page.as_uri())
        browser.wait_for("document.documentElement.dataset.floeReady")
        nodes = browser.evaluate(
            "[...document.querySelectorAll('#viewport .node')].map(n => n.dataset.name)"
        )
        assert sorted(nodes) == sorted(d.name for d in model().datasets)
        # The run failed: the page opens on the failing dataset, with dbt's error.
        assert browser.evaluate("document.getElementById('dataset-error').textContent") == ERROR

        browser.click(f'.node[data-name="{RAW}"] .col[data-col="email"]')
        browser.wait_for("document.querySelector('.col.c-sel')")
        marked = browser.evaluate(
            "[...document.querySelectorAll('.col.c-sel, .col.c-up, .col.c-down')].map(c =>"
            " [c.closest('.node').dataset.name, c.dataset.col, c.getAttribute('class')])"
        )
        assert sorted(marked) == sorted(
            [
                [RAW, "email", "col c-sel"],
                [STG, "email", "col c-down"],
                [STG, "email_hash", "col c-down"],
                [CUSTOMERS, "email", "col c-down"],
            ]
        )
        details = browser.evaluate("document.getElementById('details').innerText")
        assert "downstream (3)" in details and "upstream (0)" in details
        assert "DIRECT/TRANSFORMATION masked" in details and "DIRECT/IDENTITY" in details
        assert "pii · inherited" in details and "pii · masked" in details
        column_edges = browser.evaluate(
            "[...document.querySelectorAll('path.cedge')].map(p => p.dataset.target)"
        )
        assert sorted(column_edges) == sorted(
            [f"{STG}.email", f"{STG}.email_hash", f"{CUSTOMERS}.email"]
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(ARTIFACTS / "run-page-columns.png")

        # Upstream from the mart: where its inherited pii comes from.
        browser.click(f'.node[data-name="{CUSTOMERS}"] .col[data-col="email"]')
        browser.wait_for("document.getElementById('details').innerText.includes('upstream (2)')")
        up = browser.evaluate(
            "[...document.querySelectorAll('.col.c-up')].map(c =>"
            " c.closest('.node').dataset.name + '.' + c.dataset.col)"
        )
        assert sorted(up) == sorted([f"{RAW}.email", f"{STG}.email"])

        # Search by name, then the waterfall: every span, attributes on selection.
        browser.type_text("#search", "stg_")
        browser.wait_for("document.getElementById('search-count').textContent === '2 matches'")
        rows = browser.evaluate(
            "[...document.querySelectorAll('.wf .row')].map(r => r.dataset.spanId)"
        )
        assert sorted(rows) == sorted(s["spanId"] for s in otlp_spans())
        browser.click(f'.wf .row[data-span-id="{5:016x}"]')
        attributes = browser.evaluate("document.getElementById('span-attributes').innerText")
        assert "code.file.path" in attributes and "models/marts/broken.sql" in attributes

        assert browser.console_errors() == []
        assert browser.evaluate("window.__violations") == []
        assert browser.requests() == [page.as_uri()]


def test_collapsing_by_schema_and_group(tmp_path: Path, chromium: str) -> None:
    page = tmp_path / "run.html"
    page.write_text(render_page(model()))
    with open_browser(chromium) as browser:
        browser.offline()
        browser.open(page.as_uri())
        browser.wait_for("document.documentElement.dataset.floeReady")
        browser.evaluate(
            "(() => { const s = document.getElementById('collapse'); s.value = 'schema';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        groups = browser.evaluate(
            "[...document.querySelectorAll('.node.group')].map(n => n.dataset.group)"
        )
        assert sorted(groups) == ["shop.main", "shop.main_raw", "shop.main_web"]
        browser.click('.node.group[data-group="shop.main_raw"]')
        browser.wait_for(f"document.querySelector('.node[data-name=\"{RAW}\"]')")
        browser.evaluate(
            "(() => { const s = document.getElementById('collapse'); s.value = 'group';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        groups = browser.evaluate(
            "[...document.querySelectorAll('.node.group')].map(n => n.dataset.group)"
        )
        # after_broken and slow have no span to say their folder: the resource type it is.
        assert sorted(groups) == ["inputs", "marts", "models", "seeds", "staging"]
        assert (
            browser.evaluate("document.querySelectorAll('#viewport .node:not(.group)').length") == 0
        )
        assert browser.console_errors() == []


def test_the_text_views_read_the_same_files(tmp_path: Path) -> None:
    """`floe show lineage|traces` share the page's readers (root run, OTLP/JSON spans)."""
    import io

    from floe_cli.show import show_lineage, show_traces

    lineage, traces = write_run_files(tmp_path)
    out = io.StringIO()
    show_lineage(lineage, None, out)
    text = out.getvalue()
    assert text.startswith(f"lineage of Dagster run {RUN_ID}")
    assert "FAIL      broken" in text and "error:  Runtime Error in model broken" in text
    assert "ABORT     after_broken" in text
    out = io.StringIO()
    show_traces(traces, RUN_ID, out)
    text = out.getvalue()
    assert text.startswith(
        f"trace {TRACE_ID} (Dagster run {RUN_ID}): 9 spans, 8.00s, 1 with errors"
    )
    assert "    model.shop.broken" in text and "ERROR Runtime Error in model broken" in text


def test_a_run_with_spans_only_still_has_its_waterfall(tmp_path: Path, chromium: str) -> None:
    spans = [s for s in (span_from_otlp(raw) for raw in otlp_spans()) if s is not None]
    page = tmp_path / "run.html"
    page.write_text(render_page(build_run(RUN_ID, [], spans)))
    with open_browser(chromium) as browser:
        browser.offline()
        browser.open(page.as_uri())
        browser.wait_for("document.documentElement.dataset.floeReady")
        assert "No lineage events for this run" in browser.evaluate(
            "document.getElementById('graph').textContent"
        )
        assert browser.evaluate("document.querySelectorAll('.wf .row.s-error').length") == 1
        assert browser.evaluate("document.querySelectorAll('.wf .row').length") == len(spans)
        assert browser.console_errors() == []


def test_the_sidecars_own_column_facets_on_the_page(tmp_path: Path, chromium: str) -> None:
    """Events carrying examples/shop's column lineage (issue 12's contract), translated by the
    sidecar itself: selecting a declared pii column lights up exactly what its facets reach."""
    from support.data import truth_events
    from support.runpage import column_downstream
    from test_openlineage_columns import translated

    lineage = translated(truth_events())
    run = build_run(lineage[0]["run"]["runId"], lineage)
    assert run.column_edges
    start = ("shop.main_raw.raw_customers", "email")
    expected = column_downstream(lineage, start)
    assert ("shop.main.customers", "email") in expected
    page = tmp_path / "run.html"
    page.write_text(render_page(run))
    with open_browser(chromium) as browser:
        browser.offline()
        browser.open(page.as_uri())
        browser.wait_for("document.documentElement.dataset.floeReady")
        browser.click(f'.node[data-name="{start[0]}"] .col[data-col="{start[1]}"]')
        browser.wait_for("document.querySelector('.col.c-sel')")
        down = browser.evaluate(
            "[...document.querySelectorAll('.col.c-down')].map(c =>"
            " [c.closest('.node').dataset.name, c.dataset.col])"
        )
        assert {(a, b) for a, b in down} == expected
        details = browser.evaluate("document.getElementById('details').innerText")
        assert "pii · inherited" in details and "DIRECT/IDENTITY" in details
        assert browser.console_errors() == []
