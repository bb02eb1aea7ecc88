import { SUPPORTED_FAMILIES } from './config.js'
import { VindexError } from './errors.js'
import {
  EXTRACT_LEVELS,
  FILES,
  levelAtLeast,
  VINDEX_VERSION,
  type VindexIndex,
  type VindexLayerInfo,
  type WeightEntry,
} from './format.js'

const F = FILES.index

/** Parses and checks index.json; every defect is a typed error naming the field. */
export function parseIndex(text: string): VindexIndex {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new VindexError('BAD_JSON', `not valid JSON: ${(e as Error).message}`, {
      file: F,
      hint: 're-extract the vindex',
    })
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new VindexError('BAD_JSON', 'top level is not a JSON object', { file: F })
  }
  const idx = raw as VindexIndex
  checkScalars(idx)
  checkLayers(idx)
  checkLayerBands(idx)
  checkChecksums(idx)
  checkModelConfig(idx)
  if (idx.weights !== undefined) checkWeightEntries(idx.weights, F, bytesPerElement(idx))
  return idx
}

/** Upper bounds no real model reaches; past them a vindex is crafted or corrupt. */
const LIMITS = {
  num_layers: 4096,
  hidden_size: 1 << 16,
  intermediate_size: 1 << 20,
  vocab_size: 1 << 24,
  down_top_k: 1024,
  heads: 4096,
  head_dim: 4096,
  positions: 1 << 24,
} as const

/**
 * Files a vindex lists by name (checksums, weight entries) are plain names
 * inside the vindex directory: never a path, never a hidden file.
 */
export function isPlainFileName(name: unknown): name is string {
  return typeof name === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/.test(name)
}

const ENTRY_SHAPE = '{key, file, offset: integer >= 0, length, shape: 1-4 positive integers}'

/** Files whose layout index.json fixes: a weight entry must not point into them. */
const BROWSE_FILES: ReadonlySet<string> = new Set([
  FILES.index,
  FILES.gateVectors,
  FILES.embeddings,
  FILES.downMeta,
  FILES.tokenizer,
  FILES.tokenizerConfig,
  FILES.weightManifest,
])

function checkLayerBands(idx: VindexIndex): void {
  const bands = idx.layer_bands
  if (bands === undefined || bands === null) return
  for (const key of ['syntax', 'knowledge', 'output'] as const) {
    const b = (bands as unknown as Record<string, unknown>)[key]
    if (
      !Array.isArray(b) ||
      b.length !== 2 ||
      !b.every((x) => Number.isInteger(x) && x >= 0 && x < idx.num_layers) ||
      b[0] > b[1]
    )
      throw invalid(`layer_bands.${key}`, `[first, last] layers within 0..${idx.num_layers - 1}`, b)
  }
}

function checkChecksums(idx: VindexIndex): void {
  const sums = idx.checksums
  if (sums === undefined || sums === null) return
  if (typeof sums !== 'object' || Array.isArray(sums)) throw invalid('checksums', 'object', sums)
  for (const [name, hex] of Object.entries(sums)) {
    if (!isPlainFileName(name) || name === FILES.index)
      throw invalid('checksums', 'plain file names of the vindex (not index.json)', name)
    if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex))
      throw invalid(`checksums["${name}"]`, 'sha256 as 64 hex digits', hex)
  }
}

