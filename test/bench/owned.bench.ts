/**
 * A backend-owned model larger than the WASM heap (docs/compute.md, "Weights
 * owned by the backend"): a synthetic Qwen2.5-1.5B-shaped inference vindex
 * (28 layers, hidden 1536, intermediate 8960, 12 heads / 2 kv heads, vocab
 * 151936, f16, random weights: written directly by synthetic-vindex.ts, not
 * extracted from a checkpoint) registered under infer.compute = 'onnx', then
 * register / walk / describe / similar_to / infer() / a column-index build,
 * with the heap and backend bytes infer_models() reports and the process's
 * peak RSS (the compute worker is a thread of this process).
 *
 *   npx tsx test/bench/owned.bench.ts [--dir /tmp/owned-1.5b.vindex] [--runs 3] [--rows 64]
 *   npx tsx test/bench/owned.bench.ts --from-checkpoint [--dir /tmp/owned-1.5b-extracted.vindex]
 *
 * The vindex (about 3.1 GB) is written once under --dir and kept for the
 * next run; delete it yourself. Never commit it. --from-checkpoint makes it
 * the way a user does instead: a synthetic 1.5B-shaped HuggingFace
 * checkpoint (synthetic-checkpoint.ts, 3.1 GB of bf16 safetensors, next to
 * --dir) extracted by `pglite-infer extract --level inference --compute
 * onnx`, timed, with the extraction's peak RSS.
 */
import { PGlite } from '@electric-sql/pglite'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { InferNamespace } from 'pglite-infer'
import { testPgInfer } from '../helpers/db.js'
import { SHAPES, writeSyntheticCheckpoint } from './synthetic-checkpoint.js'
import { addInferenceWeights, writeSyntheticVindex } from './synthetic-vindex.js'

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/pglite-infer-owned-1.5b.vindex' },
    runs: { type: 'string', default: '3' },
    rows: { type: 'string', default: '64' },
    'from-checkpoint': { type: 'boolean', default: false },
  },
})
const FROM_CHECKPOINT = args['from-checkpoint']!
const RUNS = Number(args.runs)
const ROWS = Number(args.rows)
const DIR = resolve(args.dir!)
const ROOT = resolve(import.meta.dirname, '..', '..')

const SHAPE = {
  layers: 28,
  hidden: 1536,
  features: 8960,
  vocab: 151936,
  heads: 12,
  kvHeads: 2,
  topK: 10,
}

/**
 * The process's peak resident memory: Linux's high-water mark (a sampler in
 * this thread would miss the peak: the thread is blocked while the worker
 * builds its sessions), else the RSS now.
 */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    if (m) return Number(m[1]) * 1024
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const gb = (b: number) => (b / 1024 ** 3).toFixed(2)

/** How the vindex came to be, for the table's header. */
let made = 'random weights written directly, not extracted'
if (FROM_CHECKPOINT && !existsSync(join(DIR, 'index.json'))) {
  const ckpt = `${DIR}.checkpoint`
  if (!existsSync(join(ckpt, 'model.safetensors'))) {
    process.stderr.write(`writing the synthetic 1.5B-shaped checkpoint to ${ckpt}...\n`)
    writeSyntheticCheckpoint(ckpt, SHAPES['1.5b']!)
  }
  process.stderr.write(`extracting it to ${DIR} (pglite-infer extract --compute onnx)...\n`)
  const t = performance.now()
  const r = spawnSync(
    '/usr/bin/time',
    [
      '-f',
      'peak RSS %M KiB',
      process.execPath,
      join(ROOT, 'packages/cli/dist/main.js'),
      'extract',
      ckpt,
      '-o',
      DIR,
      '--level',
      'inference',
      '--compute',
      'onnx',
      '--quiet',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] },
  )
  if (r.status !== 0) throw new Error(`extraction failed: ${r.stderr}`)
  const rss = /peak RSS (\d+) KiB/.exec(r.stderr)
  made =
    `extracted from a synthetic bf16 checkpoint (3.1 GB) by pglite-infer extract --compute onnx ` +
    `in ${((performance.now() - t) / 1000).toFixed(0)} s, peak RSS ${rss ? gb(Number(rss[1]) * 1024) : '?'} GiB`
} else if (FROM_CHECKPOINT) made = 'extracted from a synthetic bf16 checkpoint by an earlier run'
if (!existsSync(join(DIR, 'index.json')) || !existsSync(join(DIR, 'down_weights.bin'))) {
  process.stderr.write(`writing the synthetic 1.5B-shaped inference vindex to ${DIR}...\n`)
  const t = performance.now()
  const v = await writeSyntheticVindex(DIR, {
    shape: SHAPE,
    onProgress: (stage, done, total) => process.stderr.write(`\r${stage} ${done}/${total}   `),
  })
  addInferenceWeights(DIR, SHAPE)
  process.stderr.write(
    `\nwritten in ${((performance.now() - t) / 1000).toFixed(0)} s (${(v.bytes / 1e9).toFixed(2)} GB before the weights)\n`,
  )
}

