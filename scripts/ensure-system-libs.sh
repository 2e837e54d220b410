#!/usr/bin/env bash
# System packages the test suite needs beyond Python packages, installed with apt-get when we may
# (root on Debian/Ubuntu); otherwise we say what is missing and those tests skip (under CI=true
# they fail instead):
# - libodbc.so.2, which pyodbc loads when dbt-spark validates an ODBC profile;
# - chromium, the headless browser the run page's tests open the page in (Debian's package; no
#   browser is downloaded from anywhere else).
set -uo pipefail

have_odbc() { ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2'; }
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

missing=()
have_odbc || missing+=(libodbc2)
have_chromium || missing+=(chromium fonts-dejavu-core)  # a font, for legible screenshots
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }
fi
have_odbc || echo "ensure-system-libs: libodbc.so.2 not found (Debian/Ubuntu: apt-get install" \
  "libodbc2; macOS: brew install unixodbc); the Spark ODBC profile test will skip (and fail" \
  "under CI=true)" >&2
have_chromium || echo "ensure-system-libs: chromium not found (Debian/Ubuntu: apt-get install" \
  "chromium; or set FLOE_CHROMIUM to a Chromium binary); the run page's browser tests will" \
  "skip (and fail under CI=true)" >&2
exit 0