type Check = (v: unknown) => boolean
const posInt =
  (max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= max
const posFinite: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0
/** RoPE bases of real models run from 1e4 to about 1e7; far outside is a crafted config. */
const ropeBase: Check = (v) => typeof v === 'number' && v >= 1 && v <= 1e12
const isBool: Check = (v) => typeof v === 'boolean'
const isString: Check = (v) => typeof v === 'string' && v.length <= 256
const oneOf =
  (...values: unknown[]): Check =>
  (v) =>
    values.includes(v)

/** Type and range of each model_config field a vindex may set (absent: the family's default). */
const CONFIG_FIELDS: Record<string, [Check, string]> = {
  model_type: [isString, 'string'],
  head_dim: [posInt(LIMITS.head_dim), `integer 1..${LIMITS.head_dim}`],
  num_q_heads: [posInt(LIMITS.heads), `integer 1..${LIMITS.heads}`],
  num_kv_heads: [posInt(LIMITS.heads), `integer 1..${LIMITS.heads}`],
  rope_base: [(v) => v === 0 || ropeBase(v), 'number in 1..1e12 (0: none)'],
  rope_local_base: [(v) => v === null || ropeBase(v), 'number in 1..1e12, or null'],
  sliding_window: [(v) => v === null || posInt(LIMITS.positions)(v), 'positive integer or null'],
  sliding_window_pattern: [
    (v) => v === null || posInt(LIMITS.num_layers)(v),
    'positive integer or null',
  ],
  norm_eps: [(v) => posFinite(v) && (v as number) < 1, 'number in (0, 1)'],
  attention_bias: [isBool, 'boolean'],
  hidden_act: [isString, 'string'],
  tie_word_embeddings: [isBool, 'boolean'],
  norm_type: [oneOf('rmsnorm', 'layernorm'), "'rmsnorm' or 'layernorm'"],
  norm_weight_offset: [oneOf(0, 1), '0 or 1'],
  position_embedding: [oneOf('rope', 'learned'), "'rope' or 'learned'"],
  qk_norm: [isBool, 'boolean'],
  attention_output_bias: [isBool, 'boolean'],
  mlp_bias: [isBool, 'boolean'],
  sandwich_norms: [isBool, 'boolean'],
  ffn_type: [oneOf('gated', 'plain'), "'gated' or 'plain'"],
  max_position_embeddings: [
    (v) => v === null || posInt(LIMITS.positions)(v),
    `integer 1..${LIMITS.positions} or null`,
  ],
  query_pre_attn_scalar: [(v) => v === null || posFinite(v), 'positive number or null'],
  attn_logit_softcapping: [(v) => v === null || posFinite(v), 'positive number or null'],
  final_logit_softcapping: [(v) => v === null || posFinite(v), 'positive number or null'],
}

/**
 * model_config: every field's type and range, then (for vindexes with
 * inference weights) that the architecture is one the forward pass can run
 * with the shapes index.json gives. A crafted config must fail here, never
 * send the forward pass outside its buffers.
 */
export function checkModelConfig(idx: VindexIndex): void {
  if (
    levelAtLeast(idx.extract_level, 'attention') &&
    !(SUPPORTED_FAMILIES as readonly string[]).includes(idx.family)
  )
    throw new VindexError('UNSUPPORTED_ARCHITECTURE', 'no forward pass for this model family', {
      file: F,
      expected: SUPPORTED_FAMILIES.join(', '),
      found: idx.family,
      hint: 'register it at extract level browse',
    })
  const mc = idx.model_config
  if (mc === undefined || mc === null) return
  if (typeof mc !== 'object' || Array.isArray(mc)) throw invalid('model_config', 'object', mc)
  const raw = mc as unknown as Record<string, unknown>
  for (const [key, [ok, expected]] of Object.entries(CONFIG_FIELDS)) {
    if (raw[key] === undefined) continue
    if (!ok(raw[key])) throw invalid(`model_config.${key}`, expected, raw[key])
  }
  const tokenOk = (v: unknown): boolean =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) < idx.vocab_size
  for (const key of ['bos_token_id', 'eos_token_id'] as const) {
    const v = raw[key]
    if (v === undefined || v === null) continue
    if (!(Array.isArray(v) ? v.length > 0 && v.every(tokenOk) : tokenOk(v)))
      throw invalid(`model_config.${key}`, `token id(s) in 0..${idx.vocab_size - 1}`, v)
  }
  if (raw.layer_types !== undefined && raw.layer_types !== null) {
    const t = raw.layer_types
    if (!Array.isArray(t) || t.length !== idx.num_layers || !t.every((x) => typeof x === 'string'))
      throw invalid('model_config.layer_types', `${idx.num_layers} strings`, t)
  }
  if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) {
    const rs = raw.rope_scaling as Record<string, unknown>
    if (typeof rs !== 'object' || Array.isArray(rs) || typeof rs.rope_type !== 'string')
      throw invalid('model_config.rope_scaling', 'object with rope_type', rs)
    // HF's rope_init_fn: factors of 1 and more, a positive integer original context
    const ranges: [string, Check, string][] = [
      ['factor', (v) => typeof v === 'number' && v >= 1 && v <= 1e4, 'number in 1..1e4'],
      ['low_freq_factor', (v) => posFinite(v) && (v as number) <= 1e4, 'number in (0, 1e4]'],
      ['high_freq_factor', (v) => posFinite(v) && (v as number) <= 1e4, 'number in (0, 1e4]'],
      [
        'original_max_position_embeddings',
        posInt(LIMITS.positions),
        `integer 1..${LIMITS.positions}`,
      ],
    ]
    for (const [k, ok, rule] of ranges)
      if (rs[k] !== undefined && !ok(rs[k]))
        throw invalid(`model_config.rope_scaling.${k}`, rule, rs[k])
    if (
      typeof rs.low_freq_factor === 'number' &&
      typeof rs.high_freq_factor === 'number' &&
      rs.high_freq_factor <= rs.low_freq_factor
    )
      throw invalid(
        'model_config.rope_scaling.high_freq_factor',
        'more than low_freq_factor',
        rs.high_freq_factor,
      )
  }
  if (levelAtLeast(idx.extract_level, 'attention')) checkArchitecture(idx, raw)
}

