#!/bin/sh
# Print a command that runs the Python named by the arguments: "python3.13", "3.13", a path,
# or a command with arguments. A name that does not run by itself (pyenv's shim of a
# version installed but not selected, or a bare version number) is looked for as
# pythonX.Y on PATH, then among pyenv's installed versions (the newest X.Y.Z).
# Exits 1, printing nothing, when there is no such Python here. POSIX sh (dash, bash 3.2).
set -u
[ $# -gt 0 ] || set -- python3

runs() { "$@" -c 'import sys' >/dev/null 2>&1; }

# X.Y of "X.Y" or "pythonX.Y", else empty.
want=$(printf '%s' "$1" | sed -n 's/^\(python\)\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\)$/\2/p')
if [ $# -gt 1 ] || [ -z "$want" ]; then
  runs "$@" && { echo "$*"; exit 0; }
fi
[ -n "$want" ] || exit 1
runs "python$want" && { command -v "python$want"; exit 0; }
if command -v pyenv >/dev/null 2>&1; then
  version=$(pyenv versions --bare --skip-aliases 2>/dev/null \
            | grep -E "^$(printf '%s' "$want" | sed 's/\./\\./g')\.[0-9]+$" | sort -V | tail -n 1)
  py="$(pyenv root)/versions/$version/bin/python$want"
  [ -n "$version" ] && runs "$py" && { echo "$py"; exit 0; }
fi
exit 1
