/**
 * Whether this machine can create a WebGPU adapter (Dawn through the npm
 * package webgpu: lavapipe in CI). Tests skip with a printed reason only
 * where none can be created; PGLITE_INFER_REQUIRE_WEBGPU=1 (.ci/run) makes
 * that a failure instead, so CI never skips them.
 */
import { ComputeClient } from '@pglite-infer/compute'

export async function webgpuAvailable(what: string): Promise<boolean> {
  const client = new ComputeClient({ backend: 'webgpu' })
  try {
    const adapter = client.probe()
    console.log(`${what}: WebGPU adapter ${adapter.name}${adapter.software ? ' (software)' : ''}`)
    return true
  } catch (e) {
    if (process.env.PGLITE_INFER_REQUIRE_WEBGPU === '1') throw e
    console.warn(`${what}: skipped, no WebGPU adapter: ${(e as Error).message}`)
    return false
  } finally {
    await client.terminate()
  }
}
