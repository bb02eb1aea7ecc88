/**
 * infer() benchmark: latency of next-token prediction inside PGlite (the C
 * forward pass, extension/src/forward.c) for a 16-token prompt, and a
 * 1-token prompt (the per-token cost once prefill is batched), on
 *   - the knowledge-qwen2-6l fixture (7 M parameters), f32 and f16;
 *   - a synthetic Qwen2.5-0.5B-shaped inference vindex (24 layers, hidden
 *     896, 4864 features, vocab 151936, f16): test/bench/synthetic-vindex.ts
 *     plus random attention / up / down / norm weights written here.
 *
 *   npx tsx test/bench/infer.bench.ts [--runs N] [--warmup N] [--skip-synthetic]
 *
 * Prints a Markdown table (median and min over N runs after warm-up) with
 * prefill tokens/s = prompt tokens / median latency. onnxruntime-web is not
 * compared (no ONNX export of these models ships with the repository).
 */
import { PGlite } from '@electric-sql/pglite'
import { FILES, loadTokenizer, type VindexIndex, type WeightEntry } from '@pglite-infer/vindex'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { testPgInfer as createPgInfer } from '../helpers/db.js'
import { QWEN05B_SHAPE, XorShift32, writeSyntheticVindex } from './synthetic-vindex.js'

const ROOT = resolve(import.meta.dirname, '..', '..')
const FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'knowledge-qwen2-6l')

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    'skip-synthetic': { type: 'boolean', default: false },
  },
})
const RUNS = Number(args.runs)
const WARMUP = Number(args.warmup)

/** Exactly 16 tokens of the fixture's tokenizer (no special tokens). */
function prompt16(): string {
  const tok = loadTokenizer(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8'))
  const text =
    'The capital of France is Paris. The capital of Japan is Tokyo. The currency of Germany is the'
  const ids = tok.encode(text, { add_special_tokens: false }).ids.slice(0, 16)
  const out = tok.decode(ids)
  if (tok.encode(out, { add_special_tokens: false }).ids.length !== 16)
    throw new Error('prompt is not 16 tokens')
  return out
}

async function time(db: PGlite, sql: string, params: unknown[]): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await db.query(sql, params)
  const ms: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    await db.query(sql, params)
    ms.push(performance.now() - t)
  }
  return ms.sort((a, b) => a - b)
}

interface Row {
  model: string
  tokens: number
  median: number
  min: number
}

async function bench(name: string, vindex: string, rows: Row[]): Promise<void> {
  const db = await PGlite.create({ extensions: { pgInfer: createPgInfer() } })
  await db.exec('CREATE EXTENSION pg_infer')
  const t = performance.now()
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  const { rows: info } = await db.query<{ bytes: number }>('select bytes from infer_models()')
  console.error(
    `${name}: loaded ${(Number(info[0]!.bytes) / 1e6).toFixed(0)} MB in ${(performance.now() - t).toFixed(0)} ms`,
  )
  for (const [tokens, text] of [
    [16, prompt16()],
    [1, ' France'],
  ] as const) {
    const ms = await time(db, "select * from infer($1, 10, 'm')", [text])
    rows.push({ model: name, tokens, median: ms[Math.floor(ms.length / 2)]!, min: ms[0]! })
  }
  await db.close()
}

/** f16 bits of N(0, std) approximations: uniform in [-a, a] with the same std. */
function randomF16(n: number, rng: XorShift32, std: number): Uint16Array {
  const table = new Uint16Array(1024)
  const f32 = new Float32Array(1)
  const u32 = new Uint32Array(f32.buffer)
  for (let i = 0; i < table.length; i++) {
    f32[0] = ((i + 0.5) / table.length - 0.5) * 2 * std * Math.sqrt(3)
    const x = u32[0]!
    const e = ((x >>> 23) & 0xff) - 127 + 15
    table[i] =
      e <= 0 ? (x >>> 16) & 0x8000 : ((x >>> 16) & 0x8000) | (e << 10) | ((x >>> 13) & 0x3ff)
  }
  const out = new Uint16Array(n)
  for (let i = 0; i < n; i++) out[i] = table[rng.next() & 1023]!
  return out
}

/**
 * Turns a browse-level synthetic vindex into an inference-level one: random
 * f16 q/k/v/o (+ Qwen2's biases), up, down and norm weights (norms = 1) in
 * the split files, listed in index.json's weight manifest.
 */
