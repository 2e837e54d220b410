"""Column lineage: floe's engine beside openlineage-sql as dbt-ol calls it, on the corpus, and
floe's CPU time for a generated 1,000-model project.

Quality: every case of ``tests/support/column_lineage_corpus.py`` (hand-written truth). An *edge* is
(output column, input relation, input column) of the per-column lineage; precision and recall
count edges against the truth. floe is called as the adapter calls it (the target's dialect and
the upstream schemas); openlineage-sql as dbt-ol 1.54 calls it (``parse([sql])``: no dialect, no
schema). floe's typed edges (the transformation type too) are scored on their own, since dbt-ol
emits no types.

Speed: a 1,000-model project shaped like dbt projects are (staging ``select`` renames over
sources, intermediate CTE chains over ``select *``, marts joining and aggregating), each model's
lineage computed as the adapter does (one ``column_lineage`` call per model, its upstreams'
columns known); the same SQL parsed by openlineage-sql, alternating, CPU time from
``time.process_time``.

    .venv/bin/python bench/column_lineage_bench.py [--models 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.column_lineage_corpus import CASES, Case, actual_edges, expected_edges  # noqa: E402

from floe_core.column_lineage import column_lineage  # noqa: E402
from floe_core.events import Column, Relation  # noqa: E402


def truth_edges(case: Case) -> set[tuple[str, str, str]]:
    fields, _ = expected_edges(case)
    return {(o, t, c) for o, t, c, _ in fields}


def floe_edges(case: Case) -> tuple[set[tuple[str, str, str]], set[Any]]:
    from support.column_lineage_corpus import run_case

    fields, _ = actual_edges(run_case(case))
    return {(o, t, c) for o, t, c, _ in fields}, fields


def dbt_ol_edges(case: Case) -> set[tuple[str, str, str]]:
    from openlineage_sql import parse

    tables = {name.casefold(): name.split(".")[-1].casefold() for name in case.tables}
    try:
        parsed = parse([case.sql])
    except Exception:
        return set()
    out = set()
    for item in parsed.column_lineage if parsed else ():
        for meta in item.lineage:
            if meta.origin is None:
                continue
            origin = meta.origin
            dotted = ".".join(p for p in (origin.database, origin.schema, origin.name) if p)
            # dbt-ol names the dataset exactly so; a CTE or an unqualified alias matches nothing.
            table = tables.get(dotted.casefold().replace("`", "").replace('"', ""), dotted)
            out.add((item.descendant.name.casefold(), table, meta.name.casefold()))
    return out


def score(found: set[Any], truth: set[Any]) -> tuple[int, int, int]:
    return len(found & truth), len(found - truth), len(truth - found)


def ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def quality() -> list[str]:
    totals = {"floe": [0, 0, 0], "dbt-ol": [0, 0, 0], "floe typed": [0, 0, 0]}
    rows = []
    for case in CASES:
        truth = truth_edges(case)
        ours, typed = floe_edges(case)
        typed_truth = expected_edges(case)[0]
        theirs = dbt_ol_edges(case)
        for key, found, want in (
            ("floe", ours, truth),
            ("dbt-ol", theirs, truth),
            ("floe typed", typed, typed_truth),
        ):
            tp, fp, fn = score(found, want)
            totals[key][0] += tp
            totals[key][1] += fp
            totals[key][2] += fn
        rows.append(
            f"| {case.name} | {case.dialect} | {len(truth)} | "
            f"{score(ours, truth)[0]}/{len(ours)} | {score(theirs, truth)[0]}/{len(theirs)} |"
        )
    lines = [
        f"Corpus: {len(CASES)} cases, {sum(len(truth_edges(c)) for c in CASES)} edges.",
        "",
        "| | precision | recall |",
        "|---|---|---|",
    ]
    for key, (tp, fp, fn) in totals.items():
        lines.append(f"| {key} | {ratio(tp, tp + fp):.3f} | {ratio(tp, tp + fn):.3f} |")
    lines += ["", "| case | dialect | true edges | floe right/found | dbt-ol right/found |"]
    lines += ["|---|---|---|---|---|", *rows]
    return lines


def project(models: int) -> list[tuple[str, dict[Relation, tuple[Column, ...]], Relation]]:
    """(compiled SQL, upstream columns, own relation) per model, in build order."""
    out = []
    known: dict[Relation, tuple[Column, ...]] = {}

    def rel(name: str) -> Relation:
        return Relation(database="warehouse", schema="analytics", identifier=name)

    width = 12
    for i in range(models):
        kind = i % 4
        me = rel(f"m{i}")
        if kind == 0 or i < 4:  # staging: rename and cast a source
            source = Relation(database="warehouse", schema="raw", identifier=f"src{i}")
            known[source] = tuple(Column(name=f"c{j}") for j in range(width))
            sql = (
                "select "
                + ", ".join(
                    f"cast(c{j} as varchar) as col{j}" if j % 3 else f"c{j} as col{j}"
                    for j in range(width)
                )
                + f' from "warehouse"."raw"."src{i}"'
            )
            upstream = {source: known[source]}
        elif kind == 1:  # intermediate: CTE chain over select *
            parent = rel(f"m{i - 1}")
            sql = (
                f'with source as (select * from "warehouse"."analytics"."m{i - 1}"), '
                "renamed as (select *, col1 || col2 as combined from source "
                "where col0 is not null) select * from renamed"
            )
            upstream = {parent: known[parent]}
        elif kind == 2:  # mart: join and aggregate
            a, b = rel(f"m{i - 1}"), rel(f"m{i - 2}")
            sql = (
                f'with a as (select * from "warehouse"."analytics"."m{i - 1}"), '
                f'b as (select * from "warehouse"."analytics"."m{i - 2}") '
                "select a.col0, count(*) as n, sum(b.col3) as total, max(a.col5) as latest, "
                "case when min(b.col6) > 0 then 'y' else 'n' end as flag "
                "from a left join b on b.col0 = a.col0 group by a.col0"
            )
            upstream = {a: known[a], b: known[b]}
        else:  # window and qualify
            parent = rel(f"m{i - 1}")
            sql = (
                "select *, row_number() over (partition by col0 order by n desc) as rank_in "
                f'from "warehouse"."analytics"."m{i - 1}" '
                "qualify row_number() over (partition by col0 order by n desc) = 1"
            )
            upstream = {parent: known[parent]}
        result = column_lineage(sql, dialect="duckdb", upstream=upstream, default_relation=me)
        assert not result.errors, (i, result.errors)
        known[me] = tuple(Column(name=c.column) for c in result.columns)
        out.append((sql, upstream, me))
    return out


def speed(models: int, repeat: int) -> list[str]:
    from openlineage_sql import parse

    plan = project(models)
    floe_times, ol_times = [], []
    for _ in range(repeat):  # alternate the two sides in one run
        start = time.process_time()
        for sql, upstream, me in plan:
            column_lineage(sql, dialect="duckdb", upstream=upstream, default_relation=me)
        floe_times.append(time.process_time() - start)
        start = time.process_time()
        for sql, _, _ in plan:
            parse([sql])
        ol_times.append(time.process_time() - start)
    floe_s, ol_s = statistics.median(floe_times), statistics.median(ol_times)
    return [
        f"{models} generated models, median of {repeat}, CPU seconds:",
        "",
        "| | CPU s (all models) | ms per model | ratio to openlineage-sql |",
        "|---|---|---|---|",
        f"| floe (sqlglot, dialect + schemas) | {floe_s:.2f} | {1000 * floe_s / models:.2f} | "
        f"{floe_s / ol_s:.1f} |",
        f"| openlineage-sql (as dbt-ol calls it) | {ol_s:.2f} | {1000 * ol_s / models:.2f} | 1.0 |",
    ]


def sidecar(repeat: int) -> list[str]:
    """The sidecar's cost of mapping column facets: node_finished events of the example with and
    without real columns and lineage, decoded and translated, alternating."""
    from support.data import shop_events, truth_events

    from floe_core.events import decode_event, encode_event
    from floe_sidecar.sinks.openlineage import translate_event

    plain = [encode_event(e) for e in shop_events()] * 50
    rich = [encode_event(e) for e in truth_events()] * 50
    times: dict[str, list[float]] = {"plain": [], "columns": []}
    for _ in range(repeat):
        for key, lines in (("plain", plain), ("columns", rich)):
            start = time.process_time()
            for line in lines:
                translate_event(decode_event(line))
            times[key].append((time.process_time() - start) / len(lines))
    plain_us = statistics.median(times["plain"]) * 1e6
    rich_us = statistics.median(times["columns"]) * 1e6
    return [
        "Sidecar, decode + translate per event of the example run (median, CPU):",
        "",
        "| events | µs per event |",
        "|---|---|",
        f"| without columns | {plain_us:.0f} |",
        f"| with real columns, lineage and classifications | {rich_us:.0f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(quality()))
    print()
    print("\n".join(speed(args.models, args.repeat)))
    print()
    print("\n".join(sidecar(args.repeat)))


if __name__ == "__main__":
    main()
