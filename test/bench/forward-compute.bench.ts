/**
 * The forward step on infer.compute = 'wasm' next to 'onnx' (ONNX Runtime CPU
 * EP in the compute worker) on the synthetic Qwen2.5-0.5B-shaped inference
 * vindex (test/bench/synthetic-vindex.ts), in one run: infer() of a 64-token
 * prompt (prefill) and of a 1-token prompt (one single-token step: what each
 * decode step of a greedy continuation costs, less attention over the
 * earlier positions), median ms and the ratio; then a column-index build
 * (signature version 3: each row's forward pass and greedy continuation,
 * rows stepped together on onnx) in rows/s, and the first similar_to of the
 * model (the vocabulary sample: 512 tokens, up to 9 steps each).
 *
 *   npx tsx test/bench/forward-compute.bench.ts [--runs 3] [--warmup 1] [--index-rows 16,128]
 *
 * The index build runs on a fresh load of the model for each backend (a
 * loaded model caches the signatures it computed). The vocabulary sample
 * is measured on onnx only: on wasm it is 4,608 single-token steps, about
 * 40 minutes at this shape, so its wasm figure is that count times the
 * measured single-token step, and says so.
 *
 * The first 'onnx' step of a model hands its forward weights to the worker
 * and builds the session: reported on its own line, not in the ratios.
 */
import { PGlite } from '@electric-sql/pglite'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { InferNamespace } from 'pglite-infer'
import { testPgInfer } from '../helpers/db.js'
import { addInferenceWeights, promptOfTokens, writeSyntheticVindex } from './synthetic-vindex.js'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    'index-rows': { type: 'string', default: '16,128' },
  },
})
const [WASM_ROWS, ONNX_ROWS] = args['index-rows']!.split(',').map(Number) as [number, number]
const RUNS = Number(args.runs)
const WARMUP = Number(args.warmup)
const ROOT = resolve(import.meta.dirname, '..', '..')

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const tmp = join(ROOT, 'test', '.tmp')
mkdirSync(tmp, { recursive: true })
const work = mkdtempSync(join(tmp, 'forward-compute-bench-'))
try {
  process.stderr.write('writing the synthetic 0.5B-shaped inference vindex...\n')
  const dir = join(work, 'synthetic.vindex')
  await writeSyntheticVindex(dir)
  addInferenceWeights(dir)
  const db = (await PGlite.create({ extensions: { infer: testPgInfer() } })) as PGlite & {
    infer: InferNamespace
  }
  await db.exec('CREATE EXTENSION pg_infer')
  // addInferenceWeights lists the weight files without checksums
  await db.exec('set infer.verify_checksums = off')
  await db.query("select infer_create_model('m', $1, 'inference')", [dir])
  const backend = (b: string) => db.exec(`set infer.compute = '${b}'`)
  const infer = (prompt: string) =>
    db.query<{ token: string; probability: number }>("select * from infer($1, 10, 'm')", [prompt])

  const cases = [
    { what: 'prefill, 64-token prompt', prompt: await promptOfTokens(64), tokens: 64 },
    { what: 'single-token step (1-token prompt)', prompt: await promptOfTokens(1), tokens: 1 },
  ]
  await backend('onnx')
  let t = performance.now()
  await infer(cases[1]!.prompt)
  const load = performance.now() - t

  const table: string[][] = []
  /** The median single-token step on wasm: what the vocabulary sample's extrapolation multiplies. */
  let stepMs = 0
  for (const c of cases) {
    const ms: Record<string, number> = {}
    const top: Record<string, string> = {}
    for (const be of ['wasm', 'onnx']) {
      await backend(be)
      process.stderr.write(`${c.what}, ${be}...\n`)
      for (let i = 0; i < WARMUP; i++) await infer(c.prompt)
      const runs: number[] = []
      for (let i = 0; i < RUNS; i++) {
        t = performance.now()
        const { rows } = await infer(c.prompt)
        runs.push(performance.now() - t)
        top[be] = rows.map((r) => r.token).join('|')
      }
      ms[be] = median(runs)
    }
    if (c.tokens === 1) stepMs = ms.wasm!
    table.push([
      c.what,
      ms.wasm!.toFixed(0),
      ms.onnx!.toFixed(0),
      `${(ms.wasm! / ms.onnx!).toFixed(2)}x`,
      top.wasm === top.onnx ? 'yes' : 'NO',
    ])
  }

  // a column-index build on a fresh load of the model per backend
  const corpus = readFileSync(
    join(ROOT, 'test', 'fixtures', 'models', 'knowledge-qwen2-6l', 'corpus.txt'),
    'utf8',
  )
    .split('\n')
    .filter((l) => l.trim())
  const build: Record<string, { rows: number; ms: number }> = {}
  for (const [be, rows] of [
    ['wasm', WASM_ROWS],
    ['onnx', ONNX_ROWS],
  ] as const) {
    await db.exec('reset infer.compute; drop table if exists docs')
    await db.query("select infer_drop_model('m')")
    await backend(be)
    await db.query("select infer_create_model('m', $1, 'inference')", [dir])
    await infer(cases[1]!.prompt) // the worker takes the forward weights outside the timing
    await db.exec('create table docs (title text)')
    await db.query('insert into docs select unnest($1::text[])', [
      Array.from({ length: rows }, (_, i) => corpus[i % corpus.length]!),
    ])
    process.stderr.write(`column-index build, ${rows} rows, ${be}...\n`)
    t = performance.now()
    await db.exec("create index docs_title on docs using infer (title) with (model = 'm')")
    build[be] = { rows, ms: performance.now() - t }
  }
  process.stderr.write('first similar_to (the vocabulary sample), onnx...\n')
  t = performance.now()
  await db.query("select similar_to('France', 'Paris', 'm')")
  const sampleMs = performance.now() - t
  await db.infer.compute.terminate()
  await db.close()
  const rate = (b: { rows: number; ms: number }) => b.rows / (b.ms / 1000)

  console.log(
    `synthetic Qwen2.5-0.5B shape (24 layers, hidden 896, intermediate 4864, vocab 151936, f16); ` +
      `onnx: ${process.env.PGLITE_INFER_ONNX_THREADS ?? 2} intra-op threads; ` +
      `median of ${RUNS} after ${WARMUP} warm-up; ${cpus()[0]?.model ?? ''}`,
  )
  console.log(
    `first onnx step (forward weights to the worker, session build): ${(load / 1000).toFixed(1)} s\n`,
  )
  console.log('| infer() | wasm ms | onnx ms | wasm / onnx | same top-10 |')
  console.log('|---|---:|---:|---:|---|')
  for (const r of table) console.log(`| ${r.join(' | ')} |`)
  console.log('\n| signature version 3 | wasm | onnx | onnx / wasm |')
  console.log('|---|---:|---:|---:|')
  console.log(
    `| column-index build, rows/s (${build.wasm!.rows} and ${build.onnx!.rows} rows) | ` +
      `${rate(build.wasm!).toFixed(2)} | ${rate(build.onnx!).toFixed(2)} | ` +
      `${(rate(build.onnx!) / rate(build.wasm!)).toFixed(2)}x |`,
  )
  console.log(
    `| first similar_to (vocabulary sample, 512 tokens x up to 9 steps), s | ` +
      `${((4608 * stepMs) / 1000).toFixed(0)} (4,608 x the single-token step: extrapolated) | ` +
      `${(sampleMs / 1000).toFixed(1)} | ${((4608 * stepMs) / sampleMs).toFixed(1)}x |`,
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
