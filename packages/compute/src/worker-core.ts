/**
 * The compute worker's request loop, the same in Node (worker.ts, a
 * worker_threads worker) and in browsers (browser-worker.ts, a Web Worker):
 * it owns a backend, serves the requests of client.ts one at a time, and
 * reports each through the shared control buffer. An exception fails the
 * request (38000 unless it says otherwise); one that says `restart` (a lost
 * GPU device), an uncaught one or an exit reports STATUS_DEAD so the
 * blocked caller never waits for an answer that cannot come.
 */
import {
  ERROR_AT,
  CONTROL_BYTES,
  HIT_BYTES,
  STATUS_DEAD,
  STATUS_ERROR,
  STATUS_OK,
  type Request,
  type WorkerData,
} from './protocol.js'
import { ComputeError, type ComputeBackend } from './types.js'

export interface WorkerEnvironment {
  data: WorkerData
  /** The backend this worker owns (created on the first request that needs it). */
  createBackend(): Promise<ComputeBackend>
  /**
   * What 'probe' answers before a backend exists: the adapter, without a
   * device, or null when there is none (then the backend's creation error is
   * the answer). Absent: the backend is created.
   */
  probeAdapter?(): Promise<unknown>
  /** Ends the worker (test hooks; a backend that cannot go on, unless recycleOnRestart). */
  exit(code: number): never
  /**
   * A backend that cannot go on (a lost GPU device) is dropped and the next
   * request creates a new one in this worker, instead of the worker exiting
   * (browsers: the database thread cannot start a new worker while it waits).
   */
  recycleOnRestart?: boolean
}

export interface WorkerServer {
  /** Queues a request: one at a time, in order (the caller is blocked until each answers). */
  onRequest(req: Request): void
  /** The worker is going (uncaught error, exit): the call in flight fails with STATUS_DEAD. */
  dying(message: string): void
}

type TestHooked = ComputeBackend & { loseDevice?: () => void; adapter?: unknown }

export function createWorkerServer(env: WorkerEnvironment): WorkerServer {
  const { data } = env
  const control = new Int32Array(data.control, 0, 4)
  const encoder = new TextEncoder()
  let backend: Promise<ComputeBackend> | undefined
  let busy = false

  function report(status: number, length: number): void {
    Atomics.store(control, 1, length)
    Atomics.store(control, 0, status)
    Atomics.notify(control, 0)
  }

  /** `gone`: with STATUS_DEAD, whether the worker goes too (else only its backend). */
  function fail(e: unknown, status = STATUS_ERROR, gone = true): void {
    const sqlstate = e instanceof ComputeError ? e.sqlstate : '38000'
    const message = e instanceof Error ? e.message : String(e)
    const bytes = encoder.encode(JSON.stringify({ sqlstate, message, gone }))
    const n = Math.min(bytes.length, CONTROL_BYTES - ERROR_AT)
    new Uint8Array(data.control, ERROR_AT, n).set(bytes.subarray(0, n))
    report(status, n)
  }

  function replyJson(reply: SharedArrayBuffer, value: unknown): void {
    const bytes = encoder.encode(JSON.stringify(value))
    new Uint8Array(reply).set(bytes.subarray(0, reply.byteLength))
    report(STATUS_OK, Math.min(bytes.length, reply.byteLength))
  }

  /** Test hooks of gateTopK and forwardStep: crash, lose the device, stall. */
  function testHooks(
    b: TestHooked,
    req: { crash?: boolean; loseDevice?: boolean; stallMs?: number },
  ): void {
    if (req.crash) env.exit(3)
    if (req.loseDevice) b.loseDevice?.()
    if (req.stallMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, req.stallMs)
  }

  async function serve(req: Request): Promise<void> {
    if (req.op === 'probe' && backend === undefined && env.probeAdapter) {
      // 'auto' asks before it decides: no device yet
      const summary = await env.probeAdapter()
      if (!summary) await (backend = env.createBackend()) // reports why there is no adapter
      replyJson(req.reply, summary)
      return
    }
    backend ??= env.createBackend()
    const b: TestHooked = await backend.catch((e: unknown) => {
      backend = undefined // the next request tries again (and reports again)
      throw e
    })
    switch (req.op) {
      case 'drop':
        b.dropModel(req.model)
        return
      case 'endRun':
        b.endRun(req.run)
        return
      case 'openRuns':
        report(STATUS_OK, b.openRuns())
        return
      case 'loadForward':
        await b.loadForward(req.model, req.weights)
        report(STATUS_OK, 0)
        return
      case 'forwardStep': {
        testHooks(b, req)
        const r = await b.forwardStep(req)
        const out = new Float32Array(req.reply)
        let at = 0
        for (const part of [r.last, r.logits, r.acts, r.resids]) {
          if (!part) continue
          if (at + part.length > out.length)
            throw new ComputeError('forwardStep: the answer overflows its reply buffer', 'XX000')
          out.set(part, at)
          at += part.length
        }
        report(STATUS_OK, at * 4)
        return
      }
      case 'loadGate':
        await b.loadGate(req.model, req.layers)
        report(STATUS_OK, 0)
        return
      case 'probe':
        replyJson(req.reply, b.adapter ?? { name: b.name })
        return
      case 'gateTopK': {
        testHooks(b, req)
        const r = await b.gateTopK(req)
        const out = new DataView(req.reply)
        const k = req.k
        for (let i = 0; i < req.nq; i++) {
          out.setInt32(i * 4, r.counts[i]!, true)
          for (let j = 0; j < r.counts[i]!; j++) {
            const at = req.nq * 4 + (i * k + j) * HIT_BYTES
            out.setInt32(at, r.layers[i * k + j]!, true)
            out.setInt32(at + 4, r.features[i * k + j]!, true)
            out.setFloat32(at + 8, r.scores[i * k + j]!, true)
          }
        }
        report(STATUS_OK, req.nq * 4 + req.nq * k * HIT_BYTES)
        return
      }
    }
  }

  let queue: Promise<void> = Promise.resolve()
  return {
    onRequest(req: Request): void {
      queue = queue.then(async () => {
        const waits = req.op !== 'drop' && req.op !== 'endRun'
        busy = waits
        try {
          await serve(req)
        } catch (e) {
          if ((e as { restart?: boolean }).restart) {
            // the backend cannot go on (a lost GPU device): the caller gets the
            // error, and its next call gets a new backend (a new worker in Node)
            busy = false
            if (env.recycleOnRestart) {
              const old = backend
              backend = undefined
              void old?.then((b) => b.dispose()).catch(() => undefined)
              if (waits) fail(e, STATUS_DEAD, false)
              return
            }
            if (waits) fail(e, STATUS_DEAD)
            env.exit(4)
            return
          }
          if (waits) fail(e)
        } finally {
          busy = false
        }
      })
    },
    dying(message: string): void {
      if (!busy) return
      busy = false
      fail(new ComputeError(message, '58000'), STATUS_DEAD)
    },
  }
}
