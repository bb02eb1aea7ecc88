/**
 * The synchronous side of the compute seam: pg_infer's host hooks run inside
 * a SQL call and cannot await, so each call posts its request to a worker
 * thread (worker.ts) that owns the backend, and blocks in Atomics.wait until
 * the worker reports through a SharedArrayBuffer. The worker is started on
 * first use and kept across calls; one that dies (or is terminated) fails the
 * call in flight with a clear error and is started again by the next call,
 * which then reloads the models it needs.
 *
 * Loaded in browsers too: no Node module is imported statically.
 */
import {
  CONTROL_BYTES,
  ERROR_AT,
  HIT_BYTES,
  STATUS_DEAD,
  STATUS_OK,
  STATUS_PENDING,
  type Request,
  type WorkerData,
} from './protocol.js'
import {
  ComputeError,
  type ForwardStepRequest,
  type ForwardStepsRequest,
  type ForwardTensor,
  type ForwardWeights,
  type GateLayer,
  type GateTopKRequest,
} from './types.js'
import type { AdapterSummary } from './webgpu/backend.js'
import type { NodeWebGpuOptions } from './webgpu/node.js'

type Workers = typeof import('node:worker_threads')

/** A running compute worker, Node's worker_threads or a browser's Web Worker. */
interface WorkerHandle {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void
  /** False once it exited (Node says so; a browser worker says so before it closes). */
  alive(): boolean
  terminate(): Promise<unknown>
}

/** Whether this is a browser (or Deno-like) thread rather than Node: its workers are Web Workers. */
function inBrowser(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process
  return typeof proc?.versions?.node !== 'string' && typeof globalThis.Worker === 'function'
}

export interface ComputeClientOptions {
  /** The worker's backend (default 'onnx'). */
  backend?: 'onnx' | 'webgpu'
  /** backend 'webgpu': Dawn flags and caps on the device's limits (tests). */
  webgpu?: NodeWebGpuOptions
  /** Intra-op threads of the backend (default: PGLITE_INFER_ONNX_THREADS, else 2). */
  threads?: number
  /** Longest wait for one call, in milliseconds (default 10 minutes): never a hang. */
  timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000
/** How often a blocked caller checks that the worker still runs. */
const POLL_MS = 50
/** Kept in a variable so that bundlers do not try to follow a Node-only worker. */
const WORKER_MODULE = './worker.js'

export class ComputeClient {
  private worker: WorkerHandle | undefined
  private control: SharedArrayBuffer | undefined
  /** Models loaded into the running worker. */
  private readonly loaded = new Set<string>()
  /** Models whose forward weights the running worker holds. */
  private readonly loadedForward = new Set<string>()
  private crashNext = false
  private stallNextMs = 0
  private loseDeviceNext = false
  private readonly timeoutMs: number

