"""What `floe run` prints after the run: dropped events reported as lost, not as delivered
(issue 11, finding 13), and no URL with a credential in it (finding 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_cli.delivery import DeliveryWait
from floe_cli.run import _summary
from floe_core.layout import LINEAGE_SINK, TRACES_SINK, ProjectPaths
from floe_core.status import SidecarStatus, SinkStatus
from floe_dagster.progress import RunTally
from floe_dagster.step import events_dropped

SENTINEL = "S3NTINEL-c0de"


def summary(tmp_path: Path, tally: RunTally) -> str:
    lines: list[str] = []
    after = SidecarStatus(
        spool=str(tmp_path / ".floe" / "spool"),
        running=False,
        sinks=(
            SinkStatus(name=LINEAGE_SINK, delivered=12),
            SinkStatus(name=TRACES_SINK, delivered=30),
        ),
    )
    wait = DeliveryWait(status=after, complete=True, reason="delivered", waited_s=0.4)
    paths = ProjectPaths(tmp_path / "floe.yaml")
    _summary(lines.append, paths, "run-1", True, tally, wait, None, after, 1.0)
    return "\n".join(lines)


def test_dropped_events_are_reported_as_lost(tmp_path: Path) -> None:
    tally = RunTally(planned=["a"], materialized=["a"])
    tally.events_dropped, tally.events_drop_reason = events_dropped(
        {
            "floe/events_dropped": "3",  # the last step's count: not added again
            "floe/events_dropped.shop_dbt": "5",
            "floe/events_dropped.marketing_dbt": "3",
            "floe/events_drop_reason": "cannot write the spool: [Errno 28] No space left on device",
        }
    )
    text = summary(tmp_path, tally)
    assert "events: 8 DROPPED" in text
    assert "No space left on device" in text
    assert "lost, not delivered" in text


def test_no_drop_line_when_nothing_dropped(tmp_path: Path) -> None:
    assert "DROPPED" not in summary(tmp_path, RunTally(planned=["a"], materialized=["a"]))


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("OPENLINEAGE_URL", f"https://floe:{SENTINEL}@lineage.example"),
        ("OPENLINEAGE_URL", f"https://lineage.example/api?api_key={SENTINEL}"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", f"https://{SENTINEL}@otlp.example:4318"),
    ],
)
def test_destinations_are_shown_without_credentials(
    variable: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, url)
    text = summary(tmp_path, RunTally())
    assert SENTINEL not in text
    assert "[redacted]" in text
