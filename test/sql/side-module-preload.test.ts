// Side modules load when PostgreSQL dlopens them (pg_infer sets emscripten's
// noWasmDecoding): with PGlite's preload plugin, the first database of a
// process that bundled pg_infer, vector and pg_trgm trapped in pg_trgm's
// similarity() ("null function or function signature mismatch"), and PGlite
// alone returned no rows at all for it now and then. docs/architecture.md.
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { vector } from 'pglite-infer/vector'
import { describe, expect, it } from 'vitest'
import { testPgInfer } from '../helpers/db.js'

async function trigramAnswers(db: PGlite) {
  await db.exec('create extension pg_trgm; create extension vector; create extension pg_infer')
  const scores = await db.query<{ s: number; d: number }>(
    `select similarity('capital of France', 'The capital of France is Paris.') as s,
            'abc' <-> 'abd' as d`,
  )
  await db.exec(`create table t (b text);
                 insert into t select 'row ' || g from generate_series(1, 200) g;
                 create index on t using gin (b gin_trgm_ops)`)
  const hits = await db.query<{ n: number }>(`select count(*)::int as n from t where b % 'row 12'`)
  const vec = await db.query<{ d: number }>(`select '[1,0]'::vector <-> '[0,1]'::vector as d`)
  return { scores: scores.rows, hits: hits.rows, vec: vec.rows }
}

describe('side modules beside pg_infer', () => {
  it('pg_trgm and vector answer in every fresh database of the process, the first included', async () => {
    for (let i = 0; i < 3; i++) {
      const db = await PGlite.create({ extensions: { infer: testPgInfer(), vector, pg_trgm } })
      try {
        expect(await trigramAnswers(db)).toEqual({
          scores: [{ s: 0.6, d: 0.6666666 }],
          hits: [{ n: 200 }],
          vec: [{ d: Math.SQRT2 }],
        })
      } finally {
        await db.close()
      }
    }
  }, 120_000)
})
