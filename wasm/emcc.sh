#!/usr/bin/env bash
# Runs emcc with the arguments given, wherever toolchain.sh found it:
# from PATH, or inside the cached Debian trixie root. In the root, the
# repository and the header cache are bind-mounted at their own paths in a
# private mount namespace (gone when emcc exits), so every path on the
# command line means the same file inside and outside.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
mode=${PGI_TOOLCHAIN:-$(bash "$here/toolchain.sh")}
case "$mode" in
  path) exec emcc "$@" ;;
  chroot\ *)
    root=${mode#chroot }
    cache=$(dirname "$root")
    exec unshare -m -- bash -c '
      set -e
      root=$1 repo=$2 cache=$3; shift 3
      for d in "$repo" "$cache"; do
        mkdir -p "$root$d"
        mount --bind "$d" "$root$d"
      done
      exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        /bin/sh -c "cd \"\$0\" && exec emcc \"\$@\"" "$PWD" "$@"
    ' _ "$root" "$repo" "$cache" "$@"
    ;;
  *) echo "[emcc] toolchain.sh gave an unknown answer: $mode" >&2; exit 1 ;;
esac
