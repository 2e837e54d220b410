#!/usr/bin/env bash
# Set up .venv (user dependencies only) and run the example pipeline end to end on the embedded
# default: DuckDB, with lineage and traces written to local files under examples/shop/.floe/, and
# the run's page (lineage graph, columns, span waterfall) in examples/shop/.floe/html/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --user
cd examples/shop
exec ../../.venv/bin/floe run --html "$@"
