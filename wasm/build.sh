#!/usr/bin/env bash
# One command: builds extension/ into packages/pglite-infer/bundle/pg_infer.tar.gz
# and pgvector into packages/pglite-infer/bundle/vector.tar.gz.
#
#   1. finds emscripten >= 3.1.69 (wasm/toolchain.sh: PATH, or a cached
#      Debian trixie root it creates once),
#   2. reads the PostgreSQL version of the installed @electric-sql/pglite and
#      fetches the same major.minor server headers (wasm/pg-headers.sh),
#   3. fetches pgvector's pinned source release once (wasm/pgvector.sh),
#   4. runs make: compiles what changed, links the side modules (pg_infer.so,
#      vector.so), checks their imports against pglite.wasm's exports, and
#      packs the bundles (pg_infer.tar.gz, vector.tar.gz),
#   5. checks that pg_infer's sources also compile natively against stock headers
#      (when a C compiler is here), so the extension stays portable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ -d node_modules/@electric-sql/pglite ] || { echo "[build] installing npm packages" >&2; npm ci >&2; }

export PGI_TOOLCHAIN
PGI_TOOLCHAIN=$(bash wasm/toolchain.sh)
read -r pg_version pglite_wasm < <(node wasm/pglite-version.mjs)
pg_include=$(bash wasm/pg-headers.sh "$pg_version")
pgvector_src=$(bash wasm/pgvector.sh)
jobs=$(nproc 2>/dev/null || echo 2)

make --no-print-directory -j"$jobs" -f wasm/Makefile PG_INCLUDE="$pg_include" PGLITE_WASM="$pglite_wasm" \
  PGVECTOR_SRC="$pgvector_src" all

if command -v cc >/dev/null 2>&1; then
  native_include="$(dirname "$pg_include")/native"
  if [ ! -d "$native_include" ]; then
    # the unwrapped x86-64 headers: the same tree with the original pg_config.h
    cp -a "$pg_include" "$native_include.tmp"
    mv "$native_include.tmp/pg_config_x86_64.h" "$native_include.tmp/pg_config.h"
    mv "$native_include.tmp" "$native_include"
  fi
  make --no-print-directory -j"$jobs" -f wasm/Makefile NATIVE_PG_INCLUDE="$native_include" \
    PG_INCLUDE="$pg_include" PGVECTOR_SRC="$pgvector_src" native-check
fi
