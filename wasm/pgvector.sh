#!/usr/bin/env bash
# pgvector.sh
# Prints a directory holding pgvector's source tree, the version pinned here,
# from Debian's source package (the upstream release tarball, unchanged), with
# wasm/pgvector-0.8.0-pg18.patch applied: upstream's own PostgreSQL 18 fixes,
# which 0.8.0 predates (PGlite 0.5.16 is PostgreSQL 18).
#
# The tarball is downloaded once from Debian's archive (trixie's version,
# which stays in the pool for trixie's life), checked against the sha256
# below, unpacked and patched; both are cached under
#   ${PGLITE_INFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pglite-infer}/pgvector/
# A second call finds the tree ready and returns in milliseconds; a changed
# patch unpacks it again. Nothing of pgvector is committed to the repository
# but the patch: the build compiles from the cache.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PGVECTOR_VERSION=0.8.0
PGVECTOR_SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
CACHE="${PGLITE_INFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pglite-infer}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
dir="$CACHE/pgvector"
tarball="$dir/pgvector_$PGVECTOR_VERSION.orig.tar.gz"
src="$dir/pgvector-$PGVECTOR_VERSION"
url="$MIRROR/pool/main/p/pgvector/pgvector_$PGVECTOR_VERSION.orig.tar.gz"
patch="$here/pgvector-$PGVECTOR_VERSION-pg18.patch"
# the tree is ready for this patch when .ready holds the patch's hash
stamp="$PGVECTOR_SHA256 $(sha256sum "$patch" | cut -d' ' -f1)"

log() { echo "[pgvector] $*" >&2; }
die() { echo "[pgvector] error: $*" >&2; exit 1; }

if [ "$(cat "$src/.ready" 2>/dev/null)" = "$stamp" ]; then
  echo "$src"
  exit 0
fi

mkdir -p "$dir"
if [ ! -f "$tarball" ] || ! echo "$PGVECTOR_SHA256  $tarball" | sha256sum -c --status; then
  log "downloading pgvector $PGVECTOR_VERSION from $url"
  part=$(mktemp "$tarball.XXXXXX")
  # node is always here (the build runs under npm); curl or wget may not be
  node -e '
    const [url, out] = process.argv.slice(1)
    ;(async () => {
      const res = await fetch(url)
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
      require("node:fs").writeFileSync(out, Buffer.from(await res.arrayBuffer()))
    })().catch((e) => { console.error(String(e)); process.exit(1) })
  ' "$url" "$part" >&2 || { rm -f "$part"; die "could not download $url"; }
  have=$(sha256sum "$part" | cut -d' ' -f1)
  [ "$have" = "$PGVECTOR_SHA256" ] || {
    rm -f "$part"
    die "$url has sha256 $have, expected $PGVECTOR_SHA256"
  }
  chmod 644 "$part"
  mv "$part" "$tarball"
fi

# Unpack beside the final place and rename, so a concurrent build (another
# checkout sharing the cache) never sees a half-written tree.
tmp=$(mktemp -d "$dir/.unpack.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
# --touch: every file is newer than objects built from an older tree
tar -xzf "$tarball" -C "$tmp" --strip-components=1 --no-same-owner --touch
grep -q "^default_version = '$PGVECTOR_VERSION'" "$tmp/vector.control" \
  || die "$tarball does not hold pgvector $PGVECTOR_VERSION"
# git apply as a plain patch(1) (the ceiling keeps it from finding a
# repository above), or patch(1) itself where git is missing
if command -v git >/dev/null 2>&1; then
  (cd "$tmp" && GIT_CEILING_DIRECTORIES="$dir" git apply -p1 "$patch")
else
  patch -s -p1 -d "$tmp" < "$patch"
fi || die "$patch does not apply to pgvector $PGVECTOR_VERSION"
echo "$stamp" > "$tmp/.ready"
if [ "$(cat "$src/.ready" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$src"
  mv "$tmp" "$src"
fi
log "pgvector $PGVECTOR_VERSION sources ready in $src"
echo "$src"
