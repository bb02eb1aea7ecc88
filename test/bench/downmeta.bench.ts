/**
 * down_meta, extraction's heaviest step, at the Qwen2.5-0.5B shape (vocab
 * 151936, hidden 896, 4864 features per layer, 24 layers, top-k 10): the
 * JavaScript kernel in worker threads (what `pglite-infer extract --compute
 * js` runs) next to ONNX Runtime's CPU execution provider (`--compute onnx`,
 * the default when it loads), in one run, on the same random data.
 *
 *   npx tsx test/bench/downmeta.bench.ts [--js-features 256] [--workers 2]
 *
 * ONNX computes one whole layer; the JavaScript kernel (about 8 minutes per
 * layer here) computes the first --js-features features, and its layer and
 * model times are extrapolated linearly (features are independent), as the
 * table says. The features both computed are compared: ids and logits must
 * be identical.
 */
import { OnnxDownMetaEngine } from '@pglite-infer/compute/downmeta'
import { WorkerPoolEngine } from '@pglite-infer/vindex/node'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'

const SHAPE = { vocab: 151936, hidden: 896, features: 4864, layers: 24, k: 10 }

const { values } = parseArgs({
  options: {
    'js-features': { type: 'string', default: '256' },
    workers: { type: 'string', default: String(availableParallelism()) },
  },
})
const jsFeatures = Number(values['js-features'])
const workers = Number(values.workers)

/** Deterministic values of the scale real embeddings and down rows have. */
function fill(a: Float32Array, seed: number, scale: number): Float32Array {
  let s = seed >>> 0
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * scale
  }
  return a
}

const js = new WorkerPoolEngine(workers)
const onnx = await OnnxDownMetaEngine.create()
const embed = fill(js.allocate(SHAPE.vocab * SHAPE.hidden), 1, 0.1)
const down = fill(new Float32Array(SHAPE.features * SHAPE.hidden), 2, 0.05)

const t0 = performance.now()
const o = await onnx.topK({
  embed,
  vocab: SHAPE.vocab,
  hidden: SHAPE.hidden,
  down,
  features: SHAPE.features,
  k: SHAPE.k,
})
const onnxLayer = (performance.now() - t0) / 1000

const t1 = performance.now()
const j = await js.topK({
  embed,
  vocab: SHAPE.vocab,
  hidden: SHAPE.hidden,
  down: down.subarray(0, jsFeatures * SHAPE.hidden),
  features: jsFeatures,
  k: SHAPE.k,
})
const jsPart = (performance.now() - t1) / 1000
await js.close()
await onnx.close()

const n = jsFeatures * SHAPE.k
const same = j.ids.every((id, i) => id === o.ids[i]) && j.logits.every((v, i) => v === o.logits[i])
if (!same) throw new Error('the engines disagree on the features both computed')

const jsLayer = (jsPart / jsFeatures) * SHAPE.features
const fmtS = (s: number) => (s >= 600 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`)
const rows: string[][] = [
  ['engine', 'measured', 'one layer (4864 features)', 'whole model (24 layers)', 'ratio'],
  [
    `js, ${workers} worker threads`,
    `${jsFeatures} features in ${jsPart.toFixed(1)} s`,
    `${fmtS(jsLayer)} (extrapolated)`,
    `${fmtS(jsLayer * SHAPE.layers)} (extrapolated)`,
    '1.0x',
  ],
  [
    'onnx (CPU EP)',
    `4864 features in ${onnxLayer.toFixed(1)} s`,
    fmtS(onnxLayer),
    `${fmtS(onnxLayer * SHAPE.layers)} (24 x measured layer)`,
    `${(jsLayer / onnxLayer).toFixed(1)}x`,
  ],
]
const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
for (const r of rows) console.log(`| ${r.map((v, c) => v.padEnd(w[c]!)).join(' | ')} |`)
console.log(`\nidentical ids and logits on the ${jsFeatures} features both computed (${n} entries)`)
