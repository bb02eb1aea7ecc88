/**
 * The TypeScript half of pg_infer's compute seam (the C half is
 * extension/src/compute.h). A backend owns copies of models' weights and
 * runs whole passes over them: one call per batch, never per matrix.
 */

/** How hits are ranked (compute.h GateRank): by |score| or by signed score. */
export type GateRank = 'abs' | 'signed'

/** One layer's gate rows as C holds them: [rows x hidden], row-major. */
export interface GateLayer {
  rows: number
  hidden: number
  dtype: 'f16' | 'f32'
  /** rows * hidden values: f32 as Float32Array, f16 as raw halves (Uint16Array). */
  data: Float32Array | Uint16Array
  /**
   * f16 only: the subnormal halves C moved out of `data` (gate_split_subnormals
   * left signed zeros behind): row, column and exact value, in triples.
   */
  fixups?: { rows: Int32Array; cols: Int32Array; values: Float32Array }
}

/** The batched gate pass with top-k (compute.h compute_gate_topk). */
export interface GateTopKRequest {
  /** The model's key (name and load generation), as given to loadGate. */
  model: string
  /** nq x hidden query vectors, one after another. */
  queries: Float32Array
  nq: number
  /** Per layer: scan it? Absent: every layer. */
  layers?: Uint8Array
  /** Most hits kept per layer (0: no per-layer limit). */
  perLayerK: number
  /** Most hits kept per query, over all layers. */
  k: number
  rank: GateRank
  /** Only scores > 0 are kept. */
  positiveOnly: boolean
}

/**
 * Hits of each query, best first (rank key descending, then layer, then
 * feature ascending: the order of C's topk_push), at stride k:
 * query i's hits are [i * k, i * k + counts[i]).
 */
export interface GateTopKResult {
  counts: Int32Array
  layers: Int32Array
  features: Int32Array
  scores: Float32Array
}

export interface ComputeBackend {
  /** Backend name, as infer.compute spells it. */
  readonly name: string
  /** Takes a model's gate rows (copies or owns them); replaces an earlier load. */
  loadGate(model: string, layers: GateLayer[]): Promise<void>
  /** Whether loadGate was called for this model (and not dropped since). */
  hasModel(model: string): boolean
  dropModel(model: string): void
  gateTopK(request: GateTopKRequest): Promise<GateTopKResult>
  dispose(): Promise<void>
}

/** An error that carries the SQLSTATE C raises it with. */
export class ComputeError extends Error {
  constructor(
    message: string,
    readonly sqlstate: string = '38000',
  ) {
    super(message)
    this.name = 'ComputeError'
  }
}
