import type { FileSet } from './bytes.js'
import { readAll } from './bytes.js'
import { parseModelConfig, type ModelConfig } from './config.js'
import { encodeDownMetaHeader, encodeDownMetaLayer } from './downmeta.js'
import { encodeFromF32, assertLittleEndian, type StorageDtype } from './dtype.js'
import { InlineEngine, type DownMetaEngine } from './engine.js'
import { VindexError } from './errors.js'
import {
  align4,
  EXTRACT_LEVELS,
  FILES,
  layerBandsFor,
  levelAtLeast,
  VINDEX_VERSION,
  type ExtractLevel,
  type VindexIndex,
  type VindexLayerInfo,
  type WeightEntry,
} from './format.js'
import { toVindexModelConfig } from './modelconfig.js'
import { SafetensorsCheckpoint } from './safetensors.js'
import type { OutputFile, OutputSink, WrittenFile } from './sink.js'
import {
  downRef,
  embedKey,
  gateRef,
  globalWeightRefs,
  layerWeightRefs,
  type WeightRef,
} from './tensors.js'

export const EXTRACTOR_VERSION = 'pglite-infer-vindex/0.1.0'

export interface ExtractOptions {
  /** browse (default), attention, inference or all. */
  level?: ExtractLevel
  /** Storage dtype of every float file: f16 (default) or f32. */
  dtype?: StorageDtype
  /** Tokens kept per feature in down_meta.bin (default 10). */
  topK?: number
  /** index.json "model" (default: "unknown"). */
  modelName?: string
  /** Extract only the first N layers (previews, benchmarks). */
  maxLayers?: number
  /** How down_meta is computed (default: on this thread). */
  engine?: DownMetaEngine
  onProgress?: (p: ExtractProgress) => void
}

export interface ExtractProgress {
  stage: 'embeddings' | 'layers' | 'weights' | 'files'
  done: number
  total: number
  /** What was just finished, e.g. "layer 3" or a tensor key. */
  detail: string
}

export interface ExtractResult {
  index: VindexIndex
  files: WrittenFile[]
  seconds: number
  /** Tensor bytes read from the checkpoint. */
  bytesRead: number
}

/** Rows per chunk when streaming big tensors: keeps reads around 8 MiB. */
const CHUNK_BYTES = 8 * 1024 * 1024

/**
 * Extracts a vindex from a HuggingFace checkpoint (config.json,
 * *.safetensors, tokenizer.json). Tensors are read by ranges and written as
 * they are converted, so peak memory is the f32 embedding (which down_meta
 * needs whole) plus one layer's down matrix.
 */
export async function extractVindex(
  checkpoint: FileSet,
  sink: OutputSink,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  assertLittleEndian()
  const started = Date.now()
  const opts = resolveOptions(options)
  const cfg = await readConfig(checkpoint, opts.maxLayers)
  const tokenizerBytes = await requiredFile(
    checkpoint,
    FILES.tokenizer,
    'copy tokenizer.json into the model directory',
  )
  const st = await SafetensorsCheckpoint.open(checkpoint)
  const ctx: Ctx = { cfg, st, sink, opts, files: [], engine: opts.engine }
  try {
    const { embed, vocab } = await writeEmbeddings(ctx)
    const layers = await writeLayers(ctx, embed, vocab)
    await copyFile(ctx, FILES.tokenizer, tokenizerBytes)
    await copyOptional(ctx, checkpoint, FILES.tokenizerConfig)
    await copyOptional(ctx, checkpoint, FILES.generationConfig)
    const weights = levelAtLeast(opts.level, 'attention') ? await writeWeights(ctx) : []
    const index = buildIndex(ctx, vocab, layers, weights)
    await writeIndex(ctx, index)
    return {
      index,
      files: ctx.files,
      seconds: (Date.now() - started) / 1000,
      bytesRead: st.bytesRead,
    }
  } finally {
    if (!options.engine) await ctx.engine.close()
  }
}

interface ResolvedOptions {
  level: ExtractLevel
  dtype: StorageDtype
  topK: number
  modelName: string
  maxLayers: number | undefined
  engine: DownMetaEngine
  onProgress: (p: ExtractProgress) => void
}

interface Ctx {
  cfg: ModelConfig
  st: SafetensorsCheckpoint
  sink: OutputSink
  opts: ResolvedOptions
  files: WrittenFile[]
  engine: DownMetaEngine
}

