"""A dbt runner started ahead of its command, so that dbt's import overlaps the parent's start.

``floe run`` spends its first seconds importing Dagster and building the definitions; the dbt
process its step then starts spends its own first seconds importing dbt (about 2 s, as long as
the whole build of a small project). :func:`start_waiting` starts that process at the beginning
of the run instead: :mod:`floe_dbt.runner` with :data:`WARM_ENV` set imports dbt and the target's
adapter at once, on another core, then waits on stdin for its command, one JSON line with dbt's
arguments, the environment and the working directory the step would have started it with
(:func:`wait_for_command`). Where the step would start the runner, it takes the waiting process
instead (:func:`take`), so dbt's output, exit code and signals are those of a process it started.

Nothing else changes. Where no runner waits, or the waiting one cannot stand in (it has ended,
it runs another interpreter, a variable Python reads at start-up differs), the step starts dbt as
before; a runner never taken is stopped by :func:`discard_waiting` without having run anything.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "WARM_ADAPTER_ENV",
    "WARM_ENV",
    "WaitingRunner",
    "discard_waiting",
    "start_waiting",
    "startup_variables",
    "take",
    "wait_for_command",
]

#: ``1``: the runner imports dbt, then waits on stdin for its command (see the module's doc).
WARM_ENV = "FLOE_DBT_WARM"
#: The dbt adapter to import while waiting (``duckdb``: ``dbt.adapters.duckdb``).
WARM_ADAPTER_ENV = "FLOE_DBT_WARM_ADAPTER"
#: What dbt imports on its way to a build, beyond its command line; a module missing in some
#: version is skipped (the import then happens when dbt needs it, as without a warm start).
_PRELOADED = ("dbt.cli.main", "dbt.task.build", "dbt.parser.manifest")
#: Read by Python as it starts (encoding, hashing, paths, warnings, time zone): a process started
#: under other values is not the process the step would have started.
_STARTUP_PREFIXES = ("PYTHON", "LC_")
_STARTUP_NAMES = frozenset({"LANG", "LANGUAGE", "TZ"})


def startup_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that a Python process reads only as it starts."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
    }


@dataclass
class WaitingRunner:
    """A runner process waiting for its command, and what it was started with."""

    process: subprocess.Popen[bytes]
    prefix: tuple[str, ...]  # the runner's own command line: [python, -m, floe_dbt.runner]
    startup: dict[str, str]
    # Where it started: ``python -m`` puts it first on the module path, as the step's start in
    # the dbt project directory would.
    cwd: Path

    def stands_in_for(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | str) -> bool:
        """Whether this process can be the one ``argv`` with ``env`` in ``cwd`` would start."""
        return (
            self.process.poll() is None
            and tuple(argv[: len(self.prefix)]) == self.prefix
            and startup_variables(env) == self.startup
            and Path(cwd).resolve() == self.cwd
        )

    def launch(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | str
    ) -> subprocess.Popen[bytes] | None:
        """Send it its command (``argv`` in ``cwd`` with exactly ``env``); the process, now
        running dbt as ``argv`` would, or None if it ended before it could be told (stopped)."""
        request = {
            "args": [str(a) for a in argv[len(self.prefix) :]],
            "env": dict(env),
            "cwd": os.fspath(cwd),
        }
        stdin = self.process.stdin
        try:
            assert stdin is not None
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.close()
        except (OSError, ValueError):  # it ended after the check
            self.stop()
            return None
        self.process.stdin = None  # as if started without one (communicate() skips it)
        self.process.args = list(argv)  # what dagster-dbt shows as the dbt command
        return self.process

    def stop(self) -> None:
        """End it unused: it has run nothing, so it is simply terminated and reaped."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


_lock = threading.Lock()
_waiting: WaitingRunner | None = None


def start_waiting(
    prefix: Sequence[str],
    environ: Mapping[str, str],
    cwd: Path | str,
    adapter_type: str | None = None,
) -> WaitingRunner:
    """Start the runner ``prefix`` (``[python, -m, floe_dbt.runner]``) in ``cwd`` (the dbt
    project, where the step would start it) to wait for a command.

    Its output goes to a pipe, as when dagster-dbt starts dbt (stderr into stdout); it stays in
    this process's session, as such a dbt would. A runner waiting already is stopped first.
    """
    env = {**environ, WARM_ENV: "1", "PYTHONUNBUFFERED": "1"}
    if adapter_type:
        env[WARM_ADAPTER_ENV] = adapter_type
    process = subprocess.Popen(
        list(prefix),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    runner = WaitingRunner(process, tuple(prefix), startup_variables(env), Path(cwd).resolve())
    global _waiting
    with _lock:
        earlier, _waiting = _waiting, runner
    if earlier is not None:
        earlier.stop()
    return runner


def take(argv: Sequence[str], env: Mapping[str, str], cwd: Path | str) -> WaitingRunner | None:
    """The waiting runner, if it can be the process ``argv`` with ``env`` in ``cwd`` would
    start; None where none waits or it cannot (then it is stopped). Nothing is sent to it yet:
    the caller :meth:`~WaitingRunner.launch`-es it, or stops it."""
    global _waiting
    with _lock:
        runner, _waiting = _waiting, None
    if runner is None:
        return None
    if not runner.stands_in_for(argv, env, cwd):
        runner.stop()
        return None
    return runner


def discard_waiting() -> None:
    """Stop the waiting runner, if no step took it."""
    global _waiting
    with _lock:
        runner, _waiting = _waiting, None
    if runner is not None:
        runner.stop()


def wait_for_command(stdin: IO[bytes] | None = None) -> list[str] | None:
    """In the waiting runner: import dbt, then take the command from ``stdin`` and become the
    process it describes (its environment, its working directory); dbt's arguments, or None if
    the parent closed stdin without a command."""
    for module in _PRELOADED:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    adapter_type = os.environ.get(WARM_ADAPTER_ENV, "")
    if adapter_type.isidentifier():
        with contextlib.suppress(Exception):  # dbt imports it again when it needs it
            importlib.import_module(f"dbt.adapters.{adapter_type}")
    line = (stdin or sys.stdin.buffer).readline()
    if not line.strip():
        return None
    request = json.loads(line)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    return [str(a) for a in request["args"]]
