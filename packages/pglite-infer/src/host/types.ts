import type { ComputeClientOptions } from '@pglite-infer/compute'
import type { EmscriptenFS } from './sources.js'

/**
 * What the C extension asks of its JavaScript host. Each method is one host
 * hook (extension/src/host.c) and runs synchronously inside a SQL call.
 */
export interface InferHost {
  /** Token ids of `text` under a HuggingFace tokenizer.json. */
  tokenize(tokenizerJson: string, text: string, addSpecialTokens: boolean): ArrayLike<number>
}

/**
 * An error the host raises on purpose. The SQL caller sees `message` with
 * this SQLSTATE; any other exception is reported as 38000
 * (external_routine_exception).
 */
export class HostError extends Error {
  readonly sqlstate: string
  constructor(message: string, sqlstate = '38000') {
    super(message)
    if (!/^[0-9A-Z]{5}$/.test(sqlstate)) throw new Error(`invalid SQLSTATE ${sqlstate}`)
    this.name = 'HostError'
    this.sqlstate = sqlstate
  }
}

/** What the embedding application decides about its host (not SQL). */
export interface HostOptions {
  /**
   * Directories of the host file system (Node, Electron) whose vindexes SQL
   * may name by absolute path, with everything below them. Empty by default:
   * SQL can then register vindexes under infer.data_directory in the
   * database's own file system, URLs, and bytes given to db.infer.createModel,
   * but no host file.
   */
  allowedHostDirectories?: readonly string[]
  /**
   * The compute backend's worker (infer.compute = 'onnx'): intra-op threads
   * and the longest wait for one call; `default` (or the name alone,
   * `compute: 'onnx'`) is infer.compute's default for every session. Models
   * loaded under 'onnx' are owned by that backend (docs/compute.md).
   */
  compute?: ComputeChoice | (ComputeClientOptions & { default?: ComputeChoice })
  /**
   * Cancels a remote model's call in flight from another thread
   * (docs/remote-models.md, "Cancellation"): the thread that runs PGlite
   * is blocked while a remote call waits, so the cancel comes from the
   * thread that is not: a page or main thread whose PGlite runs in a
   * worker. `new RemoteCancel()` there, its `buffer` to the worker,
   * `RemoteCancel.from(buffer)` here.
   */
  remoteCancel?: import('./remote-call.js').RemoteCancel
}

/** infer.compute's values. */
export type ComputeChoice = 'auto' | 'wasm' | 'onnx' | 'webgpu'

/** The worker's options and infer.compute's default out of HostOptions.compute. */
export function computeChoice(compute: HostOptions['compute']): {
  options: ComputeClientOptions | undefined
  default: ComputeChoice | undefined
} {
  if (typeof compute === 'string') return { options: undefined, default: compute }
  if (!compute) return { options: undefined, default: undefined }
  const { default: d, ...options } = compute
  return { options, default: d }
}

/** The part of PGlite's emscripten Module the bridge uses. */
export interface WasmModule {
  HEAPU8: Uint8Array
  FS?: EmscriptenFS
}
