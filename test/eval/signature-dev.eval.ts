/**
 * The development set of the column index's signature (docs/index-am.md,
 * definition version 3): where its constants (continuation length,
 * weight power, prior floor) were chosen, so that the evaluation of
 * `npm run eval` (knowledge.eval.ts) reports on data they were not tuned on.
 * Disjoint from the evaluation's retrieval set: other countries (every third
 * country from the second, where the evaluation takes every third from the
 * first), sentence phrasings written only for this set, other distractor
 * lines; and instead of country pairs, similar_to of capital pairs (same
 * continent above other continents).
 *
 *   npx tsx test/eval/signature-dev.eval.ts
 */
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { FIXTURE, facts, type Fact } from './facts.js'
import { ndcgAt10, precisionAt5, rrf, type Query, type Sentence } from './retrieval-set.js'
import { auc } from './similar-split.js'

const DEV_TEMPLATES: Record<string, string[]> = {
  capital: [
    'The city of {o} is where the government of {s} meets.',
    'Many people in {s} live in {o}, the capital.',
    '{o}, capital of {s}, is a large city.',
  ],
  currency: [
    'A meal in {s} costs a few {o}.',
    'The {o} is the money of {s}.',
    'Banks in {s} hand out the {o}.',
  ],
  language: [
    'Radio in {s} is mostly in {o}.',
    '{o} is heard on the streets of {s}.',
    'Signs in {s} are in {o}.',
  ],
  continent: [
    'A trip to {s} is a trip to {o}.',
    '{s} is one of the countries of {o}.',
    'Maps of {o} show {s}.',
  ],
}
const RELATIONS = ['capital', 'currency', 'language', 'continent']
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)
const f3 = (x: number) => x.toFixed(3)

