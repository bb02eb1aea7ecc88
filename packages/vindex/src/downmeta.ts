import {
  DOWN_META_HEADER_BYTES,
  DOWN_META_MAGIC,
  DOWN_META_VERSION,
  downMetaFileBytes,
  downMetaRecordBytes,
  FILES,
} from './format.js'
import { VindexError } from './errors.js'

/**
 * down_meta.bin, little-endian:
 *   header  u32 magic 0x444D4554, u32 version 1, u32 num_layers, u32 top_k
 *   per layer: u32 num_features, then num_features fixed-size records
 *     u32 top_token_id, f32 c_score (= logit of the top token),
 *     top_k x (u32 token_id, f32 logit), sorted by logit descending.
 */
export function encodeDownMetaHeader(numLayers: number, topK: number): Uint8Array {
  const out = new Uint8Array(DOWN_META_HEADER_BYTES)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, DOWN_META_MAGIC, true)
  dv.setUint32(4, DOWN_META_VERSION, true)
  dv.setUint32(8, numLayers, true)
  dv.setUint32(12, topK, true)
  return out
}

/** One layer's block: the u32 feature count then its records. */
export function encodeDownMetaLayer(
  ids: Uint32Array,
  logits: Float32Array,
  topK: number,
): Uint8Array {
  const features = ids.length / topK
  const rec = downMetaRecordBytes(topK)
  const out = new Uint8Array(4 + features * rec)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, features, true)
  for (let f = 0; f < features; f++) {
    const o = 4 + f * rec
    dv.setUint32(o, ids[f * topK] ?? 0, true)
    dv.setFloat32(o + 4, logits[f * topK] ?? 0, true)
    for (let i = 0; i < topK; i++) {
      dv.setUint32(o + 8 + i * 8, ids[f * topK + i]!, true)
      dv.setFloat32(o + 12 + i * 8, logits[f * topK + i]!, true)
    }
  }
  return out
}

export interface FeatureTopTokens {
  /** Token ids, best first. */
  ids: number[]
  /** Their logits (W_embed @ W_down[:, f], unscaled embedding). */
  logits: number[]
  /** The top token and its logit (LARQL's top_token_id / c_score). */
  topTokenId: number
  cScore: number
}

/** Random access to down_meta.bin records by (layer, feature). */
export class DownMeta {
  readonly numLayers: number
  readonly topK: number
  readonly featuresPerLayer: number[]
  /** Byte offset of each layer's first record. */
  private readonly layerStart: number[]
  private readonly view: DataView

  /**
   * Validates magic, version, layer count, top-k and the exact size against
   * what index.json declares (`expectedFeatures`, `expectedTopK`).
   */
  constructor(
    bytes: Uint8Array,
    expectedFeatures: number[],
    expectedTopK: number,
    file: string = FILES.downMeta,
  ) {
    if (bytes.byteLength < DOWN_META_HEADER_BYTES) {
      throw new VindexError('TRUNCATED', 'shorter than its 16-byte header', {
        file,
        expected: DOWN_META_HEADER_BYTES,
        found: bytes.byteLength,
      })
    }
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    checkHeader(this.view, expectedFeatures.length, expectedTopK, file)
    this.numLayers = expectedFeatures.length
    this.topK = expectedTopK
    this.featuresPerLayer = []
    this.layerStart = []
    this.walkLayers(expectedFeatures, file)
  }

  private walkLayers(expected: number[], file: string): void {
    const rec = downMetaRecordBytes(this.topK)
    const total = downMetaFileBytes(expected, this.topK)
    let pos = DOWN_META_HEADER_BYTES
    for (let l = 0; l < expected.length; l++) {
      if (pos + 4 > this.view.byteLength) throw truncated(file, total, this.view.byteLength)
      const n = this.view.getUint32(pos, true)
      if (n !== expected[l]) {
        throw new VindexError(
          'DIMENSION_MISMATCH',
          `layer ${l} feature count differs from index.json`,
          {
            file,
            expected: expected[l],
            found: n,
          },
        )
      }
      this.featuresPerLayer.push(n)
      this.layerStart.push(pos + 4)
      pos += 4 + n * rec
    }
    if (this.view.byteLength < total) throw truncated(file, total, this.view.byteLength)
    if (this.view.byteLength > total) {
      throw new VindexError('SIZE_MISMATCH', 'longer than its layers account for', {
        file,
        expected: total,
        found: this.view.byteLength,
      })
    }
  }

  /** Byte offset of the record for (layer, feature): what C would compute. */
  recordOffset(layer: number, feature: number): number {
    if (
      layer < 0 ||
      layer >= this.numLayers ||
      feature < 0 ||
      feature >= this.featuresPerLayer[layer]!
    ) {
      throw new VindexError(
        'INVALID_ARGUMENT',
        `no down_meta record for layer ${layer} feature ${feature}`,
        {
          file: FILES.downMeta,
        },
      )
    }
    return this.layerStart[layer]! + feature * downMetaRecordBytes(this.topK)
  }

  topTokens(layer: number, feature: number): FeatureTopTokens {
    const o = this.recordOffset(layer, feature)
    const ids: number[] = []
    const logits: number[] = []
    for (let i = 0; i < this.topK; i++) {
      ids.push(this.view.getUint32(o + 8 + i * 8, true))
      logits.push(this.view.getFloat32(o + 12 + i * 8, true))
    }
    return {
      ids,
      logits,
      topTokenId: this.view.getUint32(o, true),
      cScore: this.view.getFloat32(o + 4, true),
    }
  }
}

function checkHeader(dv: DataView, numLayers: number, topK: number, file: string): void {
  const magic = dv.getUint32(0, true)
  if (magic !== DOWN_META_MAGIC) {
    throw new VindexError('BAD_MAGIC', 'bad magic number', {
      file,
      expected: DOWN_META_MAGIC,
      found: magic,
    })
  }
  const version = dv.getUint32(4, true)
  if (version !== DOWN_META_VERSION) {
    throw new VindexError('UNSUPPORTED_VERSION', 'unsupported down_meta version', {
      file,
      expected: DOWN_META_VERSION,
      found: version,
    })
  }
  const layers = dv.getUint32(8, true)
  if (layers !== numLayers) {
    throw new VindexError('DIMENSION_MISMATCH', 'layer count differs from index.json', {
      file,
      expected: numLayers,
      found: layers,
    })
  }
  const k = dv.getUint32(12, true)
  if (k !== topK) {
    throw new VindexError('DIMENSION_MISMATCH', 'top_k differs from index.json down_top_k', {
      file,
      expected: topK,
      found: k,
    })
  }
}

function truncated(file: string, expected: number, found: number): VindexError {
  return new VindexError('TRUNCATED', 'file is truncated', {
    file,
    expected,
    found,
    hint: 're-extract or re-download the vindex',
  })
}
