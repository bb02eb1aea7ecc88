/**
 * The quick-start demo (`npm run demo`): extracts the repository's fixture
 * model (a small Qwen2 trained on country facts) into a vindex, registers it
 * in PGlite with pg_infer, and runs knowledge queries against it.
 *
 *   node packages/pglite-infer/dist/demo.js [hf-model-dir]
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pgInfer } from './index.js'

const modelDir =
  process.argv[2] ??
  fileURLToPath(new URL('../../../test/fixtures/models/knowledge-qwen2-6l', import.meta.url))

async function show(db: PGlite, sql: string): Promise<void> {
  const { rows } = await db.query<Record<string, unknown>>(sql)
  console.log(`\n${sql}`)
  console.table(
    rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? Number(v.toFixed(4)) : v]),
      ),
    ),
  )
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-demo-'))
try {
  const vindex = join(work, 'model.vindex')
  console.log(`extracting ${modelDir}\n     into ${vindex}`)
  await extractVindexDir(modelDir, vindex, { modelName: 'knowledge-qwen2-6l', workers: 0 })

  const db = await PGlite.create({ extensions: { infer: pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  const { rows } = await db.query<{ pg: string; ext: string }>(
    'select version() as pg, infer_version() as ext',
  )
  console.log(`\n${rows[0]!.pg}\npg_infer ${rows[0]!.ext}`)

  await db.query("select infer_create_model('countries', $1)", [vindex])
  await db.exec("set infer.default_model = 'countries'")
  await show(
    db,
    'select name, architecture, layers, hidden, features, vocab, dtype, bytes from infer_models()',
  )
  await show(db, "select * from walk('The capital of France is', 8)")
  await show(db, "select * from describe('France') limit 8")
  await show(
    db,
    "select similar_to('France', 'Germany') as france_germany, similar_to('France', 'banana') as france_banana",
  )
  await db.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}
