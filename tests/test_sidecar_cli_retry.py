"""The ``floe-sidecar`` command's retry policy, in-process and fast: by default it backs off from
0.5 s to 30 s and never gives up (the spool is durable, the endpoint comes back); giving up is
opt-in, and what the options say reaches the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.sidecar import ids_in_ndjson, write_spool

from floe_core.artifacts import ARTIFACTS_ENV
from floe_core.transport import SOCKET_ENV, SPOOL_ENV
from floe_sidecar import cli
from floe_sidecar.app import Sidecar
from floe_sidecar.config import EngineOptions
from floe_sidecar.engine.retry import RetryPolicy


@pytest.fixture
def engine_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[EngineOptions]:
    """The options each real Sidecar the command builds was given."""
    seen: list[EngineOptions] = []

    class Recording(Sidecar):
        def __init__(self, options: EngineOptions, *args: Any, **kwargs: Any) -> None:
            seen.append(options)
            super().__init__(options, *args, **kwargs)

    monkeypatch.setattr(cli, "Sidecar", Recording)
    # The command's logging set-up replaces the root handlers; pytest's capture needs them.
    monkeypatch.setattr(cli, "setup_logging", lambda level, fmt: None)
    for name in (SPOOL_ENV, SOCKET_ENV, ARTIFACTS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no compiled artifacts of another test found by default
    return seen


def run_once(tmp_path: Path, *options: str) -> tuple[int, Path]:
    spool, out = tmp_path / "spool", tmp_path / "out.ndjson"
    code = cli.main(
        [
            "run",
            "--once",
            "--spool",
            str(spool),
            "--no-default-sinks",
            "--sink",
            f"file:{out}",
            *options,
        ]
    )
    return code, out


def test_by_default_the_command_retries_forever(
    tmp_path: Path, engine_options: list[EngineOptions]
) -> None:
    expected = write_spool(tmp_path / "spool", 5)
    code, out = run_once(tmp_path)
    assert code == 0 and set(ids_in_ndjson(out)) == expected
    [options] = engine_options
    policy = options.retry
    assert policy == RetryPolicy(initial_delay=0.5, max_delay=30.0)
    assert policy.retries_forever
    assert not policy.gives_up(1_000_000, 365 * 24 * 3600.0)
    assert policy.delay(1_000, rand=None) <= 30.0


def test_the_engine_default_is_the_same_policy(tmp_path: Path) -> None:
    assert EngineOptions(spool_dir=tmp_path).retry == RetryPolicy()
    assert RetryPolicy().retries_forever


def test_giving_up_is_opt_in_and_reaches_the_engine(
    tmp_path: Path, engine_options: list[EngineOptions]
) -> None:
    code, _ = run_once(
        tmp_path,
        "--retry-initial",
        "2",
        "--retry-max",
        "1",
        "--give-up-attempts",
        "3",
        "--give-up-after",
        "60",
    )
    assert code == 0
    policy = engine_options[0].retry
    assert (policy.initial_delay, policy.max_delay) == (2.0, 2.0)  # the cap never below the start
    assert (policy.give_up_attempts, policy.give_up_after) == (3, 60.0)
    assert not policy.retries_forever
    assert policy.gives_up(3, 0.0) and not policy.gives_up(2, 59.0) and policy.gives_up(2, 60.0)


def test_an_impossible_give_up_is_a_usage_error(
    tmp_path: Path, engine_options: list[EngineOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_once(tmp_path, "--give-up-attempts", "0")
    assert code == cli.EXIT_USAGE and engine_options == []
    assert "retry options: give_up_attempts must be at least 1" in capsys.readouterr().err
