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

/**
 * One tensor of a model's forward weights as C holds it (role names:
 * forward.ts): rows x cols, row-major; vectors have rows = 1.
 */
export interface ForwardTensor {
  rows: number
  cols: number
  dtype: 'f16' | 'f32'
  data: Float32Array | Uint16Array
  /** f16 matrices: the subnormal fix-ups, as for GateLayer. */
  fixups?: GateLayer['fixups']
}

/** A model's forward weights and architecture (compute.h ForwardSpecWord). */
export interface ForwardWeights {
  /** FS_FIXED_WORDS words, then one per layer (1: sliding-window attention). */
  spec: Float64Array
  tensors: Record<string, ForwardTensor>
}

/** One forward step (compute.h compute_forward_step): prefill of n tokens or decode of 1. */
export interface ForwardStepRequest {
  /** The model's key, as given to loadForward. */
  model: string
  /** The run's id: the backend keeps its KV cache under it until endRun. */
  run: number
  /** Positions done before this step (0 starts the run). */
  pos: number
  ids: Int32Array
  /** Return the FFN activations (down_proj's input) of every layer at the last position. */
  wantAct: boolean
  /** Return the residual stream after every layer at the last position. */
  wantResid: boolean
}

/**
 * Several runs of one model stepped at once (compute.h
 * compute_forward_steps): run i takes counts[i] more tokens, the same step
 * forwardStep would take for it alone. A backend computes them as one
 * batched pass; the answers are each run's as forwardStep gives them.
 */
export interface ForwardStepsRequest {
  model: string
  /** Each run's id. */
  runs: Int32Array
  /** Each run's positions done before this step (0 starts it). */
  pos: Int32Array
  /** Each run's count of new tokens (at least 1). */
  counts: Int32Array
  /** The new tokens of every run, one run's after another's. */
  ids: Int32Array
  wantAct: boolean
  wantResid: boolean
}

export interface ForwardStepResult {
  /** hidden: residual stream at the last position (before the final norm). */
  last: Float32Array
  /** vocab: its logits (final norm, lm_head, soft-capping). */
  logits: Float32Array
  /** layers x intermediate, when asked. */
  acts?: Float32Array
  /** layers x hidden, when asked. */
  resids?: Float32Array
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
  /** Takes a model's forward weights (copies or owns them); replaces an earlier load. */
  loadForward(model: string, weights: ForwardWeights): Promise<void>
  /** Whether loadForward was called for this model (and not dropped since). */
  hasForward(model: string): boolean
  /** One step of a run; the first (pos 0) starts it. */
  forwardStep(request: ForwardStepRequest): Promise<ForwardStepResult>
  /**
   * Several runs in one batched pass; without it the worker steps them one
   * by one with forwardStep.
   */
  forwardSteps?(request: ForwardStepsRequest): Promise<ForwardStepResult[]>
  /** Frees a run's KV cache; unknown runs are ignored. */
  endRun(run: number): void
  /** How many runs hold a KV cache now. */
  openRuns(): number
  /**
   * Backend-owned models with their own lm_head [vocab x hidden]: takes it
   * for lens (onnx only).
   */
  loadLens?(model: string, lmHead: ForwardTensor): Promise<void>
  /** The argmax token of each of n normed vectors (n x hidden) over that lm_head. */
  lens?(model: string, x: Float32Array, n: number): Promise<Int32Array>
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
