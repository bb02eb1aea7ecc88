// Prints `MAJOR.MINOR PGLITE_WASM_PATH`: the version of the PostgreSQL inside the installed @electric-sql/pglite,
// as its `select version()` reports it. Starting PGlite takes seconds, so the
// answer is cached in wasm/build/ against the package's version and the size
// of its pglite.wasm.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
// the package exports no ./package.json: go up from its main entry (dist/index.cjs)
const pkgDir = dirname(dirname(require.resolve('@electric-sql/pglite')))
const pkgVersion = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version
const wasmSize = statSync(join(pkgDir, 'dist', 'pglite.wasm')).size
const key = `${pkgVersion}:${wasmSize}`
const cacheFile = new URL('./build/pglite-version.json', import.meta.url)

let cached
try {
  cached = JSON.parse(readFileSync(cacheFile, 'utf8'))
} catch {
  cached = undefined
}
if (cached?.key === key) {
  console.log(cached.pg, join(pkgDir, 'dist', 'pglite.wasm'))
} else {
  const { PGlite } = await import('@electric-sql/pglite')
  const db = await PGlite.create()
  const { rows } = await db.query('select version() as v')
  await db.close()
  const m = /^PostgreSQL (\d+)\.(\d+)/.exec(rows[0].v)
  if (!m) throw new Error(`cannot read a PostgreSQL version from: ${rows[0].v}`)
  const pg = `${m[1]}.${m[2]}`
  mkdirSync(new URL('./build/', import.meta.url), { recursive: true })
  writeFileSync(cacheFile, JSON.stringify({ key, pg, version: rows[0].v }) + '\n')
  console.log(pg, join(pkgDir, 'dist', 'pglite.wasm'))
}
