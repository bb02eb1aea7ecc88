// The forward step behind the compute seam: infer.compute = 'onnx' (ONNX
// Runtime in the compute worker, one graph per model, the KV cache kept in
// the worker per run) against the built-in 'wasm' pass (the shared suite in
// forward-equivalence.ts). A worker that dies mid-step is 58000 and the next
// query works; statement_timeout ends a step with 57014; the same for a
// batched step (runs stepped together: a signature batch).
import { describe, expect, it } from 'vitest'
import { sqlError } from '../helpers/db.js'
import { forwardEquivalence, on, type InferRow } from './forward-equivalence.js'

const { db } = forwardEquivalence('onnx')

describe('robustness', () => {
  it('a worker that dies mid-step is 58000; the next query works', async () => {
    await on(db(), 'onnx', async () => {
      await db().query("select * from infer('The capital of France is', 3, 'q')")
      db().infer.compute.crashNextCall()
      const e = await sqlError(db(), "select * from infer('The capital of France is', 3, 'q')")
      expect(e.code).toBe('58000')
      const { rows } = await db().query<InferRow>(
        "select * from infer('The capital of France is', 3, 'q')",
      )
      expect(rows).toHaveLength(3)
    })
  })

  it('statement_timeout ends a step with 57014 within 100 ms of the deadline', async () => {
    await on(db(), 'onnx', async () => {
      await db().query("select * from infer('The capital of France is', 3, 'q')")
      db().infer.compute.stallNextCall(5000)
      await db().exec("set statement_timeout = '300ms'")
      const t = Date.now()
      try {
        const e = await sqlError(db(), "select * from infer('The capital of France is', 3, 'q')")
        expect(e.code).toBe('57014')
        // measured 318-334 ms: the client waits in 50 ms slices
        expect(Date.now() - t).toBeLessThan(300 + 100)
      } finally {
        await db().exec('reset statement_timeout')
      }
      const { rows } = await db().query<InferRow>(
        "select * from infer('The capital of France is', 3, 'q')",
      )
      expect(rows).toHaveLength(3)
    })
  })

  /** infer_signatures of texts no call computed before (a loaded model caches signatures). */
  let fresh = 0
  const batch = () =>
    `select count(*)::int as n from infer_signatures(array['France ${++fresh}', ` +
    `'the capital of Japan ${fresh}', 'Paris ${fresh}'], 'q')`

  it('a worker that dies mid-batch is 58000; the next batch works', async () => {
    await on(db(), 'onnx', async () => {
      await db().query(batch())
      db().infer.compute.crashNextCall()
      const e = await sqlError(db(), batch())
      expect(e.code).toBe('58000')
      const { rows } = await db().query<{ n: number }>(batch())
      expect(rows[0]!.n).toBeGreaterThan(3)
      expect(db().infer.compute.openRuns()).toBe(0)
    })
  })

  it('statement_timeout ends a batched step with 57014 within 100 ms of the deadline', async () => {
    await on(db(), 'onnx', async () => {
      await db().query(batch())
      db().infer.compute.stallNextCall(5000)
      await db().exec("set statement_timeout = '300ms'")
      const t = Date.now()
      try {
        const e = await sqlError(db(), batch())
        expect(e.code).toBe('57014')
        expect(Date.now() - t).toBeLessThan(300 + 100)
      } finally {
        await db().exec('reset statement_timeout')
      }
      const { rows } = await db().query<{ n: number }>(batch())
      expect(rows[0]!.n).toBeGreaterThan(3)
    })
  })

  it("runs' KV caches leave the worker with their runs, also after an error", async () => {
    await on(db(), 'onnx', async () => {
      await db().query("select * from infer('Once upon a time', 3, 's')")
      await db().query("select * from infer_answer('Once upon a time there was a', 's')")
      await db().query("select * from describe('France', 'q')")
      expect(db().infer.compute.openRuns()).toBe(0)
      await db().exec('begin')
      await db().query("select * from infer('Once upon a time', 3, 's')")
      const e = await sqlError(db(), 'select 1/0')
      expect(e.code).toBe('22012')
      await db().exec('rollback')
      expect(db().infer.compute.openRuns()).toBe(0)
    })
  })

  it('the worker holds the forward weights: infer_models().compute_bytes, counted once', async () => {
    const bytes = async () =>
      Number(
        (
          await db().query<{ compute_bytes: string }>(
            "select compute_bytes from infer_models() where name = 's'",
          )
        ).rows[0]!.compute_bytes,
      )
    await on(db(), 'onnx', () => db().query("select * from infer('Once upon a time', 1, 's')"))
    const held = await bytes()
    expect(held).toBeGreaterThan(0)
    // a new worker gets the weights again: still counted once
    await db().infer.compute.terminate()
    await on(db(), 'onnx', () => db().query("select * from infer('Once upon a time', 1, 's')"))
    expect(await bytes()).toBe(held)
  })
})