  constructor(private readonly options: ComputeClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  /** Whether the running worker holds this model (false after a restart). */
  hasModel(model: string): boolean {
    return this.worker?.alive() === true && this.loaded.has(model)
  }

  loadGate(model: string, layers: GateLayer[]): void {
    const transfer = layers.flatMap((l) => [
      l.data.buffer as ArrayBuffer,
      ...(l.fixups
        ? ([l.fixups.rows.buffer, l.fixups.cols.buffer, l.fixups.values.buffer] as ArrayBuffer[])
        : []),
    ])
    this.call({ op: 'loadGate', model, layers }, transfer)
    this.loaded.add(model)
  }

  /**
   * The hits in C's layout: nq int32 counts, then nq x k GateHits (12 bytes
   * each). `statementLeftMs`: what the SQL statement has left before
   * statement_timeout; past it the call ends with 57014 and the worker, still
   * busy with it, is stopped (the next call starts a new one).
   */
  gateTopK(request: GateTopKRequest, statementLeftMs?: number): Uint8Array {
    const bytes = request.nq * 4 + request.nq * request.k * HIT_BYTES
    const reply = new SharedArrayBuffer(Math.max(bytes, 4))
    const hooks = this.takeTestHooks()
    this.call(
      { op: 'gateTopK', ...request, reply, ...hooks },
      [request.queries.buffer as ArrayBuffer],
      statementLeftMs,
    )
    return new Uint8Array(reply, 0, bytes).slice()
  }

  /** Whether the running worker holds this model's forward weights (false after a restart). */
  hasForward(model: string): boolean {
    return this.worker?.alive() === true && this.loadedForward.has(model)
  }

  /** `statementLeftMs`: the session build counts against statement_timeout (57014 past it). */
  loadForward(model: string, weights: ForwardWeights, statementLeftMs?: number): void {
    const transfer = new Set<ArrayBuffer>([weights.spec.buffer as ArrayBuffer])
    for (const t of Object.values(weights.tensors)) {
      transfer.add(t.data.buffer as ArrayBuffer)
      if (t.fixups)
        for (const a of [t.fixups.rows, t.fixups.cols, t.fixups.values])
          transfer.add(a.buffer as ArrayBuffer)
    }
    this.call({ op: 'loadForward', model, weights }, [...transfer], statementLeftMs)
    this.loadedForward.add(model)
  }

  /**
   * One forward step; the answer in C's layout (float32: last residual,
   * logits, then the activations and residuals when asked). `replyFloats`:
   * its length. statement_timeout as for gateTopK.
   */
  forwardStep(
    request: ForwardStepRequest,
    replyFloats: number,
    statementLeftMs?: number,
  ): Uint8Array {
    const reply = new SharedArrayBuffer(Math.max(replyFloats * 4, 4))
    const hooks = this.takeTestHooks()
    this.call(
      { op: 'forwardStep', ...request, reply, ...hooks },
      [request.ids.buffer as ArrayBuffer],
      statementLeftMs,
    )
    return new Uint8Array(reply, 0, replyFloats * 4).slice()
  }

  /**
   * Several runs of one model in one batched step; the answer is each
   * run's, as forwardStep's, one after another. `replyFloats`: its length.
   */
  forwardSteps(
    request: ForwardStepsRequest,
    replyFloats: number,
    statementLeftMs?: number,
  ): Uint8Array {
    const reply = new SharedArrayBuffer(Math.max(replyFloats * 4, 4))
    this.call(
      { op: 'forwardSteps', ...request, reply, ...this.takeTestHooks() },
      [request.ids.buffer, request.runs.buffer, request.pos.buffer, request.counts.buffer].map(
        (b) => b as ArrayBuffer,
      ),
      statementLeftMs,
    )
    return new Uint8Array(reply, 0, replyFloats * 4).slice()
  }

  /**
   * One tensor of a backend-owned model, streamed in (compute.c
   * compute_owned_load); `first` starts the model's load over. The tensor's
   * buffer moves to the worker.
   */
  stage(model: string, role: string, tensor: ForwardTensor, first: boolean): void {
    if (first) {
      this.loaded.delete(model)
      this.loadedForward.delete(model)
    }
    this.call({ op: 'stage', model, role, tensor, first }, [tensor.data.buffer as ArrayBuffer])
  }

  /** The staged "l<i>.gate" tensors become the model's gate pass; `keep` them for loadForward. */
  commitGate(model: string, layers: number, keep: boolean, statementLeftMs?: number): void {
    this.call({ op: 'commitGate', model, layers, keep }, [], statementLeftMs)
    this.loaded.add(model)
  }

  /** Columns of a backend-owned model's W_down: n x hidden float32, in C's layout. */
  columns(model: string, layers: Int32Array, features: Int32Array, hidden: number): Uint8Array {
    const bytes = layers.length * hidden * 4
    const reply = new SharedArrayBuffer(Math.max(bytes, 4))
    this.call({ op: 'columns', model, layers, features, reply }, [
      layers.buffer as ArrayBuffer,
      features.buffer as ArrayBuffer,
    ])
    return new Uint8Array(reply, 0, bytes).slice()
  }

  /** The logit lens's argmax over a backend-owned model's own lm_head: n int32 tokens. */
  lens(model: string, x: Float32Array, n: number): Uint8Array {
    const reply = new SharedArrayBuffer(Math.max(n * 4, 4))
    this.call({ op: 'lens', model, x, n, reply }, [x.buffer as ArrayBuffer])
    return new Uint8Array(reply, 0, n * 4).slice()
  }

  /** Frees a run's KV cache in the worker; never throws, never waits. */
  endRun(run: number): void {
    if (!this.worker?.alive()) return
    try {
      this.worker.postMessage({ op: 'endRun', run } satisfies Request)
    } catch {
      // a dead worker holds nothing
    }
  }

  /**
   * How many runs hold a KV cache in the worker (0 without a worker): each
   * is freed when C frees its run, at the latest at transaction end.
   */
  openRuns(): number {
    if (!this.worker?.alive()) return 0
    return this.call({ op: 'openRuns' }, [])
  }

  /**
   * backend 'webgpu': starts the worker (and its device) if needed and says
   * which adapter it got; a 58000 ComputeError when there is none.
   */
  probe(): AdapterSummary {
    const reply = new SharedArrayBuffer(4096)
    const length = this.call({ op: 'probe', reply }, [])
    return JSON.parse(
      new TextDecoder().decode(new Uint8Array(reply, 0, length).slice()),
    ) as AdapterSummary
  }

  /** Forgets a model in the worker; never throws, never waits. */
  dropModel(model: string): void {
    const had = this.loaded.delete(model)
    if (!(this.loadedForward.delete(model) || had) || !this.worker) return
    try {
      this.worker.postMessage({ op: 'drop', model } satisfies Request)
    } catch {
      // a dead worker holds nothing
    }
  }

  /** Stops the worker (the next call starts a new one). */
  async terminate(): Promise<void> {
    const w = this.worker
    this.worker = undefined
    this.loaded.clear()
    this.loadedForward.clear()
    if (w) await w.terminate()
  }

  /** The test hooks armed for the next call, disarmed. */
  private takeTestHooks(): { crash: boolean; stallMs: number; loseDevice: boolean } {
    const hooks = {
      crash: this.crashNext,
      stallMs: this.stallNextMs,
      loseDevice: this.loseDeviceNext,
    }
    this.crashNext = false
    this.stallNextMs = 0
    this.loseDeviceNext = false
    return hooks
  }

  /** Test hook: the worker exits in the middle of the next gateTopK, forwardStep or forwardSteps. */
  crashNextCall(): void {
    this.crashNext = true
  }

  /** Test hook (webgpu): the GPU device is destroyed before the next gateTopK, forwardStep or forwardSteps. */
  loseDeviceNextCall(): void {
    this.loseDeviceNext = true
  }

  /** Test hook: the worker is busy for `ms` before it serves the next gateTopK, forwardStep or forwardSteps. */
  stallNextCall(ms: number): void {
    this.stallNextMs = ms
  }

  private workerData(): WorkerData {
    this.control = new SharedArrayBuffer(CONTROL_BYTES)
    return {
      control: this.control,
      backend: this.options.backend ?? 'onnx',
      threads: this.options.threads,
      webgpu: this.options.webgpu,
    }
  }

  private forget(): void {
    this.worker = undefined
    this.loaded.clear()
    this.loadedForward.clear()
  }

  /**
   * Starts the worker and waits until it listens. In Node calls start it
   * themselves; in a browser this must come first (a thread blocked in
   * Atomics.wait cannot let a new Web Worker start): `await
   * db.infer.webgpu.start()`. Errors: the backend's, e.g. no WebGPU there.
   */
  async start(): Promise<void> {
    if (!inBrowser()) {
      this.running()
      return
    }
    if (this.worker?.alive()) return
    this.forget()
    const data = this.workerData()
    let closed = false
    let w: Worker
    try {
      w = new Worker(new URL('./browser-worker.js', import.meta.url), { type: 'module' })
    } catch (e) {
      throw new ComputeError(`cannot start the compute worker: ${(e as Error).message}`, '58000')
    }
    await new Promise<void>((resolve, reject) => {
      w.onmessage = (e: MessageEvent<{ ready: boolean; error?: string }>) =>
        e.data.ready ? resolve() : reject(new ComputeError(e.data.error ?? 'no worker', '0A000'))
      w.onerror = (e) =>
        reject(new ComputeError(`the compute worker failed to start: ${e.message}`, '58000'))
      w.postMessage(data)
    }).catch((e: unknown) => {
      w.terminate()
      throw e
    })
    w.onmessage = null
    w.onerror = () => {
      closed = true
    }
    this.worker = {
      postMessage: (m, t) => w.postMessage(m, t ?? []),
      alive: () => !closed,
      terminate: async () => {
        closed = true
        w.terminate()
      },
    }
  }

  /** The running worker and its control words; in Node a new one if there is none. */
  private running(): { worker: WorkerHandle; control: Int32Array } {
    if (this.worker?.alive() && this.control)
      return { worker: this.worker, control: new Int32Array(this.control, 0, 4) }
    this.forget()
    if (inBrowser()) {
      const backend = this.options.backend ?? 'onnx'
      throw new ComputeError(
        `the ${backend} compute worker is not running: in a browser it starts before the ` +
          `database waits on it, with await db.infer.${backend === 'onnx' ? 'compute' : 'webgpu'}.start()`,
        '55000',
      )
    }
    const workers = nodeWorkers(this.options.backend ?? 'onnx')
    const data = this.workerData()
    let worker: import('node:worker_threads').Worker
    try {
      worker = new workers.Worker(new URL(WORKER_MODULE, import.meta.url), { workerData: data })
    } catch (e) {
      throw new ComputeError(`cannot start the compute worker: ${(e as Error).message}`, '58000')
    }
    worker.unref()
    worker.on('error', () => undefined) // reported through the control buffer
    const handle: WorkerHandle = {
      postMessage: (m, t) => worker.postMessage(m, t),
      alive: () => worker.threadId !== -1,
      terminate: () => worker.terminate(),
    }
    worker.on('exit', () => {
      if (this.worker === handle) this.forget()
    })
    this.worker = handle
    return { worker: handle, control: new Int32Array(data.control, 0, 4) }
  }

  /** Posts a request and blocks until the worker answers; returns the answer's length. */
  private call(request: Request, transfer: ArrayBuffer[], statementLeftMs?: number): number {
    const { worker, control } = this.running()
    Atomics.store(control, 0, STATUS_PENDING)
    worker.postMessage(request, transfer)
    const started = Date.now()
    const deadline = started + this.timeoutMs
    const statementDeadline = statementLeftMs === undefined ? Infinity : started + statementLeftMs
    for (;;) {
      if (Atomics.load(control, 0) !== STATUS_PENDING) break
      if (Date.now() >= statementDeadline) {
        // the statement is over: stop the work it asked for, as PostgreSQL would
        void this.terminate().catch(() => undefined)
        throw new ComputeError('canceling statement due to statement timeout', '57014')
      }
      const left = Math.min(deadline, statementDeadline) - Date.now()
      if (!worker.alive() || deadline - Date.now() <= 0) {
        // gone without a word, or too slow: never wait forever
        void this.terminate().catch(() => undefined)
        throw new ComputeError(
          !worker.alive()
            ? `the compute worker stopped during ${request.op}; the next call starts a new one`
            : `the compute worker did not answer ${request.op} within ${Math.round(this.timeoutMs / 1000)} s`,
          '58000',
        )
      }
      Atomics.wait(control, 0, STATUS_PENDING, Math.min(left, POLL_MS))
    }
    const status = Atomics.load(control, 0)
    const length = Atomics.load(control, 1)
    if (status === STATUS_OK) return length
    const text = new TextDecoder().decode(new Uint8Array(this.control!, ERROR_AT, length).slice())
    let err: { sqlstate: string; message: string; gone?: boolean }
    try {
      err = JSON.parse(text) as typeof err
    } catch {
      err = { sqlstate: '58000', message: text }
    }
    if (status === STATUS_DEAD) {
      // the backend is gone (its models with it); the worker too unless it
      // said it stays and starts a new backend (a browser's worker, which
      // cannot be restarted from here)
      const stays = err.gone === false
      this.forget()
      if (stays) this.worker = worker
      else void worker.terminate().catch(() => undefined)
    }
    throw new ComputeError(err.message, err.sqlstate)
  }
}

function nodeWorkers(backend: string): Workers {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  const workers = proc?.getBuiltinModule?.('node:worker_threads') as Workers | undefined
  if (!workers)
    throw new ComputeError(
      `infer.compute = '${backend}' needs Node.js worker_threads; it is not available here`,
      '0A000',
    )
  return workers
}
