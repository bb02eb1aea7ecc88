/**
 * Run as a child process by probeNodeAdapter (node.ts): asks Dawn for an
 * adapter and prints what it offers as one JSON line on stdout ("null" when
 * there is none). Dawn writes warnings about software adapters (lavapipe)
 * straight to file descriptor 2, which the parent reads and drops, so a
 * probe that decides against the adapter leaves the user's terminal clean.
 */
import { summarizeAdapter } from './backend.js'
import { nodeGpu } from './node.js'

interface ProbeOptions {
  dawn?: string[]
  powerPreference?: GPUPowerPreference
  shaderF16?: boolean
}

const options = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions
let line = 'null'
try {
  const gpu = await nodeGpu(options.dawn)
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference })
  if (adapter)
    line = JSON.stringify(
      summarizeAdapter(adapter, options.shaderF16 !== false && adapter.features.has('shader-f16')),
    )
} catch {
  // no package, driver or adapter: null
}
process.stdout.write(`${line}\n`, () => process.exit(0))
