#!/usr/bin/env bash
# `make test-docker`: the compose stack on a real Docker engine (tests/docker/compose_engine.py).
# Installs docker.io, docker-compose and debootstrap when missing; uses the engine that
# answers, else starts its own dockerd (its data directory keeps the images between runs)
# and stops that one, by its pid, at the end. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

pid=""
stop_engine() {
  if [ -n "$pid" ]; then
    $SUDO kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "stopped the dockerd this run started (pid $pid)"
  fi
}
if ! docker info >/dev/null 2>&1; then
  state=${LAB_DOCKER_DIR:-/var/lib/todo-lab-docker}
  $SUDO mkdir -p "$state"
  export DOCKER_HOST="unix://$state/docker.sock"
  # Its own socket, data and exec directories: nothing of another engine is touched.
  $SUDO dockerd --host "$DOCKER_HOST" --data-root "$state/data" --exec-root "$state/exec" \
    --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
  pid=$!
  trap stop_engine EXIT
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not answer within 120 s; its log ($state/dockerd.log):" >&2
    tail -n 30 "$state/dockerd.log" >&2
    exit 1
  fi
  echo "started dockerd (pid $pid) on $DOCKER_HOST"
fi

started=$(date +%s)
status=0
# Its own time limit: a first run builds every image (pytest.ini gives a test 600 s).
.venv/bin/python -m pytest tests/docker/compose_engine.py -p no:cacheprovider -v -s --timeout 5400 "$@" || status=$?
echo "make test-docker: $(( $(date +%s) - started )) s"
exit $status
