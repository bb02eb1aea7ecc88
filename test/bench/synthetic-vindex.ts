/**
 * A deterministic synthetic vindex with Qwen2.5-0.5B's shape (24 layers,
 * hidden 896, 4864 gate features per layer, vocab 151936, f16, down_top_k
 * 10) for benchmarks: the knowledge functions' cost depends on the shape and
 * dtype, not on what the weights mean, so random weights measure the same
 * work as the real model without shipping 480 MB of it.
 *
 * Written with the vindex package's own pieces (DirectorySink hashes every
 * file for index.json's checksums, encodeDownMeta* write down_meta.bin,
 * parseModelConfig/toVindexModelConfig build model_config), one layer or
 * one chunk of embedding rows at a time, so memory stays at a few tens of MB.
 *
 *   npx tsx test/bench/synthetic-vindex.ts <dir>     (writes one and keeps it)
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  EXTRACTOR_VERSION,
  FILES,
  VINDEX_VERSION,
  encodeDownMetaHeader,
  encodeDownMetaLayer,
  f32ToF16Bits,
  layerBandsFor,
  parseIndex,
  parseModelConfig,
  toVindexModelConfig,
  type OutputFile,
  type VindexIndex,
  type VindexLayerInfo,
  type WeightEntry,
  type WrittenFile,
} from '@pglite-infer/vindex'
import { DirectorySink } from '@pglite-infer/vindex/node'

export const QWEN05B_SHAPE = {
  layers: 24,
  hidden: 896,
  features: 4864,
  vocab: 151936,
  heads: 14,
  kvHeads: 2,
  topK: 10,
} as const

export type VindexShape = { [K in keyof typeof QWEN05B_SHAPE]: number }

/** The fixture whose tokenizer the synthetic model borrows (ids < 2595). */
export const TOKENIZER_SOURCE = resolve(
  import.meta.dirname,
  '..',
  'fixtures',
  'models',
  'knowledge-qwen2-6l',
  'tokenizer.json',
)

/** Standard deviation of the weights: the order of magnitude of real gate rows. */
const WEIGHT_STD = 0.02
/** Embedding rows per write: 8192 x 896 x 2 bytes = 14 MiB. */
const EMBED_CHUNK_ROWS = 8192

export interface SyntheticOptions {
  shape?: VindexShape
  seed?: number
  /**
   * Keep f16 subnormals (|x| < 2^-14, about 0.24% of N(0, 0.02) values, as
   * in real weights). false flushes them to zero, for experiments on how
   * much they cost the kernel.
   */
  subnormals?: boolean
  /** Called after each file part is written (stage, done, total). */
  onProgress?: (stage: string, done: number, total: number) => void
}

export interface SyntheticVindex {
  dir: string
  index: VindexIndex
  /** Total bytes written. */
  bytes: number
  seconds: number
}

/** xorshift32: fast, deterministic, good enough for benchmark weights. */
export class XorShift32 {
  constructor(private state: number) {
    if (this.state === 0) this.state = 0x9e3779b9
  }
  next(): number {
    let x = this.state
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.state = x >>> 0
    return this.state
  }
  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.next() + 0.5) / 4294967296
  }
}

/**
 * 65536 f16 samples of N(0, std) (Box-Muller). Filling a tensor is then one
 * xorshift per two values plus two table lookups: calling f32ToF16Bits per
 * element would make generating 240 M values take tens of seconds.
 */
function normalF16Table(rng: XorShift32, std: number, subnormals: boolean): Uint16Array {
  const table = new Uint16Array(65536)
  for (let i = 0; i < table.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(rng.uniform())) * std
    const t = 2 * Math.PI * rng.uniform()
    table[i] = f32ToF16Bits(r * Math.cos(t))
    table[i + 1] = f32ToF16Bits(r * Math.sin(t))
  }
  // exponent bits 0 = subnormal: keep the sign, zero the magnitude
  if (!subnormals)
    for (let i = 0; i < table.length; i++)
      if ((table[i]! & 0x7c00) === 0) table[i] = table[i]! & 0x8000
  return table
}

