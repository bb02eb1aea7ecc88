/**
 * The GPU check (test/bench/gpu-check.sh runs it): the WebGPU adapter's name
 * and, in one run at the Qwen2.5-0.5B shape, webgpu next to wasm and onnx
 * for the workloads the compute seam has today. Short by default: each row
 * measures a slice and says so.
 *
 *   npx tsx test/bench/gpu-check.bench.ts [--walks 8] [--features 256] [--js-features 16]
 *                                         [--batches 16,64] [--reps 3] [--forward-runs 3]
 *
 * - walk(): one gate pass of one query through SQL (infer.compute = wasm,
 *   onnx, webgpu) on the synthetic 0.5B-shaped vindex (24 x 4864 x 896, f16);
 *   the first call of a host backend (gate rows to its worker) on its own line.
 * - gate pass batches of 16 and 64 queries, backend to backend (the seam's
 *   batched call: ONNX Runtime vs WebGPU; wasm has no batched caller since
 *   signatures v2, so its column is the single-query walk rate x batch).
 * - down_meta at the 0.5B shape (vocab 151936 x hidden 896): --features
 *   features on onnx and webgpu, --js-features on the JavaScript kernel;
 *   whole-model times extrapolated (features are independent).
 * - decode / prefill: infer() through SQL on the same shape with forward
 *   weights (f16): a 1-token prompt (one single-token step) and a 64-token
 *   prompt, median of --forward-runs after one warm-up, the first step of
 *   each host backend (weights to its worker) excluded; the top-10 tokens
 *   are compared with wasm's.
 */
import { PGlite } from '@electric-sql/pglite'
import { OnnxDownMetaEngine } from '@pglite-infer/compute/downmeta'
import { OnnxBackend } from '@pglite-infer/compute/onnx'
import { WebGpuDownMetaEngine, createNodeWebGpuBackend } from '@pglite-infer/compute/webgpu'
import { InlineEngine } from '@pglite-infer/vindex'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { InferNamespace } from 'pglite-infer'
import { testPgInfer } from '../helpers/db.js'
import {
  addInferenceWeights,
  promptOfTokens,
  QWEN05B_SHAPE,
  writeSyntheticVindex,
} from './synthetic-vindex.js'

const { values } = parseArgs({
  options: {
    walks: { type: 'string', default: '8' },
    features: { type: 'string', default: '256' },
    'js-features': { type: 'string', default: '16' },
    batches: { type: 'string', default: '16,64' },
    reps: { type: 'string', default: '3' },
    'forward-runs': { type: 'string', default: '3' },
  },
})
const WALKS = Number(values.walks)
const FEATURES = Number(values.features)
const JS_FEATURES = Number(values['js-features'])
const BATCHES = values.batches.split(',').map(Number)
const REPS = Number(values.reps)
const FORWARD_RUNS = Number(values['forward-runs'])
const S = QWEN05B_SHAPE

