/**
 * Facts evaluation of the forward-pass queries on the fixture model
 * (`npm run eval`): the model at extract level `inference`, with one template
 * per relation, labels learned from the facts with infer_label_relations.
 *
 *   - infer() precision@1: the template's top next token is the object's
 *     first token;
 *   - describe(subject) contains the true object (any row);
 *   - labelled edges: describe(subject)'s feature rows labelled with the
 *     fact's relation, and how many of them have the right target (the
 *     object's first word: a feature writes one token);
 *   - implies() on true pairs and on pairs with a wrong object.
 *
 * Measurements, not thresholds (docs/evaluation.md).
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { FIXTURE, facts, wrongObject } from './facts.js'

const TEMPLATES: Record<string, string> = {
  capital: 'The capital of {} is',
  currency: 'The currency of {} is the',
  language: 'People in {} speak',
  continent: '{} is a country in',
}
const work = mkdtempSync(join(tmpdir(), 'pglite-infer-eval-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l', level: 'inference' })
  const db = await PGlite.create({ extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  await db.exec("set infer.default_model = 'm'")
  await db.exec('create table facts (subject text, relation text, object text, template text)')
  for (const f of facts)
    await db.query('insert into facts values ($1, $2, $3, $4)', [
      f.subject,
      f.relation,
      f.object,
      TEMPLATES[f.relation],
    ])
  const { rows: labelled } = await db.query<{ relation: string; features: number }>(
    "select * from infer_label_relations('m', 'facts'::regclass)",
  )

  type Row = {
    relation: string
    p1: boolean
    described: boolean
    impT: boolean
    impW: boolean
    edges: number
    right: number
    strongestRight: boolean
  }
  const rows: Row[] = []
  for (let i = 0; i < facts.length; i++) {
    const f = facts[i]!
    const prompt = TEMPLATES[f.relation]!.replace('{}', f.subject)
    const { rows: top } = await db.query<{ token: string }>('select token from infer($1, 1)', [
      prompt,
    ])
    const first = top[0]!.token.trim()
    const { rows: edges } = await db.query<{ relation: string; target: string }>(
      'select relation, target from describe($1)',
      [f.subject],
    )
    // the first rows are the predictions, one per template; feature edges follow
    const word = f.object.split(' ')[0]!.toLowerCase()
    const mine = edges.slice(Object.keys(TEMPLATES).length).filter((e) => e.relation === f.relation)
    const { rows: imp } = await db.query<{ t: boolean; w: boolean }>(
      'select implies($1, $2) as t, implies($1, $3) as w',
      [f.subject, f.object, wrongObject(i)],
    )
    rows.push({
      relation: f.relation,
      p1: first.length > 0 && f.object.startsWith(first),
      described: edges.some((e) => e.target.toLowerCase() === f.object.toLowerCase()),
      impT: imp[0]!.t,
      impW: imp[0]!.w,
      edges: mine.length,
      right: mine.filter((e) => e.target.toLowerCase() === word).length,
      // labelled edges come ordered by confidence
      strongestRight: mine.length > 0 && mine[0]!.target.toLowerCase() === word,
    })
  }
  await db.close()

  const pct = (n: number, d: number) => (d ? `${((100 * n) / d).toFixed(1)}%` : 'n/a')
  const sum = (rs: Row[], k: 'edges' | 'right') => rs.reduce((a, r) => a + r[k], 0)
  const line = (name: string, rs: Row[]) =>
    `| ${name} | ${rs.length} | ${pct(rs.filter((r) => r.p1).length, rs.length)} | ` +
    `${pct(rs.filter((r) => r.described).length, rs.length)} | ` +
    `${sum(rs, 'edges')} | ${pct(sum(rs, 'right'), sum(rs, 'edges'))} | ` +
    `${pct(rs.filter((r) => r.strongestRight).length, rs.filter((r) => r.edges > 0).length)} | ` +
    `${pct(rs.filter((r) => r.impT).length, rs.length)} | ${pct(rs.filter((r) => !r.impW).length, rs.length)} |`
  console.log(`facts: ${join(FIXTURE, 'facts.jsonl')}, model at extract level inference\n`)
  console.log(
    `features labelled by infer_label_relations (defaults: knowledge band, top 50): ${labelled.map((l) => `${l.relation} ${l.features}`).join(', ')}\n`,
  )
  console.log(
    '| relation | facts | infer() precision@1 | describe() contains the object | labelled edges | labelled edges right | strongest labelled edge right | implies() true on true pairs | implies() false on wrong pairs |',
  )
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const rel of Object.keys(TEMPLATES))
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
