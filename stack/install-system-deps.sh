#!/usr/bin/env bash
# Install the Debian packages the lab and its tests need, only those that are missing.
# Runs apt-get as root, or through sudo for a normal user. Idempotent.
set -euo pipefail

declare -A wanted=(
  [caddy]=caddy            # reverse proxy
  [prometheus]=prometheus  # metrics server (brings promtool)
  [chromium]=chromium      # real-browser tests
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]} - install these packages with your system's package manager" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system prometheus/caddy service on :9090/:80 when systemd runs; the lab
# runs its own, so stop them where a service manager exists.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus caddy >/dev/null 2>&1 || true
fi