/** The shape rules of each family's forward pass (extension/src/forward.c). */
function checkArchitecture(idx: VindexIndex, raw: Record<string, unknown>): void {
  const gpt2 = idx.family === 'gpt2'
  const heads = (raw.num_q_heads as number | undefined) ?? 1
  const kvHeads = (raw.num_kv_heads as number | undefined) ?? heads
  const headDim = (raw.head_dim as number | undefined) ?? idx.hidden_size / heads
  const learned = (raw.position_embedding ?? (gpt2 ? 'learned' : 'rope')) === 'learned'
  const plain = (raw.ffn_type ?? (gpt2 ? 'plain' : 'gated')) === 'plain'
  const layernorm = (raw.norm_type ?? (gpt2 ? 'layernorm' : 'rmsnorm')) === 'layernorm'
  const fail = (field: string, rule: string, found: unknown): VindexError =>
    invalid(`model_config.${field}`, rule, found)
  // Gemma 2/3 norm around the MLP too (sandwich); no other family does
  const gemma = idx.family === 'gemma2' || idx.family === 'gemma3'
  // and scale embeddings by sqrt(hidden) (HF's normalizer); the others by 1
  const scale = gemma ? Math.sqrt(idx.hidden_size) : 1
  if (Math.abs(idx.embed_scale - scale) > 1e-3 * scale)
    throw invalid('embed_scale', `${scale} for a ${idx.family} model`, idx.embed_scale)
  if (raw.sandwich_norms !== undefined && raw.sandwich_norms !== gemma)
    throw fail('sandwich_norms', `${gemma} for a ${idx.family} model`, raw.sandwich_norms)
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0)
    throw fail('head_dim', 'a positive even integer', headDim)
  if (heads % kvHeads !== 0)
    throw fail('num_kv_heads', `a divisor of num_q_heads (${heads})`, kvHeads)
  if (gpt2) {
    // GPT-2's fused c_attn is [3 x hidden, hidden]: heads x head_dim must be hidden
    if (!learned)
      throw fail('position_embedding', "'learned' for a gpt2 model", raw.position_embedding)
    if (!plain) throw fail('ffn_type', "'plain' for a gpt2 model", raw.ffn_type)
    if (!layernorm) throw fail('norm_type', "'layernorm' for a gpt2 model", raw.norm_type)
    if (raw.qk_norm === true) throw fail('qk_norm', 'false for a gpt2 model', true)
    if (heads * headDim !== idx.hidden_size || kvHeads !== heads)
      throw fail(
        'head_dim',
        `num_q_heads x head_dim = hidden_size (${idx.hidden_size}) and num_kv_heads = num_q_heads for a gpt2 model`,
        { heads, kvHeads, headDim },
      )
    if (!posInt(LIMITS.positions)(raw.max_position_embeddings))
      throw fail(
        'max_position_embeddings',
        'the rows of a gpt2 position table',
        raw.max_position_embeddings,
      )
  } else {
    if (learned)
      throw fail('position_embedding', `'rope' for a ${idx.family} model`, raw.position_embedding)
    if (plain) throw fail('ffn_type', `'gated' for a ${idx.family} model`, raw.ffn_type)
    if (layernorm) throw fail('norm_type', `'rmsnorm' for a ${idx.family} model`, raw.norm_type)
    if (raw.rope_base === 0) throw fail('rope_base', 'a positive number', 0)
  }
}

