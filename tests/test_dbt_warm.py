"""The dbt runner started ahead of its command (``floe_dbt.warm``) and its hand-over to dagster-dbt.

A waiting runner must be indistinguishable from the process the step would have started: the
same lines, node by node, and the step's environment and working directory, not those it was
started with. Where it cannot be that process, it is stopped without having run anything, and
the step starts dbt itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging import version
from support.adapter import copy_example, prepare
from test_adapter_dbt_runner import _floe_read, dbt_lines

from floe_dagster import compat
from floe_dbt import warm
from floe_dbt.runner import RELAY_ENV, RUNNER_MODULE

RUNNER = [sys.executable, "-m", RUNNER_MODULE]


@pytest.fixture(autouse=True)
def _no_runner_left() -> Iterator[None]:
    yield
    warm.discard_waiting()


def _sleeper(argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    """A process that stands for a waiting runner where only its hand-over is tested."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    process.args = argv or RUNNER
    return process


def _end(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def test_a_waiting_runner_stands_in_only_for_its_own_start(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "a", "LANG": "C.UTF-8"}
    runner = warm.WaitingRunner(_sleeper(), tuple(RUNNER), warm.startup_variables(env), tmp_path)
    try:
        argv = [*RUNNER, "build"]
        assert runner.stands_in_for(argv, {**env, "FLOE_X": "1", "PATH": "/elsewhere"}, tmp_path)
        assert not runner.stands_in_for(["dbt", "build"], env, tmp_path)  # another program
        assert not runner.stands_in_for(["/other/python", *argv[1:]], env, tmp_path)
        assert not runner.stands_in_for(argv, {**env, "PYTHONPATH": "b"}, tmp_path)
        assert not runner.stands_in_for(argv, {**env, "LANG": "de_DE.UTF-8"}, tmp_path)
        assert not runner.stands_in_for(argv, {**env, "TZ": "UTC"}, tmp_path)
        assert not runner.stands_in_for(argv, env, tmp_path / "elsewhere")
    finally:
        runner.stop()
    assert runner.process.returncode is not None
    assert not runner.stands_in_for([*RUNNER, "build"], env, tmp_path)  # it has ended


def test_a_runner_that_cannot_stand_in_is_stopped_and_none_is_taken(tmp_path: Path) -> None:
    started = warm.start_waiting(RUNNER, {**os.environ, "PYTHONPATH": "x"}, tmp_path)
    assert warm.take([*RUNNER, "build"], {**os.environ, "PYTHONPATH": "y"}, tmp_path) is None
    assert started.process.returncode is not None  # stopped, never told a command
    assert warm.take([*RUNNER, "build"], dict(os.environ), tmp_path) is None  # none waits now


def test_a_waiting_runner_never_told_a_command_ends_having_run_nothing(tmp_path: Path) -> None:
    env = {**os.environ, warm.WARM_ENV: "1"}
    done = subprocess.run(
        RUNNER, input=b"", capture_output=True, env=env, cwd=tmp_path, timeout=120, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert list(tmp_path.iterdir()) == []  # no dbt log, no target


def test_discarding_stops_a_runner_no_step_took(tmp_path: Path) -> None:
    started = warm.start_waiting(RUNNER, os.environ, tmp_path, "duckdb")
    warm.discard_waiting()
    assert started.process.returncode is not None
    assert started.process.stdout is not None and started.process.stdout.closed


@pytest.mark.slow
def test_a_warm_runner_runs_the_command_it_is_sent_as_a_fresh_runner_would(
    tmp_path: Path,
) -> None:
    """Started before the step's environment exists, it runs dbt with that environment (a
    custom variable dbt puts in every line's ``extra``), in the step's directory, and says
    what a runner started then says: the lines floe reads, node by node, and the exit code."""
    artifacts = prepare(copy_example(tmp_path / "shop"))
    dbt_dir = Path(artifacts.dbt_project_path)
    env = {
        **os.environ,
        "DBT_LOG_FORMAT": "json",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": artifacts.dbt_profiles_path,
        "FLOE_CAPTURE_COLUMNS": "1",
        RELAY_ENV: "1",
        "PYTHONUNBUFFERED": "1",
        "DBT_ENV_CUSTOM_ENV_FLOE_WARM_TEST": "from-the-step",
    }
    env.pop("DBT_LOG_LEVEL", None)
    argv = [*RUNNER, "build", "--threads", "1"]
    code, fresh = dbt_lines(argv, dbt_dir, env)
    assert code == 0

    before_step = {k: v for k, v in env.items() if not k.startswith(("DBT_", "FLOE_"))}
    warm.start_waiting(RUNNER, before_step, dbt_dir, artifacts.compute.adapter_type)
    waiting = warm.take(argv, env, dbt_dir)
    assert waiting is not None
    process = waiting.launch(argv, env, dbt_dir)
    assert process is not None and process.args == argv
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert _floe_read(lines) == _floe_read(fresh)
    extras = [line["info"].get("extra", {}) for line in lines]
    assert extras and all(e.get("FLOE_WARM_TEST") == "from-the-step" for e in extras)


# --- the hand-over to dagster-dbt ---------------------------------------------------------------


def _dagster_dbt_run(argv: list[str], tmp_path: Path) -> object:
    from dagster_dbt import DagsterDbtTranslator

    from floe_dagster.resource import FloeDbtCliInvocation

    return FloeDbtCliInvocation.run(
        args=argv,
        env=dict(os.environ),
        manifest={},
        dagster_dbt_translator=DagsterDbtTranslator(),
        project_dir=tmp_path,
        target_path=tmp_path / "target",
        raise_on_error=False,
        context=None,
        adapter=None,
        cli_version=version.parse("1.11.0"),
        dbt_project=None,
    )


def test_dagster_dbt_is_handed_the_process_for_exactly_its_command(tmp_path: Path) -> None:
    assert compat.can_hand_dbt_process()
    argv = [*RUNNER, "build", "--select", "fqn:*"]
    handed = _sleeper(argv)
    try:
        with compat.dbt_process_handed(argv, lambda: handed) as launched:
            invocation = _dagster_dbt_run(argv, tmp_path)
        assert launched()
        assert invocation.process is handed  # type: ignore[attr-defined]
    finally:
        _end(handed)
    import dagster_dbt.core.dbt_cli_invocation as site

    assert site.subprocess is subprocess  # put back


def test_another_command_starts_its_own_process_and_the_handed_one_is_left(
    tmp_path: Path,
) -> None:
    handed = _sleeper()
    called: list[bool] = []

    def launch() -> subprocess.Popen[bytes]:
        called.append(True)
        return handed

    other = [sys.executable, "-c", "pass"]
    try:
        with compat.dbt_process_handed([*RUNNER, "build"], launch) as launched:
            invocation = _dagster_dbt_run(other, tmp_path)
        assert not launched() and not called
        process = invocation.process  # type: ignore[attr-defined]
        assert process is not handed and process.wait(timeout=30) == 0
        process.stdout.close()
    finally:
        _end(handed)


def test_a_launch_that_fails_falls_back_to_a_fresh_process(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "pass"]
    with compat.dbt_process_handed(argv, lambda: None) as launched:
        invocation = _dagster_dbt_run(argv, tmp_path)
    assert launched()
    process = invocation.process  # type: ignore[attr-defined]
    assert process.wait(timeout=30) == 0
    process.stdout.close()


def test_without_the_site_nothing_is_handed(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster_dbt.core.dbt_cli_invocation as site

    monkeypatch.delattr(site, "subprocess")
    assert not compat.can_hand_dbt_process()
    monkeypatch.setattr(site, "subprocess", object(), raising=False)
    assert not compat.can_hand_dbt_process()
