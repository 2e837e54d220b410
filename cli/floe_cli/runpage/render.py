"""The run model as one self-contained HTML file: every byte of script, style and data inline.

The page asks for nothing: its Content-Security-Policy allows no fetch, image, font or frame, and
only the one script and the one style sheet written here (by their SHA-256), so even a dataset
name crafted to look like markup cannot load or run anything. The data goes in as JSON inside a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, and the script puts
every string into the page as text. The header and summary are plain HTML, readable without script.
"""

from __future__ import annotations

import base64
import hashlib
import html
from importlib import resources

import msgspec

from floe_cli.runpage.model import RunModel

__all__ = ["render_page"]

_encoder = msgspec.json.Encoder()
_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def page_data(model: RunModel) -> str:
    """The model as JSON that cannot end the ``<script>`` block it sits in."""
    return _encoder.encode(model).decode("utf-8").translate(_JSON_ESCAPES)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _summary(model: RunModel) -> str:
    s = model.summary
    assets = s.assets
    written = sum(assets.values())
    parts = ", ".join(
        f"{assets[k]} {k}" for k in ("ok", "failed", "skipped", "unfinished") if k in assets
    )
    checks = f"{s.checks_passed} passed, {s.checks_failed} failed"
    if s.checks_other:
        checks += f", {s.checks_other} not run"
    cards = [
        ("assets", f"{written}", parts or "none written"),
        ("checks", f"{s.checks_passed + s.checks_failed + s.checks_other}", checks),
        ("lineage events", f"{s.lineage_events}", f"{s.job_runs} job runs"),
        ("spans", f"{s.spans}", f"{s.span_errors} with errors"),
    ]
    body = "".join(
        f'<div class="card" data-card="{_e(k)}"><div class="k">{_e(k)}</div>'
        f'<div class="v">{_e(v)}</div><div class="d">{_e(d)}</div></div>'
        for k, v, d in cards
    )
    return f'<section id="summary" class="cards">{body}</section>'


def _header(model: RunModel) -> str:
    outcome = model.outcome or "unknown"
    duration = f"{model.duration_s:.2f} s" if model.duration_s is not None else ""
    rows = [
        ("Dagster run id", model.run_id),
        ("trace id", model.trace_id),
        ("job", model.job_name or "?"),
        ("started", model.started_at or "?"),
        ("finished", model.finished_at or "?"),
        ("duration", duration or "?"),
    ]
    if model.invocations:
        rows.append(("dbt invocations", ", ".join(model.invocations)))
    ids = "".join(
        f'<div><dt>{_e(k)}</dt><dd data-field="{_e(k)}">{_e(v)}</dd></div>' for k, v in rows
    )
    error = ""
    if model.error:
        error = f'<pre class="run-error">{_e(model.error)}</pre>'
    if model.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in model.notes)
        error += f'<ul class="notes" id="notes">{items}</ul>'
    return (
        f'<header><h1>floe run <span class="rid">{_e(model.run_id)}</span>'
        f' <span class="badge o-{_e(outcome)}" id="run-outcome">{_e(outcome)}</span></h1>'
        f'<dl class="ids">{ids}</dl>{error}</header>'
    )


def render_page(model: RunModel) -> str:
    """The whole page, ready to write to a file."""
    script = _asset("page.js")
    style = _asset("page.css")
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{_sha256(script)}'; "
        f"style-src 'sha256-{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = f"floe run {model.run_id}"
    sources = "".join(f"<li>{_e(s)}</li>" for s in model.sources)
    footer = f'<footer><p>Built by floe from:</p><ul id="sources">{sources}</ul></footer>'
    if not model.sources:
        footer = ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="floe">'
        f"<title>{_e(title)}</title><style>{style}</style></head><body>"
        f"{_header(model)}{_summary(model)}"
        '<section id="lineage"><h2>Lineage</h2>'
        '<div class="toolbar">'
        '<input id="search" type="search" placeholder="search datasets by name" '
        'autocomplete="off" spellcheck="false">'
        '<span id="search-count"></span>'
        '<label>collapse <select id="collapse"><option value="none">nothing</option>'
        '<option value="group">by group</option><option value="schema">by schema</option>'
        "</select></label>"
        '<label><input id="show-columns" type="checkbox"> columns</label>'
        '<button id="fit" type="button">fit</button>'
        '<span class="legend"><i class="o-ok"></i>ok <i class="o-failed"></i>failed '
        '<i class="o-skipped"></i>skipped <i class="o-unfinished"></i>never finished '
        '<i class="o-input"></i>read only</span>'
        "</div>"
        '<div class="graph-row"><div id="graph-wrap">'
        '<svg id="graph" xmlns="http://www.w3.org/2000/svg"><g id="viewport"></g></svg>'
        '<div id="tooltip" hidden></div></div>'
        '<aside id="details"><p class="hint">Select a dataset to see its columns, checks and '
        "error; select a column to follow it upstream and downstream.</p></aside></div>"
        "</section>"
        '<section id="waterfall"><h2>Spans</h2><div class="graph-row">'
        '<div id="waterfall-wrap"></div>'
        '<aside id="span-details"><p class="hint">Select a span to see its attributes.</p>'
        "</aside></div></section>"
        f"{footer}"
        '<noscript><p class="hint">The graph and the waterfall need JavaScript; the summary '
        "above does not.</p></noscript>"
        f'<script type="application/json" id="floe-run">{page_data(model)}</script>'
        f"<script>{script}</script>"
        "</body></html>\n"
    )
