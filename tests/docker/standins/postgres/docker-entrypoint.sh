#!/usr/bin/env bash
# The first-start behaviour of the official image's entrypoint that our compose file relies
# on (../STANDINS.md, "postgres"): initdb with POSTGRES_USER/POSTGRES_PASSWORD, password
# authentication over TCP, POSTGRES_DB created by a socket-only temporary server, then the
# real server listening on every address. Only when started as postgres (compose's `user:`).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 00700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  # POSTGRES_HOST_AUTH_METHOD defaults to the server's password_encryption (scram-sha-256).
  auth="$(postgres -C password_encryption)"
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-$auth}" >> "$PGDATA/pg_hba.conf"
  # The socket-only phase: a TCP probe (pg_isready -h) fails here, a socket probe passes.
  PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --no-psqlrc \
      --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