function addInferenceWeights(dir: string): void {
  const s = QWEN05B_SHAPE
  const hd = s.hidden / s.heads
  const rng = new XorShift32(7)
  const weights: WeightEntry[] = []
  const files = new Map<string, Uint8Array[]>()
  const offsets = new Map<string, number>()
  const add = (file: string, key: string, shape: number[], data: Uint16Array) => {
    const bytes = new Uint8Array(data.buffer)
    const offset = offsets.get(file) ?? 0
    weights.push({
      key,
      kind: shape.length === 2 ? 'tensor' : 'vector',
      shape,
      offset,
      length: bytes.length,
      file,
    })
    const parts = files.get(file) ?? []
    parts.push(bytes)
    if (bytes.length % 4) parts.push(new Uint8Array(2))
    files.set(file, parts)
    offsets.set(file, offset + bytes.length + (bytes.length % 4))
  }
  const ones = (n: number) => new Uint16Array(n).fill(0x3c00)
  for (let l = 0; l < s.layers; l++) {
    const p = `layers.${l}.`
    add(
      'attn_weights.bin',
      `${p}self_attn.q_proj.weight`,
      [s.hidden, s.hidden],
      randomF16(s.hidden * s.hidden, rng, 0.02),
    )
    add(
      'attn_weights.bin',
      `${p}self_attn.k_proj.weight`,
      [s.kvHeads * hd, s.hidden],
      randomF16(s.kvHeads * hd * s.hidden, rng, 0.02),
    )
    add(
      'attn_weights.bin',
      `${p}self_attn.v_proj.weight`,
      [s.kvHeads * hd, s.hidden],
      randomF16(s.kvHeads * hd * s.hidden, rng, 0.02),
    )
    add(
      'attn_weights.bin',
      `${p}self_attn.o_proj.weight`,
      [s.hidden, s.hidden],
      randomF16(s.hidden * s.hidden, rng, 0.02),
    )
    add('attn_weights.bin', `${p}self_attn.q_proj.bias`, [s.hidden], randomF16(s.hidden, rng, 0.02))
    add(
      'attn_weights.bin',
      `${p}self_attn.k_proj.bias`,
      [s.kvHeads * hd],
      randomF16(s.kvHeads * hd, rng, 0.02),
    )
    add(
      'attn_weights.bin',
      `${p}self_attn.v_proj.bias`,
      [s.kvHeads * hd],
      randomF16(s.kvHeads * hd, rng, 0.02),
    )
    add(
      'up_weights.bin',
      `${p}mlp.up_proj.weight`,
      [s.features, s.hidden],
      randomF16(s.features * s.hidden, rng, 0.02),
    )
    add(
      'down_weights.bin',
      `${p}mlp.down_proj.weight`,
      [s.hidden, s.features],
      randomF16(s.hidden * s.features, rng, 0.02),
    )
    add('norms.bin', `${p}input_layernorm.weight`, [s.hidden], ones(s.hidden))
    add('norms.bin', `${p}post_attention_layernorm.weight`, [s.hidden], ones(s.hidden))
  }
  add('norms.bin', 'norm.weight', [s.hidden], ones(s.hidden))
  for (const [file, parts] of files) {
    const total = parts.reduce((a, p) => a + p.length, 0)
    const buf = new Uint8Array(total)
    let o = 0
    for (const p of parts) {
      buf.set(p, o)
      o += p.length
    }
    writeFileSync(join(dir, file), buf)
  }
  const index = JSON.parse(readFileSync(join(dir, FILES.index), 'utf8')) as VindexIndex
  index.extract_level = 'inference'
  index.has_model_weights = true
  index.weights = weights
  writeFileSync(join(dir, FILES.index), JSON.stringify(index, null, 2) + '\n')
}

const tmp = join(ROOT, 'test', '.tmp')
mkdirSync(tmp, { recursive: true })
const work = mkdtempSync(join(tmp, 'infer-bench-'))
const rows: Row[] = []
try {
  for (const dtype of ['f32', 'f16'] as const) {
    const out = join(work, `fixture-${dtype}`)
    await extractVindexDir(FIXTURE, out, { dtype, level: 'inference', workers: 0 })
    await bench(`knowledge-qwen2-6l ${dtype}`, out, rows)
  }
  if (!args['skip-synthetic']) {
    const out = join(work, 'synthetic-0.5b')
    await writeSyntheticVindex(out)
    addInferenceWeights(out)
    await bench('Qwen2.5-0.5B shape f16 (synthetic)', out, rows)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

console.log(`infer() latency, ${RUNS} runs after ${WARMUP} warm-up; ${cpus()[0]?.model ?? ''}\n`)
console.log('| model | prompt tokens | median ms | min ms | prefill tokens/s |')
console.log('|---|---:|---:|---:|---:|')
for (const r of rows)
  console.log(
    `| ${r.model} | ${r.tokens} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${((r.tokens * 1000) / r.median).toFixed(0)} |`,
  )
