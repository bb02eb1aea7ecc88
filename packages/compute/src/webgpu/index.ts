/**
 * @pglite-infer/compute/webgpu: the WebGPU backend (environment-agnostic:
 * give it a `GPU`), its down_meta engine, and Node's `GPU` (Dawn, the npm
 * package `webgpu`, loaded only when asked for).
 */
export {
  WebGpuBackend,
  GpuDeviceLostError,
  isSoftwareAdapter,
  summarizeAdapter,
  type AdapterSummary,
  type WebGpuBackendOptions,
} from './backend.js'
export {
  createNodeWebGpuBackend,
  loadWebGpu,
  nodeGpu,
  probeNodeAdapter,
  WEBGPU_INSTALL_HINT,
  type NodeWebGpuOptions,
} from './node.js'
export { WebGpuDownMetaEngine } from './downmeta.js'
