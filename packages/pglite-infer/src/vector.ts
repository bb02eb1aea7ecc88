/**
 * pgvector for PGlite, built from source with pg_infer's toolchain
 * (wasm/build.sh; pgvector 0.8.0, PostgreSQL License: see
 * THIRD_PARTY_NOTICES.md).
 *
 *   import { PGlite } from '@electric-sql/pglite'
 *   import { pgInfer } from 'pglite-infer'
 *   import { vector } from 'pglite-infer/vector'
 *   const db = await PGlite.create({ extensions: { infer: pgInfer, vector } })
 *   await db.exec('CREATE EXTENSION vector')
 */
import type { Extension } from '@electric-sql/pglite'

/** Where the WASM build (wasm/build.sh) leaves the pgvector bundle. */
export const vectorBundleUrl = new URL('../bundle/vector.tar.gz', import.meta.url)

/** The pgvector extension (`CREATE EXTENSION vector`): no host, no namespace. */
export const vector: Extension = {
  name: 'vector',
  setup: async () => ({ bundlePath: vectorBundleUrl }),
}
