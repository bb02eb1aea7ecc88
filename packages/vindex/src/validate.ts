import { VindexError } from './errors.js'
import {
  EXTRACT_LEVELS,
  FILES,
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
  if (idx.weights !== undefined) checkWeightEntries(idx.weights, F, bytesPerElement(idx))
  return idx
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
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw invalid(key, 'positive integer', v)
  }
  if (typeof idx.embed_scale !== 'number' || !Number.isFinite(idx.embed_scale)) {
    throw invalid('embed_scale', 'number', idx.embed_scale)
  }
  if (typeof idx.family !== 'string') throw invalid('family', 'string', idx.family)
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

/** Checks shape/length agreement and 4-byte alignment of weight entries. */
export function checkWeightEntries(entries: unknown, file: string, bpe: number): void {
  if (!Array.isArray(entries)) {
    throw new VindexError('INVALID_INDEX', 'weight manifest is not an array', { file })
  }
  for (const e of entries as WeightEntry[]) {
    const elements = Array.isArray(e.shape) ? e.shape.reduce((a, b) => a * b, 1) : NaN
    if (typeof e.key !== 'string' || typeof e.file !== 'string' || !Number.isInteger(e.offset)) {
      throw new VindexError('INVALID_INDEX', 'malformed weight entry', { file, found: e })
    }
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
