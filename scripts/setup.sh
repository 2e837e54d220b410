#!/usr/bin/env bash
# Create .venv and install floe exactly as locked in uv.lock.
#   scripts/setup.sh            everything: adapter, sidecar, PostgreSQL adapter, test and lint tools
#   scripts/setup.sh --user     what a user needs to run the example (no test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "floe needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
# Bytecode compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (many CI images
# and containers) Python caches none, and every dbt, Dagster and sidecar process the tests start
# would compile dagster and dbt from source again (about 2 s of each start).
export UV_COMPILE_BYTECODE=1
.venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
if [ "${1:-}" = "--user" ]; then
  .venv/bin/uv sync --quiet --locked --inexact --extra adapter --extra sidecar --no-default-groups
else
  .venv/bin/uv sync --quiet --locked --inexact --all-extras
fi
