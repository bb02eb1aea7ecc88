/// <reference types="@webgpu/types" />
/**
 * WebGPU in Node: the npm package `webgpu` (a prebuilt Dawn: Vulkan on Linux,
 * Metal on macOS, D3D12 on Windows) gives the `GPU` object the backend takes.
 * A browser's Web Worker passes `navigator.gpu` to WebGpuBackend.create
 * instead, and needs nothing here.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ComputeError } from '../types.js'
import {
  summarizeAdapter,
  WebGpuBackend,
  type AdapterSummary,
  type WebGpuBackendOptions,
} from './backend.js'

/** What to install when Node has no WebGPU adapter. */
export const WEBGPU_INSTALL_HINT =
  'install the npm package webgpu (npm i webgpu) and a GPU driver Dawn can use: on Linux a ' +
  'Vulkan driver (the GPU vendor\'s, or Mesa\'s software "lavapipe": apt-get install -t ' +
  'bookworm-backports mesa-vulkan-drivers libvulkan1 on Debian 12), Metal on macOS, D3D12 on Windows'

export interface NodeWebGpuOptions extends WebGpuBackendOptions {
  /** Dawn options for `create()` (e.g. 'backend=vulkan', 'adapter=NAME'). */
  dawn?: string[]
  /**
   * infer.compute = 'auto' may offer batches to this backend when its adapter
   * is a GPU (default true; the environment variable PGLITE_INFER_WEBGPU_AUTO=0
   * turns it off too).
   */
  auto?: boolean
  /** Tests: 'auto' takes a software adapter (lavapipe) too. */
  allowSoftwareForAuto?: boolean
}

type WebGpuModule = { create(flags: string[]): GPU; globals: Record<string, unknown> }

let module: Promise<WebGpuModule> | undefined

/** Loads the `webgpu` package, or fails with 58000 naming it and what to install. */
export async function loadWebGpu(): Promise<WebGpuModule> {
  // a variable: bundlers for the browser must not follow a Node-only import
  const name = 'webgpu'
  module ??= (import(name) as Promise<WebGpuModule>).catch((e: unknown) => {
    module = undefined
    throw new ComputeError(
      `infer.compute = 'webgpu' needs the npm package webgpu (Dawn for Node), which cannot be ` +
        `loaded (${(e as Error).message.split('\n')[0]}); ${WEBGPU_INSTALL_HINT}`,
      '58000',
    )
  })
  return module
}

/** Node's `GPU` object (Dawn). */
export async function nodeGpu(dawn: string[] = []): Promise<GPU> {
  const m = await loadWebGpu()
  try {
    return m.create(dawn)
  } catch (e) {
    throw new ComputeError(
      `no WebGPU adapter: ${(e as Error).message.split('\n')[0]}; ${WEBGPU_INSTALL_HINT}`,
      '58000',
    )
  }
}

/** The WebGPU backend on Node's Dawn. */
export async function createNodeWebGpuBackend(
  options: NodeWebGpuOptions = {},
): Promise<WebGpuBackend> {
  const gpu = await nodeGpu(options.dawn)
  return WebGpuBackend.create(gpu, options, `Dawn found none; ${WEBGPU_INSTALL_HINT}`)
}

/**
 * The adapter Dawn would give, without creating a device, asked in a child
 * process: what 'auto' looks at before it decides. Dawn prints warnings
 * about a CPU emulation such as lavapipe on stderr as it enumerates it;
 * the child's stderr is dropped, so a machine without a GPU prints nothing.
 * Null when there is no package, driver or adapter (or the probe fails).
 */
export function probeNodeAdapter(
  options: Pick<NodeWebGpuOptions, 'dawn' | 'powerPreference' | 'shaderF16'> = {},
): AdapterSummary | null {
  const child = fileURLToPath(new URL('./probe-child.js', import.meta.url))
  const r = spawnSync(process.execPath, [child, JSON.stringify(options)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  })
  if (r.status !== 0) return null
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null') as AdapterSummary | null
  } catch {
    return null
  }
}
