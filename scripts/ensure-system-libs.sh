#!/usr/bin/env bash
# System libraries the test suite needs beyond Python packages: libodbc.so.2, which pyodbc loads
# when dbt-spark validates an ODBC profile. Installed with apt-get when we may (root on Debian/Ubuntu);
# otherwise we say what is missing and that test skips (under CI=true it fails instead).
set -uo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2'; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq libodbc2 >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libodbc2 >/dev/null 2>&1; }
  ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2' && exit 0
fi
echo "ensure-system-libs: libodbc.so.2 not found (Debian/Ubuntu: apt-get install libodbc2;" \
  "macOS: brew install unixodbc); the Spark ODBC profile test will skip (and fail under CI=true)" >&2
exit 0
