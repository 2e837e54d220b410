"""The repository's paths, and what a test needs from outside the repo.

A test that needs something from outside the repo (a PostgreSQL server, the OpenLineage schemas)
asks for it through :func:`need`: on a user's machine it skips and says what is missing; under
``CI=true`` it fails, because CI's own scripts must provide everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["EXAMPLE_DIR", "IN_CI", "REPO_ROOT", "TESTS_DIR", "Postgres", "need"]

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
EXAMPLE_DIR = REPO_ROOT / "examples" / "shop"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(available: bool, what: str) -> None:
    """Skip (fail under CI=true) unless ``available``; ``what`` says what is missing, and how to
    get it."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and this test cannot run: {what}")
    pytest.skip(what)


@dataclass(frozen=True)
class Postgres:
    """The PostgreSQL server a test may use (the ``postgres`` fixture)."""

    host: str
    port: int
    user: str
    dbname: str
    schema: str  # unique per test; dropped afterwards
