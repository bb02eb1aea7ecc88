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
import { loadTokenizer } from '@pglite-infer/vindex'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { testPgInfer as createPgInfer } from '../helpers/db.js'
import { addInferenceWeights, writeSyntheticVindex } from './synthetic-vindex.js'

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