/** Fills `out` (even length) with f16 bits drawn from `table`. */
function fillF16(out: Uint16Array, table: Uint16Array, rng: XorShift32): void {
  for (let i = 0; i < out.length; i += 2) {
    const x = rng.next()
    out[i] = table[x & 0xffff]!
    out[i + 1] = table[x >>> 16]!
  }
}

/**
 * Per feature k token ids below `idLimit` and logits in descending order.
 * Ids stay inside the borrowed tokenizer's vocabulary so concept names
 * decode to real tokens (an id it does not know decodes to "", which
 * describe() would drop, doing less work than on a real model).
 */
function randomDownMeta(
  features: number,
  topK: number,
  idLimit: number,
  rng: XorShift32,
): { ids: Uint32Array; logits: Float32Array } {
  const ids = new Uint32Array(features * topK)
  const logits = new Float32Array(features * topK)
  for (let f = 0; f < features; f++) {
    let logit = 4 + 8 * rng.uniform()
    for (let i = 0; i < topK; i++) {
      ids[f * topK + i] = rng.next() % idLimit
      logits[f * topK + i] = logit
      logit -= 0.05 + 0.5 * rng.uniform()
    }
  }
  return { ids, logits }
}

/** Number of ids the tokenizer can decode: its vocab plus added tokens. */
function tokenizerIdLimit(json: Uint8Array): number {
  const t = JSON.parse(new TextDecoder().decode(json)) as {
    model: { vocab: Record<string, number> }
    added_tokens?: { id: number }[]
  }
  const ids = [...Object.values(t.model.vocab), ...(t.added_tokens ?? []).map((a) => a.id)]
  return Math.max(...ids) + 1
}

/** A HuggingFace config.json for the shape, parsed as the extractor would. */
function modelConfig(shape: VindexShape): ReturnType<typeof parseModelConfig> {
  return parseModelConfig({
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_size: shape.hidden,
    intermediate_size: shape.features,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    vocab_size: shape.vocab,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
  })
}

/** Writes the synthetic vindex into `dir` (created; existing files replaced). */
export async function writeSyntheticVindex(
  dir: string,
  options: SyntheticOptions = {},
): Promise<SyntheticVindex> {
  const started = performance.now()
  const shape = options.shape ?? QWEN05B_SHAPE
  const progress = options.onProgress ?? (() => {})
  const rng = new XorShift32(options.seed ?? 20250101)
  const table = normalF16Table(rng, WEIGHT_STD, options.subnormals ?? true)
  const sink = new DirectorySink(dir)
  const tokenizer = readFileSync(TOKENIZER_SOURCE)
  const files: WrittenFile[] = []

  files.push(
    await writeEmbeddings(await sink.create(FILES.embeddings), shape, table, rng, progress),
  )
  const gateOut = await sink.create(FILES.gateVectors)
  const metaOut = await sink.create(FILES.downMeta)
  const layers = await writeLayers(
    gateOut,
    metaOut,
    shape,
    table,
    rng,
    tokenizerIdLimit(tokenizer),
    progress,
  )
  files.push(await gateOut.close(), await metaOut.close())
  const tokOut = await sink.create(FILES.tokenizer)
  await tokOut.write(tokenizer)
  files.push(await tokOut.close())

  const index = buildIndex(shape, layers, files)
  const text = JSON.stringify(index, null, 2) + '\n'
  parseIndex(text) // the loader's own validation: fail here, not inside SQL
  const indexOut = await sink.create(FILES.index)
  await indexOut.write(new TextEncoder().encode(text))
  files.push(await indexOut.close())
  return {
    dir,
    index,
    bytes: files.reduce((s, f) => s + f.size, 0),
    seconds: (performance.now() - started) / 1000,
  }
}

async function writeEmbeddings(
  out: OutputFile,
  shape: VindexShape,
  table: Uint16Array,
  rng: XorShift32,
  progress: (stage: string, done: number, total: number) => void,
): Promise<WrittenFile> {
  const chunk = new Uint16Array(EMBED_CHUNK_ROWS * shape.hidden)
  for (let row = 0; row < shape.vocab; row += EMBED_CHUNK_ROWS) {
    const n = Math.min(EMBED_CHUNK_ROWS, shape.vocab - row)
    const part = chunk.subarray(0, n * shape.hidden)
    fillF16(part, table, rng)
    await out.write(new Uint8Array(part.buffer, 0, part.byteLength))
    progress('embeddings', row + n, shape.vocab)
  }
  return out.close()
}

