// The forward step on infer.compute = 'webgpu' (packages/compute/src/webgpu/
// forward.ts: weights and KV caches in GPU buffers, one command buffer per
// step) against the built-in 'wasm' pass: the shared suite of
// forward-equivalence.ts (the fixture in f32 and f16, stories260K, a tiny
// checkpoint of every family). In CI on lavapipe. A device lost mid-step is
// 58000 and the next query works on a new device; runs free their KV caches;
// statement_timeout ends a step with 57014; a prompt whose KV cache cannot
// fit the device's binding limit is 54000 naming the limit.
import { describe, expect, it } from 'vitest'
import { sqlError } from '../helpers/db.js'
import { webgpuAvailable } from '../helpers/webgpu.js'
import { forwardEquivalence, on, type InferRow } from './forward-equivalence.js'

const gpu = await webgpuAvailable('webgpu-forward.test.ts')
const { db } = gpu ? forwardEquivalence('webgpu') : { db: () => undefined as never }

const PROMPT = "select * from infer('The capital of France is', 3, 'q')"

describe.skipIf(!gpu)('webgpu forward step: robustness', () => {
  it('a device lost mid-step is 58000 naming it; the next query works on a new device', async () => {
    await on(db(), 'webgpu', async () => {
      await db().query(PROMPT)
      db().infer.webgpu.loseDeviceNextCall()
      const e = await sqlError(db(), PROMPT)
      expect(e.code).toBe('58000')
      expect(e.message).toMatch(/WebGPU device was lost/)
      const { rows } = await db().query<InferRow>(PROMPT)
      expect(rows.map((r) => r.token)).toEqual([' Paris', ' Victoria', ' Antananarivo'])
    })
  })

  it('statement_timeout ends a step with 57014; the next query works', async () => {
    await on(db(), 'webgpu', async () => {
      await db().query(PROMPT)
      db().infer.webgpu.stallNextCall(5000)
      await db().exec("set statement_timeout = '300ms'")
      const t = Date.now()
      try {
        const e = await sqlError(db(), PROMPT)
        expect(e.code).toBe('57014')
        expect(Date.now() - t).toBeLessThan(300 + 500)
      } finally {
        await db().exec('reset statement_timeout')
      }
      expect((await db().query<InferRow>(PROMPT)).rows).toHaveLength(3)
    })
  })

  it("runs' KV caches leave the GPU with their runs, also after an error", async () => {
    await on(db(), 'webgpu', async () => {
      await db().query("select * from infer('Once upon a time', 3, 's')")
      await db().query("select * from infer_answer('Once upon a time there was a', 's')")
      expect(db().infer.webgpu.openRuns()).toBe(0)
      await db().exec('begin')
      await db().query("select * from infer('Once upon a time', 3, 's')")
      const e = await sqlError(db(), 'select 1/0')
      expect(e.code).toBe('22012')
      await db().exec('rollback')
      expect(db().infer.webgpu.openRuns()).toBe(0)
    })
  })

  it('infer_models() counts the forward weights the GPU holds', async () => {
    await on(db(), 'webgpu', () => db().query("select * from infer('Once upon a time', 1, 's')"))
    const { rows } = await db().query<{ compute_bytes: string }>(
      "select compute_bytes from infer_models() where name = 's'",
    )
    expect(Number(rows[0]!.compute_bytes)).toBeGreaterThan(0)
  })
})
