#!/bin/sh
# The official image's entrypoint, the part our compose file relies on (../STANDINS.md,
# "redis"): `redis-server` without a config file gets `--protected-mode no`, so that other
# containers (web, worker) may connect without a password.
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ ! -f "${2:-}" ]; then
  set -- "$@" --protected-mode no
fi
umask 0077
exec "$@"
