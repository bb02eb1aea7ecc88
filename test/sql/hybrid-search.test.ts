// The seed's combined query shape: <~> (model knowledge, via the infer index)
// beside pg_trgm similarity and full-text ts_rank, in one ranked CTE, with
// what PGlite ships today.
import type { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { readFileSync } from 'node:fs'
import { openDbWith } from '../helpers/db.js'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'

let db: PGlite

beforeAll(async () => {
  db = await openDbWith({ pg_trgm }, 'CREATE EXTENSION pg_trgm')
  await db.query("select infer_create_model('q', $1)", [await fixtureVindex('f16')])
  await db.exec("set infer.default_model = 'q'")
  const lines = readFileSync(`${QWEN_FIXTURE}/corpus.txt`, 'utf8').split('\n').filter(Boolean)
  await db.exec('create table docs (id serial primary key, title text)')
  await db.query('insert into docs (title) select unnest($1::text[])', [lines.slice(0, 400)])
  await db.exec("create index docs_infer on docs using infer (title) with (model = 'q')")
  await db.exec('create index docs_trgm on docs using gin (title gin_trgm_ops)')
  await db.exec('analyze docs')
})
afterAll(async () => {
  await db?.close()
})

const HYBRID = `
with knowledge as (
  select id, row_number() over () as r
  from (select id from docs order by title <~> $1 limit 20) k
),
trigram as (
  select id, row_number() over (order by similarity(title, $1) desc, id) as r
  from docs where title % $1
),
fulltext as (
  select id, row_number() over (order by ts_rank(to_tsvector('english', title),
                                                 plainto_tsquery('english', $1)) desc, id) as r
  from docs where to_tsvector('english', title) @@ plainto_tsquery('english', $1)
)
select d.id, d.title,
       coalesce(1.0 / (60 + k.r), 0) + coalesce(1.0 / (60 + t.r), 0) + coalesce(1.0 / (60 + f.r), 0) as score
from docs d
left join knowledge k using (id) left join trigram t using (id) left join fulltext f using (id)
where k.id is not null or t.id is not null or f.id is not null
order by score desc, d.id
limit 10`

it('ranks rows by knowledge, trigram and full-text together (reciprocal rank fusion)', async () => {
  const { rows } = await db.query<{ id: number; title: string; score: number }>(HYBRID, [
    'capital of Andorra',
  ])
  expect(rows).toHaveLength(10)
  expect(rows.some((r) => /Andorra/.test(r.title))).toBe(true)
  const scores = rows.map((r) => Number(r.score))
  expect([...scores].sort((a, b) => b - a)).toEqual(scores)
})

it('the knowledge branch of that CTE runs as an infer index scan', async () => {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(`explain ${HYBRID}`, ['Japan'])
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n')
  expect(plan).toContain('Index Scan using docs_infer on docs')
  expect(plan).toMatch(/docs_trgm|Seq Scan/)
})
