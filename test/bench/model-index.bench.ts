/**
 * Loading a model from index pages vs from vindex files, on the synthetic
 * Qwen2.5-0.5B-shaped vindex (24 x 4864 x 896, vocab 151936, f16), in one
 * run: the time to store it in a model index, then the first-use load from
 * the pages (in a fresh backend over the same data directory) next to the
 * load from the files.
 *
 *   npx tsx test/bench/model-index.bench.ts
 */
import { PGlite } from '@electric-sql/pglite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { writeSyntheticVindex } from './synthetic-vindex.js'

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return (performance.now() - t) / 1000
}

async function open(dataDir: string): Promise<PGlite> {
  const db = await PGlite.create({ dataDir, extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION IF NOT EXISTS pg_infer')
  return db
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-model-index-'))
try {
  process.stderr.write('writing the synthetic vindex...\n')
  const v = await writeSyntheticVindex(join(work, 'synthetic.vindex'))
  const dataDir = join(work, 'pgdata')
  const db = await open(dataDir)
  process.stderr.write('loading from files...\n')
  const fromFiles = await timed(() => db.query("select infer_create_model('files', $1)", [v.dir]))
  const describeWarm = await timed(() => db.query("select * from describe('France', 'files')"))
  await db.query("select infer_drop_model('files')")
  process.stderr.write('storing in a model index...\n')
  const store = await timed(() =>
    db.exec(
      `create index synthetic on infer._models using infer (name) with (source = '${v.dir}')`,
    ),
  )
  const { rows } = await db.query<{ mb: number }>(
    "select pg_relation_size('infer.synthetic') / 1048576.0 as mb",
  )
  await db.close()

  const again = await open(dataDir)
  process.stderr.write('loading from pages...\n')
  const firstUse = await timed(() => again.query("select * from describe('France', 'synthetic')"))
  await again.close()
  const fromPages = firstUse - describeWarm

  console.log(
    `\nmodel load, synthetic Qwen2.5-0.5B shape (${(v.bytes / 1048576).toFixed(0)} MB of vindex), node ${process.version}\n`,
  )
  console.log('| measure | seconds | note |')
  console.log('|---|---|---|')
  console.log(
    `| load from vindex files (infer_create_model) | ${fromFiles.toFixed(2)} | host reads the files, C copies them into the heap |`,
  )
  console.log(
    `| store in a model index (CREATE INDEX) | ${store.toFixed(2)} | ${Number(rows[0]!.mb).toFixed(0)} MB of WAL-logged pages |`,
  )
  console.log(
    `| load from index pages (first use after reopening) | ${fromPages.toFixed(2)} | first describe() minus a warm describe() (${describeWarm.toFixed(3)} s) |`,
  )
  console.log(`| pages / files | ${(fromPages / fromFiles).toFixed(2)} | |`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
