// The seed's headline query, as written: a `papers` table with a pgvector
// column, the infer, gin_trgm_ops, ivfflat and full-text indexes, and the
// multi-signal CTE combining <~>, <=>, similarity() and ts_rank, with the
// vector literal replaced by infer_embed(...) (pg_infer_vector) and N the
// model's hidden size.
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { vector } from 'pglite-infer/vector'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PGlite } from '@electric-sql/pglite'
import { testPgInfer } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'

interface Fact {
  subject: string
  relation: string
  object: string
}

let db: PGlite

const SENTENCE: Record<string, (f: Fact) => string> = {
  capital: (f) => `The capital of ${f.subject} is ${f.object}.`,
  currency: (f) => `The currency of ${f.subject} is the ${f.object}.`,
  language: (f) => `People in ${f.subject} speak ${f.object}.`,
  continent: (f) => `${f.subject} is a country in ${f.object}.`,
}

// the seed's query; only the model name, N and the vector literal differ
const SEED_QUERY = (weights = [0.4, 0.3, 0.2, 0.1]) => `
WITH candidates AS (
    SELECT id, title, body,
           title <~> 'capital of France'  AS infer_dist,
           embed <=> infer_embed('capital of France')  AS vec_dist,
           similarity(title, 'capital of France') AS trgm_score,
           ts_rank(to_tsvector('english', body),
                   plainto_tsquery('capital of France')) AS ts_rank
    FROM papers
    WHERE to_tsvector('english', body) @@ plainto_tsquery('capital of France')
       OR title % 'capital of France'
    LIMIT 100
)
SELECT id, title,
       (${weights[0]} * (1 - infer_dist) +
        ${weights[1]} * (1 - vec_dist) +
        ${weights[2]} * trgm_score +
        ${weights[3]} * ts_rank) AS combined_score,
       infer_dist, vec_dist, trgm_score, ts_rank
FROM candidates
ORDER BY combined_score DESC
LIMIT 10`

beforeAll(async () => {
  // A fresh database, as an application creates one. (This file once spun
  // at full CPU in fresh clones: pg_trgm's similarity() trapped in a side
  // module the preload plugin had left unrelocated, and PGlite swallowed
  // the trap; see side-module-preload.test.ts and trap-guard.test.ts.)
  db = await PGlite.create({ extensions: { infer: testPgInfer(), vector, pg_trgm } })
  await db.exec(`CREATE EXTENSION IF NOT EXISTS pg_infer;
                 CREATE EXTENSION IF NOT EXISTS vector;
                 CREATE EXTENSION IF NOT EXISTS pg_trgm;
                 CREATE EXTENSION pg_infer_vector;`)
  await db.query("select infer_create_model('q', $1)", [await fixtureVindex('f16')])
  await db.exec("set infer.default_model = 'q'")
  const facts: Fact[] = readFileSync(`${QWEN_FIXTURE}/facts.jsonl`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Fact)
  // a "paper" per fact: its sentence as the title, every fact of its
  // subject as the body
  const bySubject = new Map<string, string[]>()
  for (const f of facts)
    bySubject.set(f.subject, [...(bySubject.get(f.subject) ?? []), SENTENCE[f.relation]!(f)])
  const titles = facts.map((f) => SENTENCE[f.relation]!(f))
  const bodies = facts.map((f) => bySubject.get(f.subject)!.join(' '))
  const { rows } = await db.query<{ n: number }>(
    "select array_length(infer_embedding('x'), 1) as n",
  )
  const N = rows[0]!.n
  await db.exec(`CREATE TABLE papers (
        id     serial PRIMARY KEY,
        title  text NOT NULL,
        body   text NOT NULL,
        embed  vector(${N})
    )`)
  await db.query(
    'insert into papers (title, body) select t, b from unnest($1::text[], $2::text[]) as u(t, b)',
    [titles, bodies],
  )
  await db.exec('update papers set embed = infer_embed(title)')
  await db.exec(`CREATE INDEX ON papers USING infer (title) WITH (model = 'q');
    CREATE INDEX ON papers USING gin (body gin_trgm_ops);
    CREATE INDEX ON papers USING ivfflat (embed vector_cosine_ops) WITH (lists = 10);
    CREATE INDEX ON papers USING gin (to_tsvector('english', body));
    ANALYZE papers;`)
})
afterAll(async () => {
  await db?.close()
})