const db = (await PGlite.create({
  extensions: { infer: testPgInfer({ compute: 'onnx' }) },
})) as PGlite & { infer: InferNamespace }
await db.exec('CREATE EXTENSION pg_infer')
// addInferenceWeights lists the weight files without checksums (an extracted vindex has them)
if (!FROM_CHECKPOINT) await db.exec('set infer.verify_checksums = off')

const table: string[][] = []
async function time(what: string, sql: string, params: unknown[] = [], runs = RUNS) {
  // the first call (decode caches; similar_to's and the index's token states)
  const t0 = performance.now()
  await db.query(sql, params)
  const first = performance.now() - t0
  const ms: number[] = []
  let n = 0
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    n = (await db.query(sql, params)).rows.length
    ms.push(performance.now() - t)
  }
  table.push([what, first.toFixed(0), median(ms).toFixed(0), String(n)])
  process.stderr.write(`${what}: first ${first.toFixed(0)} ms, then ${median(ms).toFixed(0)} ms\n`)
}

process.stderr.write('registering on onnx...\n')
let t = performance.now()
await db.query("select infer_create_model('m', $1, 'inference')", [DIR])
const registerMs = performance.now() - t
const info = (
  await db.query<{ heap_bytes: number; backend_bytes: number; weights: string }>(
    "select heap_bytes, backend_bytes, weights from infer_models() where name = 'm'",
  )
).rows[0]!
process.stderr.write(`registered in ${(registerMs / 1000).toFixed(1)} s\n`)

await time(
  'walk (embedding mode, top 10)',
  "select * from walk('The capital of France is', 10, 'm')",
)
await time(
  'walk (forward mode, top 10)',
  "select * from walk('The capital of France is', 10, 'm', 'forward')",
)
await time('describe', "select * from describe('France', 'm')")
await time('similar_to', "select similar_to('France', 'Paris', 'm')")
await time(
  'infer() (6-token prompt, top 10)',
  "select * from infer('The capital of France is', 10, 'm')",
)

const corpus = readFileSync(
  join(ROOT, 'test/fixtures/models/knowledge-qwen2-6l/corpus.txt'),
  'utf8',
)
  .split('\n')
  .filter((l) => l.trim())
  .slice(0, ROWS)
await db.exec('create table docs (id serial primary key, title text)')
await db.query('insert into docs (title) select unnest($1::text[])', [corpus])
t = performance.now()
await db.exec("create index docs_title on docs using infer (title) with (model = 'm')")
const buildMs = performance.now() - t
process.stderr.write(`column-index build: ${buildMs.toFixed(0)} ms\n`)
await db.exec("set infer.default_model = 'm'")
table.push([
  `column-index build, ${corpus.length} rows (${((corpus.length * 1000) / buildMs).toFixed(1)} rows/s)`,
  buildMs.toFixed(0),
  '',
  String(corpus.length),
])
await time(
  'index scan, top 10',
  "select id from docs order by title <~> 'capital of France' limit 10",
)

await db.infer.compute.terminate()
await db.close()

console.log(
  `synthetic Qwen2.5-1.5B shape (28 layers, hidden 1536, intermediate 8960, 12/2 heads, vocab 151936, f16, ${made}); ` +
    `infer.compute = 'onnx' (backend-owned), ${process.env.PGLITE_INFER_ONNX_THREADS ?? 2} intra-op threads; ` +
    `median of ${RUNS} after 1 warm-up; ${cpus().length} x ${cpus()[0]?.model ?? ''}, ${gb(totalmem())} GiB RAM`,
)
console.log(
  `register: ${(registerMs / 1000).toFixed(1)} s; heap ${gb(info.heap_bytes)} GiB, backend ${gb(info.backend_bytes)} GiB (weights: ${info.weights}); peak RSS ${gb(peakRss())} GiB\n`,
)
console.log(`| operation | first call ms | then ms (median of ${RUNS}) | rows |`)
console.log('|---|---:|---:|---:|')
for (const r of table) console.log(`| ${r.join(' | ')} |`)
