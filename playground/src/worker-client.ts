/**
 * The page side of a PGliteWorker with pg_infer: the same extension object
 * on both sides; on this side it only provides db.infer, whose createModel
 * sends the model's files to the worker through SQL.
 */
import { PGliteWorker } from '@electric-sql/pglite/worker'
import { pgInfer } from 'pglite-infer'

const out = document.getElementById('out')!

async function main(): Promise<void> {
  const db = await PGliteWorker.create(
    new Worker(new URL('./pglite.worker.ts', import.meta.url), { type: 'module' }),
    { extensions: { infer: pgInfer } },
  )
  await db.exec('create extension if not exists pg_infer')
  const res = await fetch(new URL('models/countries.vindex.tar.gz', location.href))
  const bytes = new Uint8Array(await res.arrayBuffer())
  await db.infer.createModel('countries', bytes, { level: 'inference' })
  const { rows } = await db.query("select * from infer('The capital of France is', 3, 'countries')")
  out.textContent = JSON.stringify(rows, null, 2)
  document.body.dataset.result = JSON.stringify(rows)
  document.body.dataset.ready = 'true'
}

main().catch((e: unknown) => {
  out.textContent = `failed: ${e instanceof Error ? e.message : String(e)}`
  document.body.dataset.ready = 'error'
  console.error(e)
})
