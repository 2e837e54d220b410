#!/usr/bin/env bash
# Run `docker compose` on compose.yaml with the stack's secrets in place.
#   scripts/compose.sh up --build       first use: writes .env, then starts the stack
#   scripts/compose.sh --env-only       only make sure .env holds every secret, start nothing
#
# compose.yaml has no built-in passwords: it refuses to start unless DAGSTER_PG_PASSWORD and
# MARQUEZ_PG_PASSWORD are set. On first use this script generates each missing one (random, 32
# URL-safe characters) into .env next to compose.yaml, created owner-only (0600); values already
# in .env or in the environment are kept. .env is ignored by git and by the image builds.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
secrets=(DAGSTER_PG_PASSWORD MARQUEZ_PG_PASSWORD)

umask 077
if [ -L .env ]; then
  echo "compose.sh: .env is a symbolic link; replace it with a regular file" >&2
  exit 2
fi
touch .env
chmod 0600 .env
for name in "${secrets[@]}"; do
  if grep -q "^${name}=." .env || [ -n "${!name:-}" ]; then
    continue
  fi
  value=$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')
  [ -z "$(tail -c 1 .env)" ] || echo >> .env
  echo "${name}=${value}" >> .env
  echo "compose.sh: generated ${name} into .env (owner-only)" >&2
done

if [ "${1:-}" = "--env-only" ]; then
  exit 0
fi
if ! command -v docker > /dev/null; then
  echo "compose.sh: docker is not installed; .env is ready for \`docker compose $*\`" >&2
  exit 127
fi
exec docker compose "$@"
