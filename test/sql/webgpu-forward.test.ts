// The forward step on infer.compute = 'webgpu' (packages/compute/src/webgpu/
// forward.ts: weights and KV caches in GPU buffers, one command buffer per
// step) against the built-in 'wasm' pass: the shared suite of
// forward-equivalence.ts (the fixture in f32 and f16, stories260K, a tiny
// checkpoint of every family). In CI on lavapipe. A device lost mid-step is
// 58000 and the next query works on a new device; runs free their KV caches;
// statement_timeout ends a step with 57014; a prompt whose KV cache cannot
// fit the device's binding limit is 54000 naming the limit.
import { describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { fixtureVindex } from '../helpers/vindex.js'
import { webgpuAvailable } from '../helpers/webgpu.js'
import { forwardEquivalence, on, type InferRow } from './forward-equivalence.js'

const gpu = await webgpuAvailable('webgpu-forward.test.ts')
const { db } = gpu
  ? forwardEquivalence('webgpu', { similarTo: false })
  : { db: () => undefined as never }

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

  it('matrices split by a low binding limit give the same answers', async () => {
    // f16 rows of the fixture are 512 bytes: 64 KiB parts hold 128 rows
    const d = await openDb({ compute: { webgpu: { maxStorageBufferBindingSize: 65536 } } })
    try {
      await d.query("select infer_create_model('q16', $1, 'inference')", [
        await fixtureVindex('f16', 'inference'),
      ])
      const sql = "select * from infer('The currency of Japan is the', 10, 'q16')"
      const wasm = await on(d, 'wasm', async () => (await d.query<InferRow>(sql)).rows)
      const split = await on(d, 'webgpu', async () => (await d.query<InferRow>(sql)).rows)
      expect(split.map((r) => r.token)).toEqual(wasm.map((r) => r.token))
      split.forEach((r, i) =>
        expect(Math.abs(r.probability - wasm[i]!.probability)).toBeLessThanOrEqual(
          1e-4 * Math.max(1, wasm[i]!.probability),
        ),
      )
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })

  it('a row or a prompt larger than the limit is 54000 naming it; the session goes on', async () => {
    const d = await openDb({ compute: { webgpu: { maxStorageBufferBindingSize: 65536 } } })
    const tiny = await openDb({ compute: { webgpu: { maxStorageBufferBindingSize: 1000 } } })
    try {
      const dir = await fixtureVindex('f32', 'inference')
      await d.query("select infer_create_model('q', $1, 'inference')", [dir])
      await tiny.query("select infer_create_model('q', $1, 'inference')", [dir])
      // an f32 row of 256 values is 1024 bytes: no split fits 1000; a prompt
      // of ~85 tokens needs 85 x 256 x 4 bytes of residual stream alone
      const row = await on(tiny, 'webgpu', () => sqlError(tiny, PROMPT))
      expect(row.code).toBe('54000')
      expect(row.message).toMatch(/maxStorageBufferBindingSize \(1000 bytes\)/)
      const long = `select * from infer('${'The capital of France is Paris. '.repeat(12)}', 3, 'q')`
      const e = await on(d, 'webgpu', () => sqlError(d, long))
      expect(e.code).toBe('54000')
      expect(e.message).toMatch(/maxStorageBufferBindingSize \(65536 bytes\)/)
      await on(d, 'webgpu', async () => expect((await d.query(PROMPT)).rows).toHaveLength(3))
      expect((await tiny.query(PROMPT)).rows).toHaveLength(3) // wasm
    } finally {
      for (const x of [d, tiny]) {
        await x.infer.webgpu.terminate()
        await x.close()
      }
    }
  })

  it("'auto' on a GPU steps there, and a first step the GPU fails runs on wasm, no error", async () => {
    // lavapipe stands in for a GPU here; the f32 fixture, inference level
    const d = await openDb({ compute: { webgpu: { allowSoftwareForAuto: true } } })
    try {
      await d.query("select infer_create_model('q', $1, 'inference')", [
        await fixtureVindex('f32', 'inference'),
      ])
      const sql = "select * from infer('The currency of Japan is the', 5, 'q')"
      const wasm = await on(d, 'wasm', async () => (await d.query<InferRow>(sql)).rows)
      const bytes = async () =>
        Number(
          (
            await d.query<{ compute_bytes: string }>(
              "select compute_bytes from infer_loaded_models() where name = 'q'",
            )
          ).rows[0]!.compute_bytes,
        )
      expect(await bytes()).toBe(0)
      const auto = (await d.query<InferRow>(sql)).rows // infer.compute is 'auto' by default
      expect(auto.map((r) => r.token)).toEqual(wasm.map((r) => r.token))
      auto.forEach((r, i) =>
        expect(Math.abs(r.probability - wasm[i]!.probability)).toBeLessThanOrEqual(1e-4),
      )
      // the forward weights went to the GPU's worker
      expect(await bytes()).toBeGreaterThan(0)
      // the device is lost in the next first step: that statement answers on wasm
      d.infer.webgpu.loseDeviceNextCall()
      expect((await d.query<InferRow>(sql)).rows).toEqual(wasm)
      expect((await d.query<InferRow>(sql)).rows).toEqual(wasm)
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })
})