function resolveOptions(o: ExtractOptions): ResolvedOptions {
  const level = o.level ?? 'browse'
  if (!EXTRACT_LEVELS.includes(level)) {
    throw new VindexError('INVALID_ARGUMENT', `unknown extract level ${level}`, {
      expected: EXTRACT_LEVELS.join('|'),
      found: level,
    })
  }
  const dtype = o.dtype ?? 'f16'
  if (dtype !== 'f16' && dtype !== 'f32') {
    throw new VindexError('UNKNOWN_DTYPE', `unknown storage dtype ${String(dtype)}`, {
      expected: 'f16|f32',
      found: dtype,
    })
  }
  const topK = o.topK ?? 10
  if (!Number.isInteger(topK) || topK < 1) {
    throw new VindexError('INVALID_ARGUMENT', 'top-k must be a positive integer', {
      expected: '>= 1',
      found: topK,
    })
  }
  return {
    level,
    dtype,
    topK,
    modelName: o.modelName ?? 'unknown',
    maxLayers: o.maxLayers,
    engine: o.engine ?? new InlineEngine(),
    onProgress: o.onProgress ?? (() => {}),
  }
}

async function readConfig(files: FileSet, maxLayers: number | undefined): Promise<ModelConfig> {
  const text = new TextDecoder().decode(
    await requiredFile(files, 'config.json', 'point at a HuggingFace model directory'),
  )
  let json: Record<string, unknown>
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new VindexError('BAD_JSON', 'not valid JSON', { file: 'config.json' })
  }
  const cfg = parseModelConfig(json)
  if (maxLayers !== undefined && maxLayers < cfg.numLayers) {
    if (!Number.isInteger(maxLayers) || maxLayers < 1) {
      throw new VindexError('INVALID_ARGUMENT', 'layer count must be a positive integer', {
        found: maxLayers,
      })
    }
    return { ...cfg, numLayers: maxLayers, layerTypes: cfg.layerTypes?.slice(0, maxLayers) ?? null }
  }
  return cfg
}

async function requiredFile(files: FileSet, name: string, hint: string): Promise<Uint8Array> {
  const src = await files.open(name)
  if (!src) throw new VindexError('MISSING_FILE', 'required file is missing', { file: name, hint })
  return readAll(src)
}

/**
 * Streams the embedding into embeddings.bin and into one f32 buffer that
 * down_meta multiplies against (allocated by the engine so workers can
 * share it).
 */
async function writeEmbeddings(ctx: Ctx): Promise<{ embed: Float32Array; vocab: number }> {
  const key = embedKey(ctx.cfg)
  const info = ctx.st.info(key)
  const [vocab, hidden] = info.shape as [number, number]
  expectDim(info.file, `${key} hidden size`, ctx.cfg.hiddenSize, hidden)
  const embed = ctx.engine.allocate(vocab * hidden)
  const out = await ctx.sink.create(FILES.embeddings)
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / (hidden * 4)))
  for (let row = 0; row < vocab; row += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, vocab - row)
    const chunk = embed.subarray(row * hidden, (row + n) * hidden)
    await ctx.st.readRowsF32(key, row, n, chunk)
    await out.write(encodeFromF32(chunk, ctx.opts.dtype))
    ctx.opts.onProgress({ stage: 'embeddings', done: row + n, total: vocab, detail: key })
  }
  ctx.files.push(await out.close())
  return { embed, vocab }
}

/** Per layer: gate rows -> gate_vectors.bin, down_meta records -> down_meta.bin. */
async function writeLayers(
  ctx: Ctx,
  embed: Float32Array,
  vocab: number,
): Promise<VindexLayerInfo[]> {
  const { cfg, opts } = ctx
  const gateOut = await ctx.sink.create(FILES.gateVectors)
  const metaOut = await ctx.sink.create(FILES.downMeta)
  await metaOut.write(encodeDownMetaHeader(cfg.numLayers, opts.topK))
  const layers: VindexLayerInfo[] = []
  let offset = 0
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const length = await writeGate(ctx, gateOut, layer)
    layers.push({
      layer,
      num_features: length / (cfg.hiddenSize * bytesPer(opts.dtype)),
      offset,
      length,
    })
    offset += length
    const down = await featureMajorDown(ctx, layer, layers[layer]!.num_features)
    const res = await ctx.engine.topK({
      embed,
      vocab,
      hidden: cfg.hiddenSize,
      down,
      features: layers[layer]!.num_features,
      k: opts.topK,
    })
    await metaOut.write(encodeDownMetaLayer(res.ids, res.logits, opts.topK))
    opts.onProgress({
      stage: 'layers',
      done: layer + 1,
      total: cfg.numLayers,
      detail: `layer ${layer}`,
    })
  }
  ctx.files.push(await gateOut.close(), await metaOut.close())
  return layers
}

