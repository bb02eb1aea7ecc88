#!/usr/bin/env bash
# Formats extension/ C sources with clang-format (--check: only report).
# Uses clang-format from PATH, else the one in the cached trixie root of
# wasm/toolchain.sh (installed there on first use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=(-i)
[ "${1:-}" = --check ] && mode=(--dry-run -Werror)
files=(extension/src/*.c extension/src/*.h)
if command -v clang-format >/dev/null 2>&1; then
  exec clang-format "${mode[@]}" "${files[@]}"
fi
tc=$(bash wasm/toolchain.sh)
case "$tc" in
  chroot\ *) root=${tc#chroot } ;;
  *) echo "[format-c] no clang-format on PATH: install it (apt-get install clang-format)" >&2; exit 1 ;;
esac
if [ ! -x "$root/usr/bin/clang-format" ]; then
  chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends clang-format >&2
fi
repo=$(pwd)
exec unshare -m -- bash -c '
  root=$1 repo=$2; shift 2
  mkdir -p "$root$repo" && mount --bind "$repo" "$root$repo"
  exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec clang-format \"\$@\"" "$repo" "$@"
' _ "$root" "$repo" "${mode[@]}" "${files[@]}"
