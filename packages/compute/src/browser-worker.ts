/**
 * The compute worker in browsers: a module Web Worker that owns a webgpu
 * backend on `navigator.gpu` or an onnx backend on onnxruntime-web, and
 * serves client.ts's requests through
 * worker-core.ts. The first message is its WorkerData; it answers
 * { ready: true } (or { ready: false, error }) once it listens, so the
 * database thread can start it before it ever blocks on it (a thread
 * waiting in Atomics.wait cannot let a new worker start).
 */
/// <reference lib="webworker" />
import type { Request, WorkerData } from './protocol.js'
import type { OnnxBackendOptions } from './onnx.js'
import { ComputeError, type ComputeBackend } from './types.js'
import { WebGpuBackend, summarizeAdapter } from './webgpu/backend.js'
import { createWorkerServer, type WorkerServer } from './worker-core.js'

declare const self: DedicatedWorkerGlobalScope

const NO_GPU =
  'this browser offers no WebGPU (navigator.gpu): use a browser with WebGPU enabled, in a ' +
  'secure context, or SET infer.compute = wasm'

function gpu(): GPU {
  const g = (self.navigator as Navigator & { gpu?: GPU }).gpu
  if (!g) throw new ComputeError(`no WebGPU adapter: ${NO_GPU}`, '58000')
  return g
}

/**
 * ONNX Runtime in the browser: onnxruntime-web's WebAssembly execution
 * provider (its own threads when the page is cross-origin isolated), the
 * same graphs as onnxruntime-node in Node (onnx.ts).
 */
async function onnxBackend(data: WorkerData): Promise<ComputeBackend> {
  let ort: typeof import('onnxruntime-web')
  try {
    ort = await import('onnxruntime-web/wasm')
  } catch (e) {
    throw new ComputeError(
      `infer.compute = 'onnx' in a browser needs the npm package onnxruntime-web, which cannot ` +
        `be loaded (${(e as Error).message}); install it with npm i onnxruntime-web`,
      '58000',
    )
  }
  const threads = Math.max(1, data.threads ?? 2)
  ort.env.wasm.numThreads = self.crossOriginIsolated ? threads : 1
  const { OnnxBackend } = await import('./onnx.js')
  return OnnxBackend.create({
    ort: ort as unknown as OnnxBackendOptions['ort'],
    executionProviders: ['wasm'],
    threads,
  })
}

let server: WorkerServer | undefined

self.addEventListener('message', (event: MessageEvent) => {
  if (server) return server.onRequest(event.data as Request)
  const data = event.data as WorkerData
  try {
    server = createWorkerServer({
      data,
      createBackend: () =>
        data.backend === 'onnx'
          ? onnxBackend(data)
          : WebGpuBackend.create(gpu(), data.webgpu ?? {}, NO_GPU),
      probeAdapter:
        data.backend !== 'webgpu'
          ? undefined
          : async () => {
              const adapter = await gpu()
                .requestAdapter({ powerPreference: data.webgpu?.powerPreference })
                .catch(() => null)
              return adapter
                ? summarizeAdapter(
                    adapter,
                    data.webgpu?.shaderF16 !== false && adapter.features.has('shader-f16'),
                  )
                : null
            },
      recycleOnRestart: true,
      exit(code: number): never {
        server?.dying(`the compute worker exited (code ${code}) during a call`)
        self.close()
        throw new Error(`the compute worker exited (code ${code})`)
      },
    })
    self.postMessage({ ready: true })
  } catch (e) {
    self.postMessage({ ready: false, error: (e as Error).message })
  }
})

self.addEventListener('error', (e) => {
  server?.dying(`the compute worker crashed: ${e.message}`)
})
self.addEventListener('unhandledrejection', (e) => {
  server?.dying(`the compute worker crashed: ${String(e.reason)}`)
})
