/**
 * A watchdog for test processes (vitest setupFiles). PGlite runs Postgres
 * synchronously in this thread: a loop inside WASM blocks the event loop, so
 * vitest's own timeouts never fire and a wedged file would sit at full CPU
 * until CI's limit. A worker thread watches a heartbeat the main thread
 * writes every second; when it stops for PGLITE_INFER_TEST_WATCHDOG_S
 * seconds (default 300), the worker pauses the main thread through the
 * inspector, prints where it is (JavaScript and WASM frames), and kills the
 * process, so the run fails with a stack instead of hanging.
 */
import { Worker } from 'node:worker_threads'

const KEY = Symbol.for('pglite-infer.test-watchdog')
const g = globalThis as { [KEY]?: true }
const limitS = Number(process.env.PGLITE_INFER_TEST_WATCHDOG_S ?? 300)

if (!g[KEY] && limitS > 0) {
  g[KEY] = true
  const beat = new Float64Array(new SharedArrayBuffer(8))
  beat[0] = Date.now()
  setInterval(() => (beat[0] = Date.now()), 1000).unref()
  const worker = new Worker(new URL('./watchdog-worker.mjs', import.meta.url), {
    workerData: { beat, limitS, file: process.env.VITEST_POOL_ID ?? '' },
  })
  worker.unref()
}
