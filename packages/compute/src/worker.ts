/**
 * The compute worker: owns a backend (onnx), serves the requests of
 * client.ts one at a time, and reports each through the shared control
 * buffer. An exception fails the request (38000 unless it says otherwise);
 * an uncaught one, or an exit, reports STATUS_DEAD so the blocked caller
 * never waits for an answer that cannot come.
 */
import { workerData, parentPort } from 'node:worker_threads'
import { OnnxBackend } from './onnx.js'
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

const data = workerData as WorkerData
const control = new Int32Array(data.control, 0, 4)
const encoder = new TextEncoder()
let backend: Promise<ComputeBackend> | undefined
let busy = false

function report(status: number, length: number): void {
  Atomics.store(control, 1, length)
  Atomics.store(control, 0, status)
  Atomics.notify(control, 0)
}

function fail(e: unknown, status = STATUS_ERROR): void {
  const sqlstate = e instanceof ComputeError ? e.sqlstate : '38000'
  const message = e instanceof Error ? e.message : String(e)
  const bytes = encoder.encode(JSON.stringify({ sqlstate, message }))
  const n = Math.min(bytes.length, CONTROL_BYTES - ERROR_AT)
  new Uint8Array(data.control, ERROR_AT, n).set(bytes.subarray(0, n))
  report(status, n)
}

process.on('uncaughtException', (e) => {
  fail(
    new ComputeError(`the compute worker crashed: ${(e as Error).message}`, '58000'),
    STATUS_DEAD,
  )
  busy = false
  process.exit(1)
})
process.on('exit', (code) => {
  if (busy)
    fail(
      new ComputeError(`the compute worker exited (code ${code}) during a call`, '58000'),
      STATUS_DEAD,
    )
})

async function createBackend(): Promise<ComputeBackend> {
  if (data.backend === 'webgpu') {
    const { createNodeWebGpuBackend } = await import('./webgpu/node.js')
    return createNodeWebGpuBackend(data.webgpu)
  }
  return OnnxBackend.create({ threads: data.threads })
}

function replyJson(reply: SharedArrayBuffer, value: unknown): void {
  const bytes = encoder.encode(JSON.stringify(value))
  new Uint8Array(reply).set(bytes.subarray(0, reply.byteLength))
  report(STATUS_OK, Math.min(bytes.length, reply.byteLength))
}

async function serve(req: Request): Promise<void> {
  if (req.op === 'probe' && backend === undefined && data.backend === 'webgpu') {
    // 'auto' asks before it decides: no device yet (a software adapter, which
    // auto skips, would print Dawn's warnings when one is created)
    const { probeNodeAdapter } = await import('./webgpu/node.js')
    const summary = probeNodeAdapter(data.webgpu ?? {})
    if (!summary) {
      backend = createBackend() // reports why there is no adapter
      await backend
    }
    replyJson(req.reply, summary)
    return
  }
  backend ??= createBackend()
  const b = await backend.catch((e: unknown) => {
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
      if (req.crash) process.exit(3)
      if (req.loseDevice) (b as ComputeBackend & { loseDevice?: () => void }).loseDevice?.()
      if (req.stallMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, req.stallMs)
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
      replyJson(
        req.reply,
        (b as ComputeBackend & { adapter?: unknown }).adapter ?? { name: b.name },
      )
      return
    case 'gateTopK': {
      if (req.crash) process.exit(3)
      if (req.loseDevice) (b as ComputeBackend & { loseDevice?: () => void }).loseDevice?.()
      if (req.stallMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, req.stallMs)
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

// One request at a time, in order: the caller is blocked until each answers.
let queue: Promise<void> = Promise.resolve()
parentPort!.on('message', (req: Request) => {
  queue = queue.then(async () => {
    const waits = req.op !== 'drop' && req.op !== 'endRun'
    busy = waits
    try {
      await serve(req)
    } catch (e) {
      if ((e as { restart?: boolean }).restart) {
        // the backend cannot go on (a lost GPU device): the caller gets the
        // error, and its next call starts a new worker with a new backend
        busy = false
        if (waits) fail(e, STATUS_DEAD)
        process.exit(4)
      }
      if (waits) fail(e)
    } finally {
      busy = false
    }
  })
})
