#!/usr/bin/env bash
# Set up .venv exactly as locked, make sure PostgreSQL is up, then lint, type-check and run every
# test; then the compatibility matrix (scripts/matrix.sh: the wheel on each supported stack).
# Extra arguments go to pytest and leave the matrix out (e.g. scripts/test.sh tests/test_events.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure-postgres.sh
scripts/ensure-system-libs.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ $# -gt 0 ]; then
  exec .venv/bin/pytest "$@"
fi
.venv/bin/pytest
exec scripts/matrix.sh
