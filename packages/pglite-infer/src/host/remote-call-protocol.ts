/**
 * What remote-call.ts (the calling thread) and remote-call-worker.ts share.
 * Requests travel as worker messages; answers on a MessagePort, after which
 * the worker bumps Int32 [0] of a SharedArrayBuffer and notifies it.
 */
import type { ServerTarget } from './remote-call.js'

export interface CallMessage {
  id: number
  target: ServerTarget
  method: 'GET' | 'POST'
  path: string
  body?: string
  timeoutMs: number
  retries: number
}

/** Stops request `abort` (its caller gave up: statement_timeout). */
export interface AbortMessage {
  abort: number
}

export interface CallReply {
  id: number
  status?: number
  body?: string
  error?: { sqlstate: string; message: string }
}