function checkScalars(idx: VindexIndex): void {
  if (idx.version !== VINDEX_VERSION) {
    throw new VindexError('UNSUPPORTED_VERSION', 'unsupported vindex version', {
      file: F,
      expected: VINDEX_VERSION,
      found: idx.version ?? 'missing',
      hint: 'extract the model again with this version of pglite-infer',
    })
  }
  if (idx.dtype !== 'f16' && idx.dtype !== 'f32') {
    throw new VindexError('UNKNOWN_DTYPE', 'unknown storage dtype', {
      file: F,
      expected: 'f16 or f32',
      found: idx.dtype ?? 'missing',
    })
  }
  const level = idx.extract_level ?? 'browse'
  if (!EXTRACT_LEVELS.includes(level)) {
    throw invalid('extract_level', EXTRACT_LEVELS.join('|'), level)
  }
  idx.extract_level = level
  for (const key of [
    'num_layers',
    'hidden_size',
    'intermediate_size',
    'vocab_size',
    'down_top_k',
  ] as const) {
    const v = idx[key]
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > LIMITS[key])
      throw invalid(key, `integer 1..${LIMITS[key]}`, v)
  }
  // 1, or sqrt(hidden) for Gemma: a scale far outside that is a crafted index
  if (typeof idx.embed_scale !== 'number' || !(idx.embed_scale >= 1e-6 && idx.embed_scale <= 1e4)) {
    throw invalid('embed_scale', 'number in 1e-6..1e4', idx.embed_scale)
  }
  if (typeof idx.family !== 'string' || idx.family.length > 64)
    throw invalid('family', 'string', idx.family)
  if (typeof idx.model !== 'string' || idx.model.length > 256)
    throw invalid('model', 'string', idx.model)
}

function checkLayers(idx: VindexIndex): void {
  if (!Array.isArray(idx.layers)) throw invalid('layers', 'array', idx.layers)
  if (idx.layers.length !== idx.num_layers) {
    throw new VindexError('DIMENSION_MISMATCH', 'layers[] length differs from num_layers', {
      file: F,
      expected: idx.num_layers,
      found: idx.layers.length,
    })
  }
  const bpe = bytesPerElement(idx)
  let offset = 0
  idx.layers.forEach((l: VindexLayerInfo, i: number) => {
    if (!l || typeof l !== 'object' || Array.isArray(l)) throw invalid(`layers[${i}]`, 'object', l)
    if (l.layer !== i) throw invalid(`layers[${i}].layer`, i, l.layer)
    if (!Number.isInteger(l.num_features) || l.num_features <= 0) {
      throw invalid(`layers[${i}].num_features`, 'positive integer', l.num_features)
    }
    const want = l.num_features * idx.hidden_size * bpe
    if (l.length !== want) {
      throw new VindexError(
        'DIMENSION_MISMATCH',
        `layers[${i}].length is not num_features x hidden_size x ${bpe}`,
        {
          file: F,
          expected: want,
          found: l.length,
        },
      )
    }
    if (l.offset !== offset) throw invalid(`layers[${i}].offset`, offset, l.offset)
    offset += l.length
  })
}

