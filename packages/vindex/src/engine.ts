import { computeTopK } from './topk.js'

/** A layer's down_meta job: feature-major down rows against the embedding. */
export interface DownMetaRequest {
  embed: Float32Array
  vocab: number
  hidden: number
  down: Float32Array
  features: number
  k: number
}

export interface DownMetaResult {
  ids: Uint32Array
  logits: Float32Array
}

/**
 * How down_meta is computed. The default runs on the calling thread (works
 * everywhere); @pglite-infer/vindex/node has a worker-thread pool that
 * shares the embedding through a SharedArrayBuffer.
 */
export interface DownMetaEngine {
  /** Allocates the embedding buffer (shared memory for worker engines). */
  allocate(length: number): Float32Array
  topK(req: DownMetaRequest): Promise<DownMetaResult>
  close(): Promise<void>
}

export class InlineEngine implements DownMetaEngine {
  allocate(length: number): Float32Array {
    return new Float32Array(length)
  }
  async topK(req: DownMetaRequest): Promise<DownMetaResult> {
    const ids = new Uint32Array(req.features * req.k)
    const logits = new Float32Array(req.features * req.k)
    computeTopK({ ...req, start: 0, end: req.features, outIds: ids, outLogits: logits })
    return { ids, logits }
  }
  async close(): Promise<void> {}
}
