#!/usr/bin/env bash
# Prints the path of a Chromium for the browser tests, installing Debian's
# chromium package first when it is missing and this is a Debian machine
# where we are root (as the toolchain's first build does with debootstrap).
set -euo pipefail
path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$path" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[browser tests] installing Debian's chromium package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends chromium >&2 ||
      { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends chromium >&2; }
  else
    echo "no Chromium at $path: install Debian's chromium package (sudo apt-get install chromium) or set CHROMIUM_PATH" >&2
    exit 1
  fi
fi
echo "$path"
