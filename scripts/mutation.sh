#!/usr/bin/env bash
# The mutation score of the modules that hold floe's promises (which modules and which fast tests:
# [tool.mutmut] in pyproject.toml). Not in CI: a full run takes hours. One worker, because the
# machine is usually shared; set MUTATION_WORKERS to use more.
#   scripts/mutation.sh                           every listed module
#   scripts/mutation.sh 'floe_core.fsutil.*' ...  only the mutants whose names match (mutmut globs)
# mutmut names mutants after the file's path, so floe_core and floe_sidecar are staged under
# src/ in .mutation/ (git-ignored) with the tests, and mutmut runs there. Its results stay there:
#   (cd .mutation && ../.venv/bin/mutmut show NAME)
# Prints per-module counts, the kill rate and the survivors; the README keeps the latest ones.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -x .venv/bin/python ] || scripts/setup.sh
.venv/bin/uv sync --quiet --locked --inexact --all-extras --group mutation
stage="$root/.mutation"
# mutants/src must exist before Python starts: a PYTHONPATH entry missing at start-up is never
# searched afterwards (the import system caches its absence).
mkdir -p "$stage/src" "$stage/mutants/src"
copy() { rsync -a --delete --exclude __pycache__ --exclude target --exclude .floe "$@"; }
copy shared/floe_core/ "$stage/src/floe_core/"
copy sidecar/floe_sidecar/ "$stage/src/floe_sidecar/"
for dir in tests examples schemas docs deploy; do copy "$dir/" "$stage/$dir/"; done
cp -p README.md compose.yaml pyproject.toml uv.lock "$stage/"
# The tests run in .mutation/mutants/: they find the venv there and the schemas where the repo's
# own tests do. The staged copies come first on the path (the editable install points at the
# originals; floe_dbt, floe_dagster and floe_cli are imported from there).
ln -sfn "$root/.venv" "$stage/mutants/.venv"
export FLOE_OPENLINEAGE_SPEC_DIR="${FLOE_OPENLINEAGE_SPEC_DIR:-$root/../shared/openlineage-spec}"
export PYTHONPATH="$stage/mutants/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$stage"
"$root/.venv/bin/mutmut" run --max-children "${MUTATION_WORKERS:-1}" "$@"
"$root/.venv/bin/python" "$root/scripts/mutation_summary.py"
