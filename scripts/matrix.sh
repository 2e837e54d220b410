#!/usr/bin/env bash
# The compatibility matrix: floe's wheel, built once, installed into a fresh virtual environment
# per stack (exact versions in scripts/stacks/<stack>.txt), and proven there.
#   adapter stacks (oldest, middle, newest): the example pipelines end to end (`floe run`: assets,
#     checks, lineage and spans) and the adapter's Dagster tests, on the installed wheel;
#   sidecar stacks (sidecar-oldest, sidecar-newest): the sidecar alone, no dagster and no dbt
#     installed, running the sidecar's tests.
#
#   scripts/matrix.sh                   every stack (scripts/test.sh runs this after the suite)
#   scripts/matrix.sh oldest newest     only those
#   scripts/matrix.sh --lock            re-pin scripts/stacks/*.txt from their .in files
#
# uv's cache is shared by every stack, so a package is downloaded once; each stack's venv is new.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
stacks_dir=scripts/stacks
adapter_stacks="oldest middle newest"
sidecar_stacks="sidecar-oldest sidecar-newest"

# What each kind of stack installs from the wheel, and the tests it runs there.
adapter_extras="adapter,postgres,sidecar"
adapter_tests="tests/test_example_pipelines.py tests/test_adapter_dagster.py"
sidecar_extras="sidecar"
# (tests/test_openlineage_sidecar.py materializes through Dagster: it runs in the locked suite.)
sidecar_tests="tests/test_events.py tests/test_spool.py tests/test_sidecar_engine.py
  tests/test_sidecar_framing.py tests/test_sidecar_parts.py tests/test_sidecar_reader.py
  tests/test_sidecar_process.py tests/test_openlineage_translate.py tests/test_openlineage_sink.py
  tests/test_otel_translate.py tests/test_otel_config.py tests/test_otel_export.py
  tests/test_otel_sidecar.py tests/test_otel_logs_metrics.py tests/test_otel_logs_metrics_outage.py
  tests/test_openlineage_columns.py tests/test_column_lineage.py"
# floe writes the facet versions of the OpenLineage spec it was built for; this test holds them
# equal to the locked client's, so it is left out where the client is older.
deselect_sidecar_oldest="tests/test_openlineage_translate.py::test_standard_facet_schema_urls_are_the_clients"

kind_of() { case "$1" in sidecar-*) echo sidecar ;; *) echo adapter ;; esac; }
extras_of() { if [ "$(kind_of "$1")" = sidecar ]; then echo "$sidecar_extras"; else echo "$adapter_extras"; fi; }
overrides_of() {
  local file="$stacks_dir/$1.overrides.txt"
  if [ -f "$file" ]; then echo "--override $file"; fi
}

if [ "${1:-}" = "--lock" ]; then
  for stack in $adapter_stacks $sidecar_stacks; do
    extras=()
    for extra in $(extras_of "$stack" | tr , ' '); do extras+=(--extra "$extra"); done
    # shellcheck disable=SC2046
    "$uv" pip compile --quiet --python-version 3.11 --universal \
      --custom-compile-command "scripts/matrix.sh --lock" \
      pyproject.toml "${extras[@]}" "$stacks_dir/$stack.in" $(overrides_of "$stack") \
      -o "$stacks_dir/$stack.txt"
    echo "matrix: pinned $stacks_dir/$stack.txt"
  done
  exit 0
fi

selected="${*:-$adapter_stacks $sidecar_stacks}"
work=$(mktemp -d "${TMPDIR:-/tmp}/floe-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$uv" build --quiet --wheel --out-dir "$work/dist" .
wheel=$(ls "$work"/dist/floe-*.whl)
python=.venv/bin/python  # uv makes each venv from the interpreter behind it

failed=()
for stack in $selected; do
  [ -f "$stacks_dir/$stack.txt" ] || { echo "matrix: no stack $stack in $stacks_dir" >&2; exit 2; }
  began=$SECONDS
  venv="$work/$stack"
  "$uv" venv --quiet --python "$python" "$venv"
  # The stack's exact pins as constraints: the wheel's own ranges must accept every one of them.
  # shellcheck disable=SC2046
  "$uv" pip install --quiet --python "$venv/bin/python" --constraint "$stacks_dir/$stack.txt" \
    $(overrides_of "$stack") "$wheel[$(extras_of "$stack")]" -r "$stacks_dir/tools.in"
  "$venv/bin/python" - "$stack" <<'EOF'
import sys
from importlib import metadata
names = ["dagster", "dagster-dbt", "dbt-core", "dbt-duckdb", "dbt-postgres", "openlineage-python",
         "opentelemetry-sdk", "anyio", "msgspec", "watchfiles"]
found = []
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
print(f"matrix: {sys.argv[1]}: " + ", ".join(found), flush=True)
EOF
  if [ "$(kind_of "$stack")" = sidecar ]; then
    for forbidden in dagster dbt; do
      if "$venv/bin/python" -c "import $forbidden" 2>/dev/null; then
        echo "matrix: $stack: $forbidden is installed in a sidecar-only venv" >&2; exit 1
      fi
    done
    tests=$sidecar_tests
    if [ "$stack" = sidecar-oldest ]; then tests="$tests --deselect $deselect_sidecar_oldest"; fi
  else
    tests=$adapter_tests
  fi
  # The repository's tests, importing floe from the installed wheel (the source tree's packages
  # live under shared/, adapter/ and sidecar/, never on this interpreter's path).
  # shellcheck disable=SC2086
  if PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      --durations=5 $tests; then
    echo "matrix: $stack passed in $((SECONDS - began)) s"
  else
    echo "matrix: $stack FAILED after $((SECONDS - began)) s" >&2
    failed+=("$stack")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "matrix: failed stacks: ${failed[*]}" >&2
  exit 1
fi
echo "matrix: every stack passed ($selected)"