/** Per layer: one [features x hidden] f16 gate block and its down_meta records. */
async function writeLayers(
  gateOut: OutputFile,
  metaOut: OutputFile,
  shape: VindexShape,
  table: Uint16Array,
  rng: XorShift32,
  idLimit: number,
  progress: (stage: string, done: number, total: number) => void,
): Promise<VindexLayerInfo[]> {
  const block = new Uint16Array(shape.features * shape.hidden)
  const layers: VindexLayerInfo[] = []
  await metaOut.write(encodeDownMetaHeader(shape.layers, shape.topK))
  for (let layer = 0; layer < shape.layers; layer++) {
    fillF16(block, table, rng)
    await gateOut.write(new Uint8Array(block.buffer))
    layers.push({
      layer,
      num_features: shape.features,
      offset: layer * block.byteLength,
      length: block.byteLength,
    })
    const { ids, logits } = randomDownMeta(
      shape.features,
      shape.topK,
      Math.min(idLimit, shape.vocab),
      rng,
    )
    await metaOut.write(encodeDownMetaLayer(ids, logits, shape.topK))
    progress('layers', layer + 1, shape.layers)
  }
  return layers
}

/** index.json with the fields and order extractVindex writes. */
function buildIndex(
  shape: VindexShape,
  layers: VindexLayerInfo[],
  files: WrittenFile[],
): VindexIndex {
  const cfg = modelConfig(shape)
  return {
    version: VINDEX_VERSION,
    model: 'synthetic-qwen2.5-0.5b-shape',
    family: cfg.family,
    source: {
      huggingface_repo: null,
      huggingface_revision: null,
      safetensors_sha256: null,
      extracted_at: new Date().toISOString(),
      larql_version: EXTRACTOR_VERSION,
    },
    checksums: Object.fromEntries(files.map((f) => [f.name, f.sha256])),
    num_layers: shape.layers,
    hidden_size: shape.hidden,
    intermediate_size: shape.features,
    vocab_size: shape.vocab,
    embed_scale: cfg.embedScale,
    extract_level: 'browse',
    dtype: 'f16',
    quant: 'none',
    layer_bands: layerBandsFor(cfg.family, shape.layers),
    layers,
    down_top_k: shape.topK,
    has_model_weights: false,
    model_config: toVindexModelConfig(cfg),
  }
}

// Standalone: write one into the directory given and keep it.
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
export function addInferenceWeights(dir: string, shape: VindexShape = QWEN05B_SHAPE): void {
  const s = shape
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

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2]
  if (!dir) {
    console.error('usage: npx tsx test/bench/synthetic-vindex.ts <dir>')
    process.exit(2)
  }
  const v = await writeSyntheticVindex(resolve(dir), {
    onProgress: (stage, done, total) => process.stderr.write(`\r${stage} ${done}/${total}   `),
  })
  process.stderr.write('\n')
  console.log(`${v.dir}: ${(v.bytes / 1e6).toFixed(0)} MB in ${v.seconds.toFixed(1)} s`)
}

/** Exactly `n` tokens of the fixture's tokenizer (Qwen2: no special tokens added). */
export async function promptOfTokens(n: number): Promise<string> {
  const { loadTokenizer } = await import('@pglite-infer/vindex')
  const tok = loadTokenizer(readFileSync(TOKENIZER_SOURCE, 'utf8'))
  const words =
    'The capital of France is Paris. The capital of Japan is Tokyo. The currency of Germany is the euro.'
  const ids: number[] = []
  while (ids.length < n) ids.push(...tok.encode(words, { add_special_tokens: false }).ids)
  const out = tok.decode(ids.slice(0, n))
  if (tok.encode(out, { add_special_tokens: true }).ids.length !== n)
    throw new Error(`prompt is not ${n} tokens`)
  return out
}
