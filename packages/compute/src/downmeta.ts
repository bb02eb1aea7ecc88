/**
 * down_meta on ONNX Runtime: for each feature f of a layer, the k vocabulary
 * ids with the largest logits E[v] . D[f] (E the unscaled embedding, D the
 * feature-major down rows). It implements @pglite-infer/vindex's
 * DownMetaEngine, so the extractor (and `pglite-infer extract --compute
 * onnx`) runs its heaviest step, vocab x hidden x features multiply-adds per
 * layer, as a multithreaded Gemm instead of JavaScript loops.
 *
 * One small graph, built once: logits = Gemm(D, E_chunk^T) over a chunk of
 * the vocabulary, then TopK(k + MARGIN) per row. Chunks keep the [features x
 * chunk] logits in memory (160 MB at the 0.5B shape). The candidates of all
 * chunks are merged by their f32 scores, and the best k + MARGIN of them are
 * scored again in float64, exactly as the JavaScript kernel scores every id
 * (vindex/src/topk.ts), and ordered like it (logit descending, then id). So
 * the result equals the JavaScript engine's, ids and f32 logits, unless more
 * than MARGIN ids sit within f32 rounding of the k-th logit.
 */
import type { DownMetaEngine, DownMetaRequest, DownMetaResult } from '@pglite-infer/vindex'
import type * as Ort from 'onnxruntime-node'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import type { onnx as OnnxTypes } from 'onnx-proto'
import { ExecutionProviders, loadOrt } from './onnx.js'
import { MARGIN, rescore } from './rescore.js'

/** Vocabulary rows per Gemm (the spike's choice: big enough to keep the cores busy). */
const DEFAULT_CHUNK = 8192

export interface OnnxDownMetaOptions {
  /** Intra-op threads (default: PGLITE_INFER_ONNX_THREADS, else every core). */
  threads?: number
  /** Vocabulary rows per Gemm. */
  chunk?: number
}

type OrtModule = typeof Ort

export class OnnxDownMetaEngine implements DownMetaEngine {
  readonly name = 'onnx'
  private session: Promise<Ort.InferenceSession> | undefined

  private constructor(
    private readonly ort: OrtModule,
    private readonly threads: number,
    private readonly chunk: number,
    private readonly providers: ExecutionProviders,
  ) {}

  /** Loads onnxruntime-node (a ComputeError naming it when it cannot be loaded). */
  static async create(options: OnnxDownMetaOptions = {}): Promise<OnnxDownMetaEngine> {
    const env = Number(process.env.PGLITE_INFER_ONNX_THREADS)
    const threads = Math.max(1, options.threads ?? (env > 0 ? env : availableParallelism()))
    // a bad PGLITE_INFER_ONNX_PROVIDERS is reported before the package loads
    const providers = ExecutionProviders.resolve(undefined)
    return new OnnxDownMetaEngine(
      await loadOrt(),
      threads,
      options.chunk ?? DEFAULT_CHUNK,
      providers,
    )
  }

  allocate(length: number): Float32Array {
    return new Float32Array(length)
  }

  private graph(): Promise<Ort.InferenceSession> {
    this.session ??= this.providers.session(this.ort, buildDownMetaGraph(), {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    })
    return this.session
  }

  async topK(req: DownMetaRequest): Promise<DownMetaResult> {
    const { embed, vocab, hidden, down, features, k } = req
    if (down.length !== features * hidden || embed.length < vocab * hidden)
      throw new Error(
        `down_meta: ${down.length} down values for ${features} x ${hidden}, ` +
          `${embed.length} embedding values for ${vocab} x ${hidden}`,
      )
    const keep = Math.min(vocab, k + MARGIN)
    const session = await this.graph()
    // per feature the best `keep` candidates so far, by f32 score
    const candIds = new Int32Array(features * keep).fill(-1)
    const candScores = new Float32Array(features * keep).fill(-Infinity)
    const d = new this.ort.Tensor(
      'float32',
      down.buffer instanceof SharedArrayBuffer ? new Float32Array(down) : down,
      [features, hidden],
    )
    for (let v0 = 0; v0 < vocab; v0 += this.chunk) {
      const n = Math.min(this.chunk, vocab - v0)
      const kc = Math.min(keep, n)
      // onnxruntime-node refuses tensors over a SharedArrayBuffer (what the
      // worker engine allocates embeddings in): copy such a chunk
      const rows = embed.subarray(v0 * hidden, (v0 + n) * hidden)
      const e = new this.ort.Tensor(
        'float32',
        rows.buffer instanceof SharedArrayBuffer ? new Float32Array(rows) : rows,
        [n, hidden],
      )
      const kt = new this.ort.Tensor('int64', BigInt64Array.of(BigInt(kc)), [1])
      const out = await session.run({ d, e, k: kt }, ['values', 'indices'])
      const values = out.values!.data as Float32Array
      const indices = out.indices!.data as BigInt64Array
      for (let f = 0; f < features; f++)
        for (let j = 0; j < kc; j++)
          insert(
            candIds,
            candScores,
            f * keep,
            keep,
            v0 + Number(indices[f * kc + j]!),
            values[f * kc + j]!,
          )
    }
    return rescore(req, candIds, keep)
  }

  async close(): Promise<void> {
    const s = await this.session?.catch(() => undefined)
    this.session = undefined
    await s?.release().catch(() => undefined)
  }
}

/** Keeps list [off, off + keep) sorted by score descending, then id ascending. */
function insert(
  ids: Int32Array,
  scores: Float32Array,
  off: number,
  keep: number,
  id: number,
  score: number,
): void {
  const last = off + keep - 1
  if (score < scores[last]! || (score === scores[last]! && ids[last]! !== -1 && id > ids[last]!))
    return
  let i = last
  while (
    i > off &&
    (scores[i - 1]! < score ||
      (scores[i - 1]! === score && (ids[i - 1] === -1 || ids[i - 1]! > id)))
  ) {
    scores[i] = scores[i - 1]!
    ids[i] = ids[i - 1]!
    i--
  }
  scores[i] = score
  ids[i] = id
}

/** Gemm(d, e^T) -> TopK(k) on axis 1: the chunk's best ids per feature. */
function buildDownMetaGraph(): Uint8Array {
  const { onnx } = createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto')
  const FLOAT = onnx.TensorProto.DataType.FLOAT
  const INT64 = onnx.TensorProto.DataType.INT64
  const tensor = (elem: number, dims: string[]): OnnxTypes.ITypeProto => ({
    tensorType: { elemType: elem, shape: { dim: dims.map((d) => ({ dimParam: d })) } },
  })
  const int = (name: string, i: number): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INT,
    i,
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'pglite-infer compute',
    graph: {
      name: 'down_meta_topk',
      node: [
        { opType: 'Gemm', input: ['d', 'e'], output: ['logits'], attribute: [int('transB', 1)] },
        {
          opType: 'TopK',
          input: ['logits', 'k'],
          output: ['values', 'indices'],
          attribute: [int('axis', 1), int('largest', 1), int('sorted', 1)],
        },
      ],
      input: [
        { name: 'd', type: tensor(FLOAT, ['features', 'hidden']) },
        { name: 'e', type: tensor(FLOAT, ['vocab', 'hidden']) },
        { name: 'k', type: { tensorType: { elemType: INT64, shape: { dim: [{ dimValue: 1 }] } } } },
      ],
      output: [
        { name: 'values', type: tensor(FLOAT, ['features', 'kc']) },
        { name: 'indices', type: tensor(INT64, ['features', 'kc']) },
      ],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}