function devSet(): { sentences: Sentence[]; queries: Query[] } {
  const subjects = [...new Set(facts.map((f) => f.subject))]
  const chosen = subjects.filter((_, i) => i % 3 === 1)
  const byKey = new Map<string, Fact>(facts.map((f) => [`${f.subject}/${f.relation}`, f]))
  const sentences: Sentence[] = []
  chosen.forEach((s, ci) =>
    RELATIONS.forEach((r, ri) => {
      const f = byKey.get(`${s}/${r}`)
      if (!f) return
      const ts = DEV_TEMPLATES[r]!
      const t = ts[(ci + ri) % ts.length]!
      sentences.push({
        id: sentences.length + 1,
        body: t.replace('{s}', s).replace('{o}', f.object),
        subject: s,
        relation: r,
        object: f.object,
      })
    }),
  )
  const corpus = readFileSync(join(FIXTURE, 'corpus.txt'), 'utf8').split('\n').filter(Boolean)
  const filler = corpus.slice(corpus.length - 234)
  const nDistract = Math.ceil(sentences.length / 4)
  for (let i = 0; i < nDistract; i++)
    sentences.push({
      id: sentences.length + 1,
      body: filler[(i * 3 + 1) % filler.length]!,
      subject: null,
      relation: null,
      object: null,
    })
  const about = (s: string) => sentences.filter((x) => x.subject === s)
  const queries: Query[] = []
  const pick = (offset: number) => chosen.filter((_, i) => i % 4 === offset).slice(0, 16)
  for (const s of pick(0))
    queries.push({ kind: 'country', text: s, gains: new Map(about(s).map((x) => [x.id, 1])) })
  for (const s of pick(1))
    queries.push({
      kind: 'capital',
      text: byKey.get(`${s}/capital`)!.object,
      gains: new Map(about(s).map((x) => [x.id, x.relation === 'capital' ? 2 : 1])),
    })
  for (const s of pick(2))
    queries.push({
      kind: 'capital of',
      text: `capital of ${s}`,
      gains: new Map(about(s).map((x) => [x.id, x.relation === 'capital' ? 2 : 1])),
    })
  const counts = new Map<string, { relation: string; n: number }>()
  for (const x of sentences)
    if (x.relation && x.relation !== 'capital') {
      const c = counts.get(x.object!) ?? { relation: x.relation, n: 0 }
      c.n++
      counts.set(x.object!, c)
    }
  const values = [...counts.entries()]
    .filter(([, c]) => c.n >= 2)
    .sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))
    .slice(0, 16)
  for (const [v, c] of values)
    queries.push({
      kind: 'value',
      text: v,
      gains: new Map(
        sentences.filter((x) => x.relation === c.relation && x.object === v).map((x) => [x.id, 1]),
      ),
    })
  return { sentences, queries }
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-dev-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l', level: 'inference' })
  const db = await PGlite.create({ extensions: { pgInfer, pg_trgm } })
  await db.exec('CREATE EXTENSION pg_infer; CREATE EXTENSION pg_trgm')
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  await db.exec("set infer.default_model = 'm'")
  const { sentences, queries } = devSet()
  await db.exec('create table docs (id int primary key, body text)')
  for (const s of sentences) await db.query('insert into docs values ($1, $2)', [s.id, s.body])
  await db.exec("create index docs_body on docs using infer (body) with (model = 'm')")
  await db.exec("create table docs_fts as select id, to_tsvector('english', body) tsv from docs")
  const ids = async (sql: string, q: string) =>
    (await db.query<{ id: number }>(sql, [q])).rows.map((r) => r.id)
  const res = new Map<string, { ndcg: number[]; p5: number[]; kind: Map<string, number[]> }>()
  const record = (m: string, q: Query, ranked: number[]) => {
    const s = res.get(m) ?? {
      ndcg: [] as number[],
      p5: [] as number[],
      kind: new Map<string, number[]>(),
    }
    const n = ndcgAt10(ranked, q)
    s.ndcg.push(n)
    s.p5.push(precisionAt5(ranked, q))
    s.kind.set(q.kind, [...(s.kind.get(q.kind) ?? []), n])
    res.set(m, s)
  }
  let exact = 0
  for (const q of queries) {
    const infer = await ids('select id from docs order by body <~> $1, id limit 100', q.text)
    await db.exec('set enable_indexscan = off')
    const sorted = await ids('select id from docs order by body <~> $1, id limit 100', q.text)
    await db.exec('reset enable_indexscan')
    if (JSON.stringify(infer.slice(0, 10)) === JSON.stringify(sorted.slice(0, 10))) exact++
    const trgm = await ids('select id from docs order by body <-> $1, id limit 100', q.text)
    const fts = await ids(
      `select id from docs_fts, (select replace(plainto_tsquery('english', $1)::text, '&', '|')::tsquery q) x
       order by ts_rank(tsv, q) desc, id limit 100`,
      q.text,
    )
    record('infer <~>', q, infer)
    record('pg_trgm', q, trgm)
    record('full text', q, fts)
    record('RRF', q, rrf([infer, trgm, fts]))
  }
  const kinds = [...new Set(queries.map((q) => q.kind))]
  console.log(
    `dev set: ${sentences.length} sentences, ${queries.length} queries; index = sort on ${exact}/${queries.length}\n`,
  )
  console.log(`| method | P@5 | nDCG@10 | ${kinds.join(' | ')} |`)
  console.log(`|---|---|---|${kinds.map(() => '---').join('|')}|`)
  for (const [m, s] of res)
    console.log(
      `| ${m} | ${f3(mean(s.p5))} | ${f3(mean(s.ndcg))} | ${kinds.map((k) => f3(mean(s.kind.get(k)!))).join(' | ')} |`,
    )
  // similar_to of capital pairs: same continent above other continents
  const continent = new Map(
    facts.filter((f) => f.relation === 'continent').map((f) => [f.subject, f.object]),
  )
  const capitals = facts
    .filter((f) => f.relation === 'capital')
    .map((f) => ({ capital: f.object, continent: continent.get(f.subject)! }))
  const pos: number[] = []
  const neg: number[] = []
  for (let i = 0; i < capitals.length; i++) {
    const rest = capitals.slice(i + 1)
    if (!rest.length) break
    const { rows } = await db.query<{ s: number[] }>('select similar_to_many($1, $2) s', [
      rest.map((c) => c.capital),
      capitals[i]!.capital,
    ])
    rest.forEach((c, j) =>
      (c.continent === capitals[i]!.continent ? pos : neg).push(rows[0]!.s[j]!),
    )
  }
  console.log(
    `\nsimilar_to AUC, capital pairs same continent over other continents: ${f3(auc(pos, neg))} (${pos.length} / ${neg.length} pairs)`,
  )
  await db.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}
