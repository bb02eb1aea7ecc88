/**
 * What the down_meta engines on a backend (ONNX Runtime, WebGPU) share: their
 * f32 candidates are scored again in float64, exactly as the JavaScript
 * kernel scores every id (vindex/src/topk.ts), so down_meta.bin is byte-
 * identical to the js engine's.
 */
import type { DownMetaRequest, DownMetaResult } from '@pglite-infer/vindex'

/** Extra candidates per feature, rescored in float64. */
export const MARGIN = 8

/** The candidates scored again in float64; the best k by (logit desc, id asc). */
export function rescore(req: DownMetaRequest, candIds: Int32Array, keep: number): DownMetaResult {
  const { embed, hidden, down, features, k } = req
  const kk = Math.min(k, req.vocab)
  const ids = new Uint32Array(features * k)
  const logits = new Float32Array(features * k)
  const exact = new Float64Array(keep)
  const order = Array.from({ length: keep }, (_, i) => i)
  for (let f = 0; f < features; f++) {
    const dOff = f * hidden
    let n = 0
    for (let j = 0; j < keep; j++) {
      const id = candIds[f * keep + j]!
      if (id < 0) break
      const eOff = id * hidden
      let s = 0
      for (let h = 0; h < hidden; h++) s += embed[eOff + h]! * down[dOff + h]!
      exact[j] = s
      n++
    }
    const idx = order.slice(0, n)
    idx.sort((a, b) => exact[b]! - exact[a]! || candIds[f * keep + a]! - candIds[f * keep + b]!)
    for (let j = 0; j < kk; j++) {
      ids[f * k + j] = candIds[f * keep + idx[j]!]!
      logits[f * k + j] = exact[idx[j]!]!
    }
  }
  return { ids, logits }
}
