#!/usr/bin/env bash
# Install the system packages the lab (and, with `test`, its tests) need, only those missing.
#   stack/install-system-deps.sh [lab|test]     (default: lab)
# Debian/Ubuntu: apt-get, as root or through sudo. macOS with Homebrew: brew. Elsewhere: says
# what to install and fails. Idempotent.
set -euo pipefail
mode=${1:-lab}

# command -> Debian package; the tests add a real browser.
declare -A wanted=(
  [caddy]=caddy            # reverse proxy
  [prometheus]=prometheus  # metrics server (brings promtool)
  # alert routing: the server (Debian's binary is prometheus-alertmanager, Homebrew's
  # alertmanager) and amtool, which both ship under that one name
  [amtool]=prometheus-alertmanager
  [jq]=jq                  # the logs module's jq exercises
)
if [ "$mode" = test ]; then
  wanted[chromium]=chromium  # real-browser tests
fi
# Homebrew names where they differ from Debian's.
declare -A brew_name=([chromium]="--cask chromium" [prometheus-alertmanager]=alertmanager)

missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts system prometheus/alertmanager/caddy services on :9090/:9093/:80 when
  # systemd runs; the lab runs its own, so stop them where a service manager exists.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus prometheus-alertmanager caddy >/dev/null 2>&1 || true
  fi
elif [ "$(uname -s 2>/dev/null)" = Darwin ] && command -v brew >/dev/null 2>&1; then
  for package in "${missing[@]}"; do
    echo "installing with Homebrew: ${package}"
    # shellcheck disable=SC2086  # "--cask chromium" is two words on purpose
    brew install ${brew_name[$package]:-$package}
  done
else
  echo "missing: ${missing[*]}. Install them with your system's package manager" \
       "(Debian/Ubuntu: apt-get install ${missing[*]}; macOS: brew install ${missing[*]})," \
       "then run make again." >&2
  exit 1
fi
