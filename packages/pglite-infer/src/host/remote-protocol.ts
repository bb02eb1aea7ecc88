/**
 * What remote.ts (the calling thread) and remote-worker.ts (the worker that
 * downloads and extracts) share. The worker reports through a
 * SharedArrayBuffer: Int32 [0] is the status (RESULT_*), Int32 [1] the byte
 * length of a UTF-8 JSON error ({ sqlstate, message }) stored from byte 8.
 */
import type { RemoteSource } from './remote.js'

export const RESULT_PENDING = 0
export const RESULT_OK = 1
export const RESULT_ERROR = 2
/** Room for the status words and an error message. */
export const SIGNAL_BYTES = 8 + 64 * 1024

export interface RemoteJob {
  spec: RemoteSource
  /** The cache entry to create (renamed into place when complete). */
  finalDir: string
  /** Private working directory; removed when the job ends. */
  tmpDir: string
  timeoutMs: number
  /** Longest wait for the next bytes of a response (headers or body) before it is given up. */
  idleTimeoutMs: number
  retries: number
  /** Bearer token for the hub (HF_TOKEN), hf:// only. */
  hfToken: string | undefined
}

export interface RemoteResult {
  status: typeof RESULT_OK | typeof RESULT_ERROR
  sqlstate: string
  message: string
}