/**
 * Checks each weight entry: a plain file name that is not one of the browse
 * files, an offset that is a non-negative multiple of the element size, a
 * length that matches the shape, and no two entries overlapping in a file.
 */
export function checkWeightEntries(entries: unknown, file: string, bpe: number): void {
  if (!Array.isArray(entries)) {
    throw new VindexError('INVALID_INDEX', 'weight manifest is not an array', { file })
  }
  const keys = new Set<string>()
  const spans = new Map<string, [number, number, string][]>()
  for (const e of entries as WeightEntry[]) {
    if (!e || typeof e !== 'object')
      throw new VindexError('INVALID_INDEX', 'malformed weight entry', {
        file,
        expected: ENTRY_SHAPE,
        found: e,
      })
    const shapeOk =
      Array.isArray(e.shape) &&
      e.shape.length > 0 &&
      e.shape.length <= 4 &&
      e.shape.every((d) => Number.isInteger(d) && d > 0 && d <= LIMITS.intermediate_size * 4)
    const elements = shapeOk ? e.shape.reduce((a, b) => a * b, 1) : NaN
    if (
      typeof e.key !== 'string' ||
      e.key.length === 0 ||
      e.key.length > 90 ||
      !Number.isInteger(e.offset) ||
      e.offset < 0 ||
      !shapeOk
    ) {
      throw new VindexError('INVALID_INDEX', 'malformed weight entry', {
        file,
        expected: ENTRY_SHAPE,
        found: e,
      })
    }
    if (!isPlainFileName(e.file) || BROWSE_FILES.has(e.file)) {
      throw new VindexError(
        'INVALID_INDEX',
        `weight ${e.key} names file "${String(e.file).slice(0, 80)}": weights live in their own plain files inside the vindex`,
        { file },
      )
    }
    if (e.offset % bpe !== 0)
      throw new VindexError('INVALID_INDEX', `weight ${e.key} offset is not aligned`, {
        file,
        expected: `a multiple of ${bpe}`,
        found: e.offset,
      })
    if (keys.has(e.key))
      throw new VindexError('INVALID_INDEX', `weight ${e.key} is listed twice`, { file })
    keys.add(e.key)
    if (e.length !== elements * bpe) {
      throw new VindexError(
        'DIMENSION_MISMATCH',
        `weight ${e.key} length does not match its shape`,
        {
          file,
          expected: elements * bpe,
          found: e.length,
        },
      )
    }
    const list = spans.get(e.file) ?? []
    list.push([e.offset, e.offset + e.length, e.key])
    spans.set(e.file, list)
  }
  for (const list of spans.values()) {
    list.sort((a, b) => a[0] - b[0])
    for (let i = 1; i < list.length; i++)
      if (list[i]![0] < list[i - 1]![1])
        throw new VindexError(
          'INVALID_INDEX',
          `weights ${list[i - 1]![2]} and ${list[i]![2]} overlap`,
          { file },
        )
  }
}

export function bytesPerElement(idx: Pick<VindexIndex, 'dtype'>): number {
  return idx.dtype === 'f32' ? 4 : 2
}

function invalid(field: string, expected: unknown, found: unknown): VindexError {
  return new VindexError('INVALID_INDEX', `field "${field}" is invalid`, {
    file: F,
    expected,
    found: found === undefined ? 'missing' : found,
  })
}
