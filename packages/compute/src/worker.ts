/**
 * The compute worker in Node: a worker_threads worker that owns an onnx
 * (ONNX Runtime) or webgpu (Dawn) backend and serves client.ts's requests
 * through worker-core.ts.
 */
import { workerData, parentPort } from 'node:worker_threads'
import { OnnxBackend } from './onnx.js'
import type { Request, WorkerData } from './protocol.js'
import { createWorkerServer } from './worker-core.js'

const data = workerData as WorkerData

const server = createWorkerServer({
  data,
  async createBackend() {
    if (data.backend === 'webgpu') {
      const { createNodeWebGpuBackend } = await import('./webgpu/node.js')
      return createNodeWebGpuBackend(data.webgpu)
    }
    return OnnxBackend.create({ threads: data.threads })
  },
  // a software adapter, which auto skips, would print Dawn's warnings if a
  // device were created: the adapter is asked in a child process
  probeAdapter:
    data.backend === 'webgpu'
      ? async () => (await import('./webgpu/node.js')).probeNodeAdapter(data.webgpu ?? {})
      : undefined,
  exit: (code) => process.exit(code),
})

process.on('uncaughtException', (e) => {
  server.dying(`the compute worker crashed: ${(e as Error).message}`)
  process.exit(1)
})
process.on('exit', (code) => {
  server.dying(`the compute worker exited (code ${code}) during a call`)
})

parentPort!.on('message', (req: Request) => server.onRequest(req))
