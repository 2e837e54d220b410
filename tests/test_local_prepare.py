"""What `floe run` / `floe dev` do before Dagster starts, and how they keep the sidecar alive.

`prepare` compiles only when floe.yaml (or the environment) changed and runs `dbt parse` only when
the manifest is missing or older than the project; the supervisor restarts a dying child with
growing delays. Real dbt, real child processes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from floe_cli.children import Backoff, Child, RestartingChild
from floe_cli.prepare import ProjectPaths, prepare


def test_prepare_compiles_and_parses_only_when_something_changed(example_dir: Path) -> None:
    first = prepare(example_dir)
    assert [a.split(" ")[0] for a in first.actions] == ["compiled", "wrote"], first.actions
    paths = ProjectPaths.find(example_dir)
    manifest = Path(first.artifacts.dbt_manifest_path)
    assert manifest.is_file() and paths.artifacts.is_file()
    # The second compile (after the parse) picked up the column classifications.
    assert first.artifacts.column_classifications

    assert prepare(example_dir).actions == ()

    # floe.yaml changed: recompile, keep the manifest.
    config = example_dir / "floe.yaml"
    config.write_text(config.read_text().replace("tenant: example", "tenant: changed"))
    again = prepare(example_dir)
    assert again.actions == ("compiled floe.yaml (floe.yaml changed)",)
    assert again.artifacts.observability.attributes["tenant"] == "changed"

    # Another environment: recompile for it.
    prod = prepare(example_dir, "prod")
    assert prod.artifacts.environment == "prod" and prod.actions[0].startswith("compiled")

    # A new model: parse again, so it shows up as an asset without a manual step.
    model = example_dir / "dbt" / "models" / "marts" / "customer_count.sql"
    model.write_text("select count(*) as n from {{ ref('customers') }}\n")
    future = time.time() + 5
    os.utime(model, (future, future))
    parsed = prepare(example_dir)
    assert any("customer_count.sql changed" in a for a in parsed.actions), parsed.actions
    assert "model.shop.customer_count" in manifest.read_text()


def test_backoff_grows_to_its_cap_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, healthy_after=60.0)
    assert [backoff.delay(ran_for=1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.delay(ran_for=120.0) == 0.5


def test_a_dying_child_is_restarted_until_stopped(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    messages: list[str] = []
    child = RestartingChild(
        Child("flaky", [sys.executable, "-c", script]),
        backoff=Backoff(initial=0.05, maximum=0.2),
        on_event=messages.append,
    )
    child.start()
    deadline = time.monotonic() + 30
    while child.restarts < 3 and time.monotonic() < deadline:
        child.tick()
        time.sleep(0.02)
    child.stop(timeout=5)
    assert child.restarts >= 3
    assert len(starts.read_text()) >= 3
    assert any("flaky exited with code 3; restarting in" in m for m in messages), messages


def test_stop_ends_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = (
        "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    child = Child("stubborn", [sys.executable, "-c", script])
    child.start()
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    code = child.stop(timeout=0.5)
    assert code is not None and code < 0  # killed by a signal
    assert time.monotonic() - started < 10
    assert not child.running()
