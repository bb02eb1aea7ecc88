/**
 * Facts evaluation of the knowledge queries on the fixture model
 * (`npm run eval`): how often describe(subject) and implies(subject, object)
 * recover the facts the model was trained on (facts.jsonl).
 *
 * These are measurements, not pass/fail thresholds: results go to
 * docs/evaluation.md, and no code is tuned to particular facts.
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { FIXTURE, facts, wrongObject } from './facts.js'

const TOP = 5

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-eval-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l' })
  const db = await PGlite.create({ extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('m', $1)", [vindex])
  await db.exec("set infer.default_model = 'm'")

  const rows: { relation: string; inTop: boolean; impliesTrue: boolean; impliesWrong: boolean }[] =
    []
  for (let i = 0; i < facts.length; i++) {
    const f = facts[i]!
    const { rows: top } = await db.query<{ target: string }>(
      'select target from describe($1) limit $2',
      [f.subject, TOP],
    )
    const { rows: imp } = await db.query<{ t: boolean; w: boolean }>(
      'select implies($1, $2) as t, implies($1, $3) as w',
      [f.subject, f.object, wrongObject(i)],
    )
    rows.push({
      relation: f.relation,
      inTop: top.some((r) => r.target.toLowerCase() === f.object.toLowerCase()),
      impliesTrue: imp[0]!.t,
      impliesWrong: imp[0]!.w,
    })
  }
  await db.close()

  const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(1)}%`
  const line = (name: string, rs: typeof rows) =>
    `| ${name} | ${rs.length} | ${pct(rs.filter((r) => r.inTop).length, rs.length)} | ` +
    `${pct(rs.filter((r) => r.impliesTrue).length, rs.length)} | ` +
    `${pct(rs.filter((r) => !r.impliesWrong).length, rs.length)} |`
  console.log(`facts: ${join(FIXTURE, 'facts.jsonl')}\n`)
  console.log(
    `| relation | facts | object in describe() top-${TOP} | implies() true on true pairs | implies() false on wrong pairs |`,
  )
  console.log('|---|---|---|---|---|')
  for (const rel of [...new Set(facts.map((f) => f.relation))])
    console.log(
      line(
        rel,
        rows.filter((r) => r.relation === rel),
      ),
    )
  console.log(line('all', rows))
} finally {
  rmSync(work, { recursive: true, force: true })
}
