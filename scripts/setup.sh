#!/usr/bin/env bash
# Set up connote in ./.venv from a fresh clone: Python packages (pinned by requirements/constraints.txt),
# and with `--test` also Debian's Chromium for the browser tests. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "connote needs Python 3.10 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi

# System libraries: OpenCV (used by the OCR of the offline describer) needs libGL and GLib.
need_apt=()
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need_apt+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0' || need_apt+=(libglib2.0-0)
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "Please install these system packages first: ${need_apt[*]}" >&2; exit 1
  fi
fi

stamp=.venv/.connote-installed
sig=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "Installing connote and its dependencies into .venv (a few minutes the first time) ..."
# torch and torchvision first, exactly as pinned: an unpinned torch would pull another multi-GB build.
quiet_pip() {  # pip's notes about this machine's local package folders are noise here
  python -m pip install -q -c requirements/constraints.txt "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
quiet_pip torch torchvision
quiet_pip -e '.[all]'
echo "$sig" > "$stamp"
