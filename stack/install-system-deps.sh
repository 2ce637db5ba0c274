#!/bin/sh
# Install the system packages the lab (and, with `test`, its tests) need, only those missing.
#   stack/install-system-deps.sh [lab|test]     (default: lab)
# Debian/Ubuntu: apt-get, as root or through sudo. macOS with Homebrew: brew. Elsewhere: says
# what to install and fails. Idempotent. POSIX sh: runs under dash and macOS's bash 3.2
# (tests/test_shell_scripts.py checks both the syntax and the absence of bash-4 constructs).
set -eu
mode=${1:-lab}

# "command:Debian package" pairs; the tests add a real browser.
#   caddy: reverse proxy; prometheus: metrics server (brings promtool); amtool: alert routing
#   (the server, Debian's prometheus-alertmanager or Homebrew's alertmanager, ships with it);
#   jq: the logs module's jq exercises.
wanted="caddy:caddy prometheus:prometheus amtool:prometheus-alertmanager jq:jq"
if [ "$mode" = test ]; then
  wanted="$wanted chromium:chromium"
fi

# Homebrew's name where it differs from Debian's.
brew_name() {
  case $1 in
    chromium) echo "--cask chromium" ;;
    prometheus-alertmanager) echo alertmanager ;;
    *) echo "$1" ;;
  esac
}

missing=""
for pair in $wanted; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
missing=${missing# }
[ -z "$missing" ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing Debian packages: $missing"
  $SUDO apt-get update -qq
  # $missing is a list of package names: split on purpose.
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # Debian starts system prometheus/alertmanager/caddy services on :9090/:9093/:80 when
  # systemd runs; the lab runs its own, so stop them where a service manager exists.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus prometheus-alertmanager caddy >/dev/null 2>&1 || true
  fi
elif [ "$(uname -s 2>/dev/null)" = Darwin ] && command -v brew >/dev/null 2>&1; then
  for package in $missing; do
    echo "installing with Homebrew: $package"
    # "--cask chromium" is two words on purpose.
    # shellcheck disable=SC2046
    brew install $(brew_name "$package")
  done
else
  echo "missing: $missing. Install them with your system's package manager" \
       "(Debian/Ubuntu: apt-get install $missing; macOS: brew install $missing)," \
       "then run make again." >&2
  exit 1
fi