const log = (s: string) => process.stderr.write(`${s}\n`)
async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return performance.now() - t
}
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2))
const ratio = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}x` : 'n/a'

function fill(a: Float32Array, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 1
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * scale
  }
  return a
}

const gpuProbe = await createNodeWebGpuBackend().catch((e: Error) => {
  // `npm run bench` runs every bench: say why this one has nothing to show
  console.log(`no WebGPU adapter, nothing to check: ${e.message}`)
  process.exit(0)
})
const adapter = gpuProbe.adapter
await gpuProbe.dispose()
log(`adapter: ${adapter.name}`)

const rows: string[][] = []
const work = mkdtempSync(join(tmpdir(), 'pglite-infer-gpu-check-'))
try {
  // --- walk() through SQL ---------------------------------------------------
  log('writing the synthetic 0.5B-shaped vindex...')
  const synth = await writeSyntheticVindex(join(work, 'synthetic.vindex'))
  const db = (await PGlite.create({ extensions: { infer: testPgInfer() } })) as PGlite & {
    infer: InferNamespace
  }
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('s', $1)", [synth.dir])
  const prompts = ['capital of France', 'the yen', 'Japan', 'Paris', 'language', 'Berlin']
  const walkRate: Record<string, number> = {}
  const first: Record<string, number> = {}
  for (const be of ['wasm', 'onnx', 'webgpu']) {
    await db.exec(`set infer.compute = '${be}'`)
    first[be] = await timed(() => db.query("select count(*) from walk('warm up', 10, 's')"))
    log(`walk(), ${be}...`)
    let t = 0
    for (let i = 0; i < WALKS; i++)
      t += await timed(() =>
        db.query('select count(*) from walk($1, 10, $2)', [prompts[i % prompts.length], 's']),
      )
    walkRate[be] = WALKS / (t / 1000)
  }
  rows.push([
    'walk() (one gate pass, SQL), queries/s',
    fmt(walkRate.wasm!),
    fmt(walkRate.onnx!),
    fmt(walkRate.webgpu!),
    ratio(walkRate.webgpu!, walkRate.wasm!),
    ratio(walkRate.webgpu!, walkRate.onnx!),
  ])
  await db.infer.compute.terminate()
  await db.infer.webgpu.terminate()
  await db.close()

  // --- batched gate passes, backend to backend ------------------------------
  log('gate rows for the backends...')
  const layers = Array.from({ length: S.layers }, (_, l) => {
    const f = fill(new Float32Array(S.features * S.hidden), 11 + l, 0.1)
    const h = new Uint16Array(f.length)
    // f16 bits by way of a widening table: round-trip exactness is not needed here
    const dv = new DataView(new ArrayBuffer(4))
    for (let i = 0; i < f.length; i++) {
      dv.setFloat32(0, f[i]!)
      const x = dv.getUint32(0)
      const e = ((x >>> 23) & 0xff) - 127 + 15
      h[i] = e <= 0 ? (x >>> 16) & 0x8000 : ((x >>> 16) & 0x8000) | (e << 10) | ((x >>> 13) & 0x3ff)
    }
    return { rows: S.features, hidden: S.hidden, dtype: 'f16' as const, data: h }
  })
  const onnx = await OnnxBackend.create()
  const gpu = await createNodeWebGpuBackend()
  await onnx.loadGate(
    'g',
    layers.map((l) => ({ ...l, data: l.data.slice() })),
  )
  await gpu.loadGate(
    'g',
    layers.map((l) => ({ ...l, data: l.data.slice() })),
  )
  for (const nq of BATCHES) {
    const queries = fill(new Float32Array(nq * S.hidden), 5 + nq, 1)
    const req = { model: 'g', nq, perLayerK: 0, k: 50, rank: 'abs' as const, positiveOnly: false }
    const rate: Record<string, number> = {}
    for (const [name, b] of [
      ['onnx', onnx],
      ['webgpu', gpu],
    ] as const) {
      log(`gate pass, batch of ${nq}, ${name}...`)
      await b.gateTopK({ ...req, queries: queries.slice() })
      const reps = REPS
      const t = await timed(async () => {
        for (let i = 0; i < reps; i++) await b.gateTopK({ ...req, queries: queries.slice() })
      })
      rate[name] = (reps * nq) / (t / 1000)
    }
    rows.push([
      `gate pass, batches of ${nq} (top-50), rows/s`,
      `${fmt(walkRate.wasm!)} (walk rate)`,
      fmt(rate.onnx!),
      fmt(rate.webgpu!),
      ratio(rate.webgpu!, walkRate.wasm!),
      ratio(rate.webgpu!, rate.onnx!),
    ])
  }
  await onnx.dispose()
  await gpu.dispose()

  // --- down_meta at the 0.5B shape -----------------------------------------
  const vocab = S.vocab
  log('down_meta embedding...')
  const embed = fill(new Float32Array(vocab * S.hidden), 1, 0.1)
  const down = fill(new Float32Array(FEATURES * S.hidden), 2, 0.05)
  const dm = (features: number) => ({
    embed,
    vocab,
    hidden: S.hidden,
    down: down.subarray(0, features * S.hidden),
    features,
    k: 10,
  })
  const per: Record<string, number> = {} // seconds per feature
  const onnxDm = await OnnxDownMetaEngine.create()
  log('down_meta, onnx...')
  per.onnx = (await timed(() => onnxDm.topK(dm(FEATURES)))) / 1000 / FEATURES
  await onnxDm.close()
  const gpuDm = await WebGpuDownMetaEngine.create()
  await gpuDm.topK(dm(16)) // uploads the embedding once, as an extraction does
  log('down_meta, webgpu...')
  per.webgpu = (await timed(() => gpuDm.topK(dm(FEATURES)))) / 1000 / FEATURES
  await gpuDm.close()
  log('down_meta, js...')
  per.js = (await timed(() => new InlineEngine().topK(dm(JS_FEATURES)))) / 1000 / JS_FEATURES
  const model = (x: number) => (x * S.features * S.layers) / 60
  rows.push([
    `down_meta, whole model extrapolated, minutes (onnx/webgpu: ${FEATURES} features, js: ${JS_FEATURES}, 1 thread)`,
    `${fmt(model(per.js))} (js)`,
    fmt(model(per.onnx)),
    fmt(model(per.webgpu)),
    ratio(per.js, per.webgpu),
    ratio(per.onnx, per.webgpu),
  ])

  // --- the forward step through SQL -------------------------------------------
  log('forward weights for the synthetic vindex...')
  addInferenceWeights(synth.dir)
  const fdb = (await PGlite.create({ extensions: { infer: testPgInfer() } })) as PGlite & {
    infer: InferNamespace
  }
  await fdb.exec('CREATE EXTENSION pg_infer')
  await fdb.exec('set infer.verify_checksums = off') // the weight files are listed unchecked
  await fdb.query("select infer_create_model('f', $1, 'inference')", [synth.dir])
  const infer = (prompt: string) =>
    fdb.query<{ token: string }>("select * from infer($1, 10, 'f')", [prompt])
  for (const [what, n] of [
    ['decode: one single-token step, ms', 1],
    ['prefill: 64-token prompt, ms', 64],
  ] as const) {
    const prompt = await promptOfTokens(n)
    const ms: Record<string, number> = {}
    const top: Record<string, string> = {}
    for (const be of ['wasm', 'onnx', 'webgpu']) {
      await fdb.exec(`set infer.compute = '${be}'`)
      log(`${what}, ${be}...`)
      await infer(prompt) // warm-up (a host backend's first step loads the weights)
      const runs: number[] = []
      for (let i = 0; i < FORWARD_RUNS; i++)
        runs.push(
          await timed(
            async () => (top[be] = (await infer(prompt)).rows.map((r) => r.token).join('|')),
          ),
        )
      ms[be] = runs.sort((a, b) => a - b)[Math.floor(runs.length / 2)]!
    }
    const same = top.onnx === top.wasm && top.webgpu === top.wasm ? '' : ' (top-10 DIFFERS)'
    rows.push([
      `${what}${same}`,
      fmt(ms.wasm!),
      fmt(ms.onnx!),
      fmt(ms.webgpu!),
      ratio(ms.wasm!, ms.webgpu!),
      ratio(ms.onnx!, ms.webgpu!),
    ])
  }
  await fdb.infer.compute.terminate()
  await fdb.infer.webgpu.terminate()
  await fdb.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}

console.log(
  `adapter: ${adapter.name}${adapter.software ? ' (software: a CPU emulation)' : ''}; shader-f16: ${adapter.shaderF16}`,
)
console.log(
  `shape: Qwen2.5-0.5B (${S.layers} x ${S.features} x ${S.hidden}, f16 gate rows; vocab 151936)`,
)
console.log('')
console.log('| workload | wasm (js) | onnx | webgpu | webgpu speed-up over wasm | over onnx |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
