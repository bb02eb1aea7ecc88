/**
 * infer.compute = 'wasm' next to 'onnx' (ONNX Runtime CPU EP in a worker
 * thread) on the synthetic Qwen2.5-0.5B-shaped vindex, in one run:
 * infer_signatures batches and a column-index build, rows/s and the ratio.
 *
 *   npx tsx test/bench/compute.bench.ts [--rows 256] [--batches 1,16,64,256]
 *
 * The first 'onnx' call of a model copies its gate rows to the worker and
 * builds the session: reported on its own line, not in the ratios.
 */
import { PGlite } from '@electric-sql/pglite'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { InferNamespace } from 'pglite-infer'
import { testPgInfer } from '../helpers/db.js'
import { writeSyntheticVindex } from './synthetic-vindex.js'

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '256' },
    batches: { type: 'string', default: '1,16,64,256' },
  },
})
const ROWS = Number(args.rows)
const BATCHES = args.batches
  .split(',')
  .map(Number)
  .filter((b) => b <= ROWS)
const FIXTURE = fileURLToPath(new URL('../fixtures/models/knowledge-qwen2-6l', import.meta.url))
const corpus = readFileSync(join(FIXTURE, 'corpus.txt'), 'utf8').split('\n').filter(Boolean)
const texts = Array.from({ length: ROWS }, (_, i) => corpus[i % corpus.length]!)

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return performance.now() - t
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-compute-bench-'))
try {
  process.stderr.write('writing the synthetic 0.5B-shaped vindex...\n')
  const synth = await writeSyntheticVindex(join(work, 'synthetic.vindex'))
  const db = (await PGlite.create({ extensions: { infer: testPgInfer() } })) as PGlite & {
    infer: InferNamespace
  }
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('s', $1)", [synth.dir])
  await db.exec("set infer.default_model = 's'")

  const backend = (b: string) => db.exec(`set infer.compute = '${b}'`)
  const signatures = (batch: string[]) =>
    db.query('select count(*) from infer_signatures($1::text[])', [batch])

  await backend('onnx')
  const load = await timed(() => signatures(texts.slice(0, 1)))
  const table: string[][] = []
  const row = (what: string, rows: number, wasm: number, onnx: number) =>
    table.push([
      what,
      (rows / (wasm / 1000)).toFixed(1),
      (rows / (onnx / 1000)).toFixed(1),
      `${(wasm / onnx).toFixed(2)}x`,
    ])

  for (const b of BATCHES) {
    const ms: Record<string, number> = {}
    for (const be of ['wasm', 'onnx']) {
      await backend(be)
      process.stderr.write(`infer_signatures, batches of ${b}, ${be}...\n`)
      let t = 0
      for (let i = 0; i + b <= ROWS; i += b)
        t += await timed(() => signatures(texts.slice(i, i + b)))
      ms[be] = t
    }
    row(`infer_signatures, batches of ${b}`, Math.floor(ROWS / b) * b, ms.wasm!, ms.onnx!)
  }

  await db.exec('create table docs (id serial primary key, title text)')
  await db.query('insert into docs (title) select unnest($1::text[])', [texts])
  const ms: Record<string, number> = {}
  for (const be of ['wasm', 'onnx']) {
    await backend(be)
    process.stderr.write(`column-index build, ${be}...\n`)
    ms[be] = await timed(() =>
      db.exec("create index docs_title on docs using infer (title) with (model = 's')"),
    )
    await db.exec('drop index docs_title')
  }
  row(`column-index build, ${ROWS} rows`, ROWS, ms.wasm!, ms.onnx!)
  await db.infer.compute.terminate()
  await db.close()

  console.log(
    `synthetic Qwen2.5-0.5B shape (24 x 4864 x 896, f16); onnx: ${process.env.PGLITE_INFER_ONNX_THREADS ?? 2} intra-op threads`,
  )
  console.log(
    `first onnx call (gate rows to the worker, session build): ${(load / 1000).toFixed(1)} s\n`,
  )
  console.log('| workload | wasm rows/s | onnx rows/s | onnx / wasm |')
  console.log('|---|---:|---:|---:|')
  for (const r of table) console.log(`| ${r.join(' | ')} |`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
