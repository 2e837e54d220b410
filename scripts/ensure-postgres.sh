#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use (127.0.0.1:5432, trust auth, database `test`) is up.
# Starts the machine's own cluster when it is installed but stopped; on a machine without PostgreSQL it
# says so, and the PostgreSQL tests skip (under CI=true they fail instead).
set -uo pipefail
host=${FLOE_TEST_PG_HOST:-127.0.0.1}
port=${FLOE_TEST_PG_PORT:-5432}
listening() { .venv/bin/python -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)" "$host" "$port" 2>/dev/null; }
listening && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do listening && exit 0; sleep 1; done
fi
echo "ensure-postgres: no PostgreSQL server at $host:$port; the PostgreSQL tests will skip (and fail under CI=true)" >&2
exit 0
