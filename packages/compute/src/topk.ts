import type { GateRank, GateTopKResult } from './types.js'

/** One scored feature. */
export interface Hit {
  layer: number
  feature: number
  score: number
}

const key = (score: number, rank: GateRank) => (rank === 'abs' ? Math.abs(score) : score)

/**
 * true when a ranks strictly before b: the order of C's gate_hit_before
 * (rank key descending, then layer, then feature ascending), so that a
 * backend's top-k sets equal the built-in kernel's, ties included.
 */
export function hitBefore(a: Hit, b: Hit, rank: GateRank): boolean {
  const ka = key(a.score, rank)
  const kb = key(b.score, rank)
  if (ka !== kb) return ka > kb
  if (a.layer !== b.layer) return a.layer < b.layer
  return a.feature < b.feature
}

export function compareHits(a: Hit, b: Hit, rank: GateRank): number {
  return hitBefore(a, b, rank) ? -1 : hitBefore(b, a, rank) ? 1 : 0
}

/**
 * Per query, the best k of the candidates (each layer's own top hits, any
 * order), sorted best first, at stride k.
 */
export function mergeTopK(
  candidates: Hit[][],
  k: number,
  rank: GateRank,
  positiveOnly: boolean,
): GateTopKResult {
  const nq = candidates.length
  const out: GateTopKResult = {
    counts: new Int32Array(nq),
    layers: new Int32Array(nq * k),
    features: new Int32Array(nq * k),
    scores: new Float32Array(nq * k),
  }
  for (let i = 0; i < nq; i++) {
    const kept = candidates[i]!.filter((h) => (positiveOnly ? h.score > 0 : !Number.isNaN(h.score)))
    kept.sort((a, b) => compareHits(a, b, rank))
    const n = Math.min(k, kept.length)
    out.counts[i] = n
    for (let j = 0; j < n; j++) {
      const h = kept[j]!
      out.layers[i * k + j] = h.layer
      out.features[i * k + j] = h.feature
      out.scores[i * k + j] = h.score
    }
  }
  return out
}

let halfTable: Float32Array | undefined

/** f16 bit patterns -> f32 values (exact, subnormals included). */
export function halfToFloat(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1
      const exp = (h >> 10) & 0x1f
      const man = h & 0x3ff
      halfTable[h] =
        exp === 0
          ? sign * man * 2 ** -24
          : exp === 31
            ? man
              ? NaN
              : sign * Infinity
            : sign * (1 + man / 1024) * 2 ** (exp - 15)
    }
  }
  const t = halfTable
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!
  return dst
}
