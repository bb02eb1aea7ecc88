#!/usr/bin/env bash
# Ensures an emscripten >= 3.1.69 is available and prints how to call it.
#
# Order of preference:
#   1. `emcc` on PATH when its version is >= 3.1.69  -> prints "path"
#   2. a cached Debian trixie root with Debian's emscripten package, created
#      with debootstrap on a Debian/Ubuntu host when running as root
#      -> prints "chroot <dir>"
# The root lives outside the repository (it is ~1 GB and shared by clones):
#   ${PGLITE_INFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pglite-infer}/trixie-root
# A second call finds it ready and returns in milliseconds.
set -euo pipefail

MIN_EMCC=3.1.69
CACHE="${PGLITE_INFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pglite-infer}"
ROOT="$CACHE/trixie-root"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "[toolchain] $*" >&2; }
die() { echo "[toolchain] error: $*" >&2; exit 1; }

version_ge() { # version_ge A B: A >= B
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

if [ -z "${PGLITE_INFER_FORCE_CHROOT:-}" ] && command -v emcc >/dev/null 2>&1; then
  v=$(emcc --version 2>/dev/null | head -n1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)
  if [ -n "$v" ] && version_ge "$v" "$MIN_EMCC"; then
    echo "path"
    exit 0
  fi
  log "emcc on PATH is $v, older than $MIN_EMCC (no EM_JS in side modules); using a Debian trixie root instead"
fi

if [ -f "$ROOT/.ready" ]; then
  echo "chroot $ROOT"
  exit 0
fi

# Nothing usable yet: build the cached root, or say exactly what is missing.
[ "$(id -u)" = 0 ] || die "need emscripten >= $MIN_EMCC. Install it (https://emscripten.org, or 'apt-get install emscripten' on Debian trixie or newer) and put emcc on PATH, or run this build once as root on Debian/Ubuntu so it can create a cached Debian trixie root with debootstrap."
command -v apt-get >/dev/null 2>&1 || die "need emscripten >= $MIN_EMCC on PATH; this host has no apt-get to create a Debian trixie root for it."

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 || die "could not install debootstrap with apt-get"
fi

mkdir -p "$CACHE"
# Clones building at the same time share the root: one creates it, the
# others wait here and then find it ready.
command -v flock >/dev/null 2>&1 && { exec 9>"$CACHE/.lock"; flock 9; }
if [ -f "$ROOT/.ready" ]; then
  echo "chroot $ROOT"
  exit 0
fi
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  log "creating a Debian trixie root in $ROOT (about a minute)"
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase trixie "$ROOT.tmp" "$MIRROR" >&2 || die "debootstrap of Debian trixie from $MIRROR failed (see above)"
  mv "$ROOT.tmp" "$ROOT"
fi

log "installing emscripten in the trixie root (a few minutes, once)"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends emscripten python3 ca-certificates' >&2 \
  || die "apt-get install emscripten failed inside $ROOT"
v=$(chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root emcc --version | head -n1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
version_ge "$v" "$MIN_EMCC" || die "the trixie root has emscripten $v, need >= $MIN_EMCC"
log "emscripten $v ready in $ROOT"
touch "$ROOT/.ready"
echo "chroot $ROOT"
