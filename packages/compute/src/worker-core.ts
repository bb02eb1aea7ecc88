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
import { halfToFloat } from './topk.js'
import {
  ComputeError,
  type ComputeBackend,
  type ForwardStepResult,
  type ForwardStepsRequest,
  type ForwardTensor,
} from './types.js'

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

/**
 * Step answers in C's layout, one after another (each: last, logits, then
 * the captures asked for), into a reply buffer; returns the bytes written.
 */
function writeStepAnswers(
  op: string,
  reply: SharedArrayBuffer,
  results: readonly ForwardStepResult[],
): number {
  const out = new Float32Array(reply)
  let at = 0
  for (const r of results)
    for (const part of [r.last, r.logits, r.acts, r.resids]) {
      if (!part) continue
      if (at + part.length > out.length)
        throw new ComputeError(`${op}: the answer overflows its reply buffer`, 'XX000')
      out.set(part, at)
      at += part.length
    }
  return at * 4
}

/** A batch on a backend without forwardSteps (webgpu): each run's step in turn. */
async function stepOneByOne(
  b: ComputeBackend,
  r: ForwardStepsRequest,
): Promise<ForwardStepResult[]> {
  const out: ForwardStepResult[] = []
  let at = 0
  for (let i = 0; i < r.runs.length; i++) {
    const n = r.counts[i]!
    out.push(
      await b.forwardStep({
        model: r.model,
        run: r.runs[i]!,
        pos: r.pos[i]!,
        ids: r.ids.slice(at, at + n),
        wantAct: r.wantAct,
        wantResid: r.wantResid,
      }),
    )
    at += n
  }
  return out
}

export function createWorkerServer(env: WorkerEnvironment): WorkerServer {
  const { data } = env
  const control = new Int32Array(data.control, 0, 4)
  const encoder = new TextEncoder()
  let backend: Promise<ComputeBackend> | undefined
  let busy = false
  /** Backend-owned models being streamed in: their tensors by role, until loadForward. */
  const staged = new Map<string, Record<string, ForwardTensor>>()
  /** Backend-owned models' W_down per layer, kept for columns (write tokens). */
  const kept = new Map<string, Map<number, ForwardTensor>>()

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

  /** Test hooks of gateTopK, forwardStep and forwardSteps: crash, lose the device, stall. */
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
        staged.delete(req.model)
        kept.delete(req.model)
        b.dropModel(req.model)
        return
      case 'stage': {
        if (req.first) {
          // one load streams at a time: what is still staged is a load that failed
          staged.clear()
          staged.set(req.model, {})
          kept.delete(req.model)
          b.dropModel(req.model)
        }
        const s = staged.get(req.model)
        if (!s)
          throw new ComputeError(
            `tensor ${req.role} of model "${req.model}" arrived with no load in progress ` +
              `(the compute worker restarted during the load)`,
            '58000',
          )
        s[req.role] = req.tensor
        report(STATUS_OK, 0)
        return
      }
      case 'commitGate': {
        const s = staged.get(req.model)
        const layers = Array.from({ length: req.layers }, (_, l) => {
          const t = s?.[`l${l}.gate`]
          if (!t)
            throw new ComputeError(
              `model "${req.model}": gate rows of layer ${l} were not streamed in`,
              '58000',
            )
          return { rows: t.rows, hidden: t.cols, dtype: t.dtype, data: t.data }
        })
        await b.loadGate(req.model, layers)
        if (!req.keep) staged.delete(req.model)
        report(STATUS_OK, 0)
        return
      }
      case 'columns': {
        const downs = kept.get(req.model)
        if (!downs)
          throw new ComputeError(
            `model "${req.model}" has no W_down in the compute worker`,
            '55000',
          )
        const out = new Float32Array(req.reply)
        let at = 0
        for (let i = 0; i < req.layers.length; i++) {
          const t = downs.get(req.layers[i]!)
          const f = req.features[i]!
          if (!t || f < 0 || f >= t.cols)
            throw new ComputeError(
              `columns: model "${req.model}" has no feature ${f} in layer ${req.layers[i]}`,
              '22023',
            )
          const H = t.rows
          if (at + H > out.length)
            throw new ComputeError('columns: the answer overflows its reply buffer', 'XX000')
          if (t.dtype === 'f32') {
            const d = t.data as Float32Array
            for (let j = 0; j < H; j++) out[at + j] = d[j * t.cols + f]!
          } else {
            const d = t.data as Uint16Array
            const col = new Uint16Array(H)
            for (let j = 0; j < H; j++) col[j] = d[j * t.cols + f]!
            out.set(halfToFloat(col), at)
          }
          at += H
        }
        report(STATUS_OK, at * 4)
        return
      }
      case 'lens': {
        if (!b.lens) throw new ComputeError(`the ${b.name} backend has no logit lens`, '0A000')
        const tokens = await b.lens(req.model, req.x, req.n)
        new Int32Array(req.reply).set(tokens.subarray(0, req.n))
        report(STATUS_OK, req.n * 4)
        return
      }
      case 'endRun':
        b.endRun(req.run)
        return
      case 'openRuns':
        report(STATUS_OK, b.openRuns())
        return
      case 'loadForward': {
        // a backend-owned model: its matrices were streamed in (stage) and stay here
        const s = staged.get(req.model)
        const weights = s
          ? { ...req.weights, tensors: { ...s, ...req.weights.tensors } }
          : req.weights
        if (s) {
          staged.delete(req.model)
          const downs = new Map<number, ForwardTensor>()
          for (const [role, t] of Object.entries(s)) {
            const m = /^l(\d+)\.down$/.exec(role)
            if (m) downs.set(Number(m[1]), t)
          }
          kept.set(req.model, downs)
        }
        await b.loadForward(req.model, weights)
        // its own lm_head (not tied): the logit lens of write tokens and relation layers
        const lmHead = s?.lm_head
        if (lmHead) {
          if (!b.loadLens)
            throw new ComputeError(`the ${b.name} backend has no logit lens`, '0A000')
          await b.loadLens(req.model, lmHead)
        }
        report(STATUS_OK, 0)
        return
      }
      case 'forwardStep':
        testHooks(b, req)
        report(STATUS_OK, writeStepAnswers(req.op, req.reply, [await b.forwardStep(req)]))
        return
      case 'forwardSteps': {
        testHooks(b, req)
        const results = b.forwardSteps ? await b.forwardSteps(req) : await stepOneByOne(b, req)
        report(STATUS_OK, writeStepAnswers(req.op, req.reply, results))
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
