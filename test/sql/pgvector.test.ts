// pgvector (the `pglite-infer/vector` extension) loaded beside pg_infer in one
// PGlite: its operators on literals, its casts, its errors, and its two index
// access methods against the sequential-scan ordering they stand in for.
import type { PGlite } from '@electric-sql/pglite'
import { vector } from 'pglite-infer/vector'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDbWith, sqlError } from '../helpers/db.js'

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DIM = 16
const ROWS = 400
const rand = rng(20240611)
/** A vector literal of DIM components in [-1, 1), 4 decimals (exact as text). */
const randomVector = (): string =>
  `[${Array.from({ length: DIM }, () => (rand() * 2 - 1).toFixed(4)).join(',')}]`
const rows = Array.from({ length: ROWS }, randomVector)
const queries = Array.from({ length: 6 }, randomVector)

let db: PGlite

beforeAll(async () => {
  db = await openDbWith({ vector }, 'CREATE EXTENSION vector')
  await db.exec(`create table items (id int primary key, embedding vector(${DIM}))`)
  await db.query(
    'insert into items select i, v::vector from unnest($1::text[]) with ordinality as u(v, i)',
    [rows],
  )
  await db.exec('create index items_hnsw on items using hnsw (embedding vector_l2_ops)')
  await db.exec(
    'create index items_ivf on items using ivfflat (embedding vector_cosine_ops) with (lists = 8)',
  )
  await db.exec('analyze items')
})
afterAll(async () => {
  await db?.close()
})

describe('pgvector in PGlite beside pg_infer', () => {
  it('is the bundle built here: extension version 0.8.0, and pg_infer still answers', async () => {
    const { rows } = await db.query<{ extversion: string }>(
      "select extversion from pg_extension where extname = 'vector'",
    )
    expect(rows).toEqual([{ extversion: '0.8.0' }])
    const infer = await db.query<{ v: string }>('select infer_version() as v')
    expect(infer.rows[0]!.v).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('computes L2, cosine and negative inner product distances exactly on small literals', async () => {
    const { rows } = await db.query(`select
      '[1,2,3]'::vector <-> '[4,6,3]' as l2,
      '[0,0]'::vector <-> '[0,0]' as l2_zero,
      '[1,0]'::vector <=> '[0,1]' as cos_orthogonal,
      '[1,0]'::vector <=> '[-1,0]' as cos_opposite,
      '[1,1]'::vector <=> '[2,2]' as cos_parallel,
      '[1,2,3]'::vector <#> '[4,5,6]' as neg_ip,
      l2_distance('[1,2,3]'::vector, '[4,6,3]') as l2_fn,
      cosine_distance('[1,0]'::vector, '[0,1]') as cos_fn,
      inner_product('[1,2,3]'::vector, '[4,5,6]') as ip_fn`)
    expect(rows).toEqual([
      {
        l2: 5,
        l2_zero: 0,
        cos_orthogonal: 1,
        cos_opposite: 2,
        cos_parallel: 0,
        neg_ip: -32,
        l2_fn: 5,
        cos_fn: 1,
        ip_fn: 32,
      },
    ])
  })

  it('casts real[] to vector and back, and reports dimensions', async () => {
    const { rows } = await db.query(`select
      ARRAY[1,2,3]::real[]::vector::text as v,
      vector_dims(ARRAY[1,2,3]::real[]::vector) as dims,
      vector_dims('[0.5,1.5]'::vector) as dims2,
      '[1.5,-2,3]'::vector::real[] as arr`)
    expect(rows).toEqual([{ v: '[1,2,3]', dims: 3, dims2: 2, arr: [1.5, -2, 3] }])
  })

  it('refuses vectors of different dimensions with data_exception (22000); the backend keeps working', async () => {
    expect(await sqlError(db, "select '[1,2]'::vector <-> '[1,2,3]'")).toEqual({
      code: '22000',
      message: 'different vector dimensions 2 and 3',
    })
    expect(await sqlError(db, "insert into items values (10000, '[1,2,3]')")).toEqual({
      code: '22000',
      message: `expected ${DIM} dimensions, not 3`,
    })
    const { rows } = await db.query("select '[3,4]'::vector <-> '[0,0]' as d")
    expect(rows).toEqual([{ d: 5 }])
    expect((await db.query('select count(*)::int as n from items')).rows).toEqual([{ n: ROWS }])
  })
})

/** The first k ids ordered by `op` from query vector q, with or without indexes. */
async function nearest(op: string, q: string, k: number, useIndex: boolean): Promise<number[]> {
  return db.transaction(async (tx) => {
    if (useIndex) {
      await tx.exec('set local enable_seqscan = off; set local ivfflat.probes = 8')
    } else {
      await tx.exec('set local enable_indexscan = off; set local enable_bitmapscan = off')
    }
    const { rows } = await tx.query<{ id: number }>(
      `select id from items order by embedding ${op} $1::vector limit ${k}`,
      [q],
    )
    return rows.map((r) => r.id)
  })
}

async function plan(op: string, q: string): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.exec('set local enable_seqscan = off; set local ivfflat.probes = 8')
    const { rows } = await tx.query<{ 'QUERY PLAN': string }>(
      `explain select id from items order by embedding ${op} $1::vector limit 10`,
      [q],
    )
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
}

describe('pgvector indexes against the sequential scan', () => {
  it('the exact orderings are sequential scans, the indexed ones index scans', async () => {
    const exact = await db.transaction(async (tx) => {
      await tx.exec('set local enable_indexscan = off; set local enable_bitmapscan = off')
      const { rows } = await tx.query<{ 'QUERY PLAN': string }>(
        `explain select id from items order by embedding <-> $1::vector limit 10`,
        [queries[0]],
      )
      return rows.map((r) => r['QUERY PLAN']).join('\n')
    })
    expect(exact).toContain('Seq Scan on items')
    expect(await plan('<->', queries[0]!)).toContain('Index Scan using items_hnsw on items')
    expect(await plan('<=>', queries[0]!)).toContain('Index Scan using items_ivf on items')
  })

  it('hnsw (vector_l2_ops) finds at least 9 of the exact 10 nearest for every query', async () => {
    for (const q of queries) {
      const exact = await nearest('<->', q, 10, false)
      const viaIndex = await nearest('<->', q, 10, true)
      expect(exact).toHaveLength(10)
      expect(viaIndex).toHaveLength(10)
      const found = viaIndex.filter((id) => exact.includes(id)).length
      expect(found / 10, q).toBeGreaterThanOrEqual(0.9)
    }
  })

  it('ivfflat (vector_cosine_ops) with probes = lists returns exactly the sequential-scan ids', async () => {
    for (const q of queries) {
      const exact = await nearest('<=>', q, 10, false)
      expect(exact).toHaveLength(10)
      expect(await nearest('<=>', q, 10, true), q).toEqual(exact)
    }
  })
})
