/// <reference types="@webgpu/types" />
/**
 * down_meta on WebGPU: the extractor's DownMetaEngine (`pglite-infer extract
 * --compute webgpu`). The embedding E [vocab x hidden] is loaded as a one-
 * layer "gate" of the WebGPU backend (split into parts by the device's
 * limits), each layer's down rows D [features x hidden] are the queries:
 * the backend's tiled matmul and per-chunk top-k give each feature's best
 * k + MARGIN ids by f32 logit (ties to the lower id), and those candidates
 * are scored again in float64 exactly as the JavaScript kernel scores every
 * id (../downmeta.ts rescore). So down_meta.bin is byte-identical to the js
 * engine's unless more than MARGIN ids sit within f32 rounding of the k-th.
 */
import type { DownMetaEngine, DownMetaRequest, DownMetaResult } from '@pglite-infer/vindex'
import { MARGIN, rescore } from '../rescore.js'
import { WebGpuBackend, type WebGpuBackendOptions } from './backend.js'
import { createNodeWebGpuBackend, type NodeWebGpuOptions } from './node.js'

export class WebGpuDownMetaEngine implements DownMetaEngine {
  readonly name = 'webgpu'
  private embed: Float32Array | undefined

  private constructor(readonly backend: WebGpuBackend) {}

  /** On `gpu` (a browser's navigator.gpu), or on Node's Dawn when absent. */
  static async create(options: NodeWebGpuOptions = {}, gpu?: GPU): Promise<WebGpuDownMetaEngine> {
    const backend = gpu
      ? await WebGpuBackend.create(gpu, options as WebGpuBackendOptions)
      : await createNodeWebGpuBackend(options)
    return new WebGpuDownMetaEngine(backend)
  }

  allocate(length: number): Float32Array {
    return new Float32Array(length)
  }

  async topK(req: DownMetaRequest): Promise<DownMetaResult> {
    const { embed, vocab, hidden, down, features, k } = req
    if (down.length !== features * hidden || embed.length < vocab * hidden)
      throw new Error(
        `down_meta: ${down.length} down values for ${features} x ${hidden}, ` +
          `${embed.length} embedding values for ${vocab} x ${hidden}`,
      )
    const keep = Math.min(vocab, k + MARGIN)
    if (this.embed !== embed) {
      // every layer of an extraction shares one embedding: uploaded once
      await this.backend.loadGate('embed', [
        { rows: vocab, hidden, dtype: 'f32', data: embed.subarray(0, vocab * hidden) },
      ])
      this.embed = embed
    }
    const r = await this.backend.gateTopK({
      model: 'embed',
      queries: down,
      nq: features,
      perLayerK: 0,
      k: keep,
      rank: 'signed',
      positiveOnly: false,
    })
    const candIds = new Int32Array(features * keep).fill(-1)
    for (let f = 0; f < features; f++)
      for (let j = 0; j < r.counts[f]!; j++) candIds[f * keep + j] = r.features[f * keep + j]!
    return rescore(req, candIds, keep)
  }

  async close(): Promise<void> {
    this.embed = undefined
    await this.backend.dispose()
  }
}
