// The compute worker's request loop (worker-core.ts), shared by Node's
// worker_threads worker and the browser's Web Worker, driven directly: the
// answer lands in the control buffer; a backend error is STATUS_ERROR with
// its SQLSTATE; a backend that cannot go on (a lost GPU device) is
// STATUS_DEAD, and with recycleOnRestart (browsers) the worker stays and the
// next request gets a new backend, while without it (Node) the worker exits.
import { describe, expect, it } from 'vitest'
import {
  CONTROL_BYTES,
  ERROR_AT,
  STATUS_DEAD,
  STATUS_OK,
  STATUS_PENDING,
  type Request,
} from '../../packages/compute/src/protocol.js'
import { ComputeError, type ComputeBackend } from '../../packages/compute/src/types.js'
import { createWorkerServer } from '../../packages/compute/src/worker-core.js'

class LostDevice extends ComputeError {
  readonly restart = true
  constructor() {
    super('the WebGPU device was lost (destroyed)', '58000')
  }
}

/** A backend whose openRuns() answers its serial number, and throws when told to. */
function fakeBackends() {
  const made: { serial: number; disposed: boolean }[] = []
  let throwNext: Error | undefined
  const create = async (): Promise<ComputeBackend> => {
    const me = { serial: made.length + 1, disposed: false }
    made.push(me)
    return {
      name: 'fake',
      openRuns() {
        if (throwNext) {
          const e = throwNext
          throwNext = undefined
          throw e
        }
        return me.serial
      },
      async dispose() {
        me.disposed = true
      },
    } as unknown as ComputeBackend
  }
  return { made, create, throwOnce: (e: Error) => (throwNext = e) }
}

async function ask(server: ReturnType<typeof createWorkerServer>, control: SharedArrayBuffer) {
  const words = new Int32Array(control, 0, 4)
  Atomics.store(words, 0, STATUS_PENDING)
  server.onRequest({ op: 'openRuns' } satisfies Request)
  const until = Date.now() + 5000
  while (Atomics.load(words, 0) === STATUS_PENDING && Date.now() < until)
    await new Promise((r) => setTimeout(r, 1))
  const status = Atomics.load(words, 0)
  const length = Atomics.load(words, 1)
  const error =
    status === STATUS_OK
      ? undefined
      : JSON.parse(new TextDecoder().decode(new Uint8Array(control, ERROR_AT, length).slice()))
  return { status, length, error }
}

describe('worker-core', () => {
  it('answers, reports errors with their SQLSTATE, and recycles a lost backend in place', async () => {
    const control = new SharedArrayBuffer(CONTROL_BYTES)
    const b = fakeBackends()
    const exits: number[] = []
    const server = createWorkerServer({
      data: { control, backend: 'webgpu' },
      createBackend: b.create,
      recycleOnRestart: true,
      exit: (code) => {
        exits.push(code)
        return undefined as never // a real worker ends here
      },
    })
    expect(await ask(server, control)).toEqual({ status: STATUS_OK, length: 1, error: undefined })
    b.throwOnce(new ComputeError('no such model', '55000'))
    expect((await ask(server, control)).error).toEqual({
      sqlstate: '55000',
      message: 'no such model',
      gone: true,
    })
    expect(await ask(server, control)).toMatchObject({ status: STATUS_OK, length: 1 })
    b.throwOnce(new LostDevice())
    const lost = await ask(server, control)
    expect(lost.status).toBe(STATUS_DEAD)
    expect(lost.error).toEqual({
      sqlstate: '58000',
      message: 'the WebGPU device was lost (destroyed)',
      gone: false,
    })
    // the next request: a new backend in the same worker; the old one disposed
    expect(await ask(server, control)).toMatchObject({ status: STATUS_OK, length: 2 })
    expect(b.made.map((m) => m.disposed)).toEqual([true, false])
    expect(exits).toEqual([])
  })

  it('without recycleOnRestart a lost backend ends the worker', async () => {
    const control = new SharedArrayBuffer(CONTROL_BYTES)
    const b = fakeBackends()
    const exits: number[] = []
    const server = createWorkerServer({
      data: { control, backend: 'webgpu' },
      createBackend: b.create,
      exit: (code) => {
        exits.push(code)
        return undefined as never // a real worker ends here
      },
    })
    b.throwOnce(new LostDevice())
    const lost = await ask(server, control)
    expect(lost.status).toBe(STATUS_DEAD)
    expect(lost.error.gone).toBe(true)
    expect(exits).toEqual([4])
  })
})
