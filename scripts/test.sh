#!/usr/bin/env bash
# Set up .venv exactly as locked, make sure PostgreSQL is up, then lint, type-check and run every test.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_events.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure-postgres.sh
scripts/ensure-system-libs.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