function bytesPer(dtype: StorageDtype): number {
  return dtype === 'f32' ? 4 : 2
}

/** Writes one layer's [features x hidden] gate block; returns its byte length. */
async function writeGate(ctx: Ctx, out: OutputFile, layer: number): Promise<number> {
  const ref = gateRef(ctx.cfg, layer)
  const info = ctx.st.info(ref.key)
  const hidden = ctx.cfg.hiddenSize
  const inDim = ref.transpose ? info.shape[0]! : info.shape[1]!
  expectDim(info.file, `${ref.key} input size`, hidden, inDim)
  if (ref.transpose) {
    const rows = transpose(await ctx.st.readF32(ref.key), info.shape[0]!, info.shape[1]!)
    const bytes = encodeFromF32(rows, ctx.opts.dtype)
    await out.write(bytes)
    return bytes.byteLength
  }
  const features = info.shape[0]!
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / (hidden * 4)))
  let length = 0
  for (let row = 0; row < features; row += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, features - row)
    const bytes = encodeFromF32(await ctx.st.readRowsF32(ref.key, row, n), ctx.opts.dtype)
    await out.write(bytes)
    length += bytes.byteLength
  }
  return length
}

/** The layer's down vectors as contiguous rows, [features x hidden], f32. */
async function featureMajorDown(ctx: Ctx, layer: number, features: number): Promise<Float32Array> {
  const ref = downRef(ctx.cfg, layer)
  const info = ctx.st.info(ref.key)
  const hidden = ctx.cfg.hiddenSize
  // GPT-2's Conv1D c_proj is already [features x hidden]; Linear down_proj is [hidden x features].
  const expected = ref.transpose ? [features, hidden] : [hidden, features]
  expectDim(info.file, `${ref.key} shape`, expected.join('x'), info.shape.join('x'))
  const data = await ctx.st.readF32(ref.key)
  return ref.transpose ? data : transpose(data, hidden, features)
}

/** Row-major [rows x cols] -> [cols x rows], blocked for cache locality. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length)
  const B = 32
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols)
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[r * cols + c]!
      }
    }
  }
  return out
}

function expectDim(file: string, what: string, expected: unknown, found: unknown): void {
  if (expected !== found) {
    throw new VindexError('DIMENSION_MISMATCH', `${what} disagrees with config.json`, {
      file,
      expected,
      found,
      hint: 'the safetensors do not belong to this config.json',
    })
  }
}

async function copyFile(ctx: Ctx, name: string, bytes: Uint8Array): Promise<void> {
  const out = await ctx.sink.create(name)
  await out.write(bytes)
  ctx.files.push(await out.close())
}

async function copyOptional(ctx: Ctx, files: FileSet, name: string): Promise<void> {
  const src = await files.open(name)
  if (src) await copyFile(ctx, name, await readAll(src))
}

/** Which weight files a level writes (LARQL tiers). */
function refsForLevel(ctx: Ctx): WeightRef[] {
  const { cfg, opts } = ctx
  const wantsFfn = levelAtLeast(opts.level, 'inference')
  const keep = (r: WeightRef): boolean =>
    wantsFfn ||
    r.file === 'attn_weights.bin' ||
    r.file === 'norms.bin' ||
    r.file === 'position_embeddings.bin'
  const refs: WeightRef[] = []
  for (let l = 0; l < cfg.numLayers; l++) refs.push(...layerWeightRefs(cfg, l).filter(keep))
  refs.push(...globalWeightRefs(cfg).filter(keep))
  if (opts.level === 'all') refs.push(...extraRefs(ctx, refs))
  return refs
}

/** Buffers HuggingFace saves that are not weights (causal masks, RoPE tables). */
const NOT_WEIGHTS = [/\.attn\.bias$/, /\.attn\.masked_bias$/, /rotary_emb\.inv_freq$/]