type Row = {
  id: number
  title: string
  combined_score: number
  infer_dist: number
  vec_dist: number
  trgm_score: number
  ts_rank: number
}

describe("the seed's combined search", () => {
  it("runs as written and returns ranked rows, France's capital first", async () => {
    const { rows } = await db.query<Row>(SEED_QUERY())
    expect(rows).toHaveLength(10)
    const scores = rows.map((r) => r.combined_score)
    expect([...scores].sort((a, b) => b - a)).toEqual(scores)
    expect(rows[0]!.title).toBe('The capital of France is Paris.')
    // each score is the weighted sum of its four signals
    for (const r of rows)
      expect(r.combined_score).toBeCloseTo(
        0.4 * (1 - r.infer_dist) + 0.3 * (1 - r.vec_dist) + 0.2 * r.trgm_score + 0.1 * r.ts_rank,
        6, // similarity() and ts_rank() are real (float4)
      )
  })

  it('each signal contributes: it varies over the candidates, and without it the ranking changes', async () => {
    const { rows } = await db.query<Row>(SEED_QUERY())
    for (const k of ['infer_dist', 'vec_dist', 'trgm_score', 'ts_rank'] as const)
      expect(new Set(rows.map((r) => r[k])).size, k).toBeGreaterThan(1)
    const ids = (rs: Row[]) => rs.map((r) => r.id).join(',')
    for (let i = 0; i < 4; i++) {
      const w = [0.4, 0.3, 0.2, 0.1]
      w[i] = 0
      const without = await db.query<Row>(SEED_QUERY(w))
      expect(ids(without.rows), `without signal ${i}`).not.toBe(ids(rows))
    }
  })

  it('its signals match the functions behind them', async () => {
    const { rows } = await db.query<Row>(SEED_QUERY())
    const r = rows[0]!
    const check = await db.query<{ d: number; v: number }>(
      `select infer_distance(title, 'capital of France') as d,
              embed <=> infer_embedding('capital of France')::vector as v
       from papers where id = $1`,
      [r.id],
    )
    expect(check.rows[0]!.d).toBe(r.infer_dist)
    expect(check.rows[0]!.v).toBeCloseTo(r.vec_dist, 12)
  })

  it('EXPLAIN: the candidate scan uses the full-text index; with a title trigram index both OR branches are index scans', async () => {
    const plan = async (sql: string) =>
      (await db.query<{ 'QUERY PLAN': string }>(`explain ${sql}`)).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n')
    await db.exec('set enable_seqscan = off')
    // the seed indexes body with gin_trgm_ops but filters on title %:
    // that branch cannot use it, so the OR is a sequential filter
    expect(await plan(SEED_QUERY())).toContain('Seq Scan on papers')
    await db.exec('create index papers_title_trgm on papers using gin (title gin_trgm_ops)')
    const p = await plan(SEED_QUERY())
    await db.exec('drop index papers_title_trgm; reset enable_seqscan')
    expect(p).toContain('BitmapOr')
    expect(p).toContain('papers_to_tsvector_idx')
    expect(p).toContain('papers_title_trgm')
  })

  it('EXPLAIN: each signal alone is served by its index (<~> infer, <=> ivfflat, % trigram)', async () => {
    const plan = async (sql: string) =>
      (await db.query<{ 'QUERY PLAN': string }>(`explain ${sql}`)).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n')
    expect(
      await plan("select id from papers order by title <~> 'capital of France' limit 10"),
    ).toContain('Index Scan using papers_title_idx')
    expect(
      await plan(
        "select id from papers order by embed <=> infer_embed('capital of France') limit 10",
      ),
    ).toContain('Index Scan using papers_embed_idx')
    await db.exec('set enable_seqscan = off')
    const trgm = await plan("select id from papers where body % 'capital of France'")
    await db.exec('reset enable_seqscan')
    expect(trgm).toContain('papers_body_idx')
  })
})
