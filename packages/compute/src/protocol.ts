/**
 * What the calling thread (client.ts) and the compute worker (worker.ts)
 * share. Requests travel by postMessage; the answer comes back through
 * SharedArrayBuffers while the caller blocks in Atomics.wait: Int32 [0] of
 * the control buffer is the status (STATUS_*), [1] the byte length of the
 * result (in the request's reply buffer) or of the UTF-8 JSON error
 * ({ sqlstate, message }) stored in the control buffer from byte ERROR_AT.
 */
import type {
  ForwardStepRequest,
  ForwardStepsRequest,
  ForwardTensor,
  ForwardWeights,
  GateLayer,
  GateTopKRequest,
} from './types.js'
import type { NodeWebGpuOptions } from './webgpu/node.js'

export const STATUS_PENDING = 0
export const STATUS_OK = 1
export const STATUS_ERROR = 2
/** The worker is exiting (crash, process.exit): the error says why. */
export const STATUS_DEAD = 3

export const ERROR_AT = 16
export const CONTROL_BYTES = ERROR_AT + 64 * 1024

/** Bytes per hit in a gateTopK reply: int32 layer, int32 feature, float32 score (C's GateHit). */
export const HIT_BYTES = 12

export interface WorkerData {
  control: SharedArrayBuffer
  backend: 'onnx' | 'webgpu'
  threads?: number
  /** backend 'webgpu': Dawn flags and limit caps (webgpu/node.ts). */
  webgpu?: NodeWebGpuOptions
}

export type Request =
  | { op: 'loadGate'; model: string; layers: GateLayer[] }
  | (GateTopKRequest & {
      op: 'gateTopK'
      /** nq int32 counts, then nq x k hits (HIT_BYTES each): C's layout. */
      reply: SharedArrayBuffer
      /** Test hook: the worker exits while serving this request. */
      crash?: boolean
      /** Test hook: the worker is busy this long before it serves the request. */
      stallMs?: number
      /** Test hook (webgpu): the device is destroyed before the request is served. */
      loseDevice?: boolean
    })
  /** webgpu: the adapter, as JSON (webgpu/backend.ts AdapterSummary) in the reply buffer. */
  | { op: 'probe'; reply: SharedArrayBuffer }
  | { op: 'drop'; model: string }
  | { op: 'loadForward'; model: string; weights: ForwardWeights }
  | (ForwardStepRequest & {
      op: 'forwardStep'
      /** float32: last (hidden), logits (vocab), then acts, resids when asked. */
      reply: SharedArrayBuffer
      crash?: boolean
      stallMs?: number
      loseDevice?: boolean
    })
  | (ForwardStepsRequest & {
      op: 'forwardSteps'
      /** float32: each run's answer as forwardStep's, one after another. */
      reply: SharedArrayBuffer
      crash?: boolean
      stallMs?: number
      loseDevice?: boolean
    })
  | { op: 'endRun'; run: number }
  /**
   * Backend-owned models: one tensor of a model being streamed in (first:
   * the load starts over), then commitGate (the staged "l<i>.gate" become
   * the gate pass; keep: they stay for loadForward, which takes every staged
   * tensor), and columns of the staged W_down kept after loadForward.
   */
  | { op: 'stage'; model: string; role: string; tensor: ForwardTensor; first: boolean }
  | { op: 'commitGate'; model: string; layers: number; keep: boolean }
  | {
      op: 'columns'
      model: string
      layers: Int32Array
      features: Int32Array
      /** float32: n x hidden, column features[i] of layer layers[i]'s W_down. */
      reply: SharedArrayBuffer
    }
  /** int32 x n: the argmax token of x's rows (normed residuals) over the model's own lm_head. */
  | { op: 'lens'; model: string; x: Float32Array; n: number; reply: SharedArrayBuffer }
  /** How many runs hold a KV cache in the worker (the answer's length field). */
  | { op: 'openRuns' }