/** Level "all": every remaining checkpoint tensor, so nothing is lost. */
function extraRefs(ctx: Ctx, written: WeightRef[]): WeightRef[] {
  const covered = new Set(written.map((r) => r.key))
  covered.add(embedKey(ctx.cfg))
  for (let l = 0; l < ctx.cfg.numLayers; l++) covered.add(gateRef(ctx.cfg, l).key)
  const layerOf = (name: string): number => Number(/^(?:layers|h)\.(\d+)\./.exec(name)?.[1] ?? -1)
  return ctx.st
    .names()
    .filter((n) => !covered.has(n) && !NOT_WEIGHTS.some((re) => re.test(n)))
    .filter((n) => layerOf(n) < ctx.cfg.numLayers)
    .sort()
    .map((key) => ({ key, transpose: false, file: 'extra_weights.bin' as const }))
}

/**
 * Writes the inference weights: each tensor f32-decoded, transposed to
 * [out, in] when stored as Conv1D, encoded to the storage dtype, appended to
 * its file at a 4-byte aligned offset.
 */
async function writeWeights(ctx: Ctx): Promise<WeightEntry[]> {
  const refs = refsForLevel(ctx)
  const outs = new Map<string, { file: OutputFile; offset: number }>()
  const entries: WeightEntry[] = []
  for (const [i, ref] of refs.entries()) {
    if (ref.optional && !ctx.st.has(ref.key)) continue
    const entry = await writeWeight(ctx, ref, outs)
    entries.push(entry)
    ctx.opts.onProgress({ stage: 'weights', done: i + 1, total: refs.length, detail: ref.key })
  }
  for (const { file } of outs.values()) ctx.files.push(await file.close())
  const manifest = new TextEncoder().encode(JSON.stringify(entries, null, 2) + '\n')
  await copyFile(ctx, FILES.weightManifest, manifest)
  return entries
}

async function writeWeight(
  ctx: Ctx,
  ref: WeightRef,
  outs: Map<string, { file: OutputFile; offset: number }>,
): Promise<WeightEntry> {
  const info = ctx.st.info(ref.key)
  let data = await ctx.st.readF32(ref.key)
  let shape = info.shape.slice()
  if (ref.transpose && shape.length === 2) {
    data = transpose(data, shape[0]!, shape[1]!)
    shape = [shape[1]!, shape[0]!]
  }
  let out = outs.get(ref.file)
  if (!out) {
    out = { file: await ctx.sink.create(ref.file), offset: 0 }
    outs.set(ref.file, out)
  }
  const bytes = encodeFromF32(data, ctx.opts.dtype)
  await out.file.write(bytes)
  const padded = align4(bytes.byteLength)
  if (padded > bytes.byteLength) await out.file.write(new Uint8Array(padded - bytes.byteLength))
  const entry: WeightEntry = {
    key: ref.key,
    kind: shape.length === 1 ? 'vector' : 'tensor',
    shape,
    offset: out.offset,
    length: bytes.byteLength,
    file: ref.file,
  }
  out.offset += padded
  return entry
}

function buildIndex(
  ctx: Ctx,
  vocab: number,
  layers: VindexLayerInfo[],
  weights: WeightEntry[],
): VindexIndex {
  const { cfg, opts } = ctx
  const index: VindexIndex = {
    version: VINDEX_VERSION,
    model: opts.modelName,
    family: cfg.family,
    source: {
      huggingface_repo: null,
      huggingface_revision: null,
      safetensors_sha256: null,
      extracted_at: new Date().toISOString(),
      larql_version: EXTRACTOR_VERSION,
    },
    checksums: Object.fromEntries(ctx.files.map((f) => [f.name, f.sha256])),
    num_layers: cfg.numLayers,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    vocab_size: vocab,
    embed_scale: cfg.embedScale,
    extract_level: opts.level,
    dtype: opts.dtype,
    quant: 'none',
    layer_bands: layerBandsFor(cfg.family, cfg.numLayers),
    layers,
    down_top_k: opts.topK,
    has_model_weights: weights.length > 0,
    model_config: toVindexModelConfig(cfg),
  }
  if (weights.length > 0) index.weights = weights
  return index
}

async function writeIndex(ctx: Ctx, index: VindexIndex): Promise<void> {
  const out = await ctx.sink.create(FILES.index)
  await out.write(new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n'))
  ctx.files.push(await out.close())
  ctx.opts.onProgress({
    stage: 'files',
    done: ctx.files.length,
    total: ctx.files.length,
    detail: FILES.index,
  })
}
