// Memory stays flat over many model lifetimes (issue 16): create/drop
// cycles, creates refused by infer.max_memory, and rolled-back creates.
// Measured two ways: the backend's memory contexts (C, in the WASM heap) and
// the process's resident set (the host's JavaScript side, which holds a
// vindex's bytes while C loads it).
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { PGlite } from '@electric-sql/pglite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { fixtureVindex } from '../helpers/vindex.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Tolerances: what a leak of one vindex per cycle would pass many times over. */
const RSS_TOLERANCE_MB = 48
const CONTEXT_TOLERANCE_MB = 2

let db: PGlite
let vindex: string
beforeAll(async () => {
  db = await openDb()
  vindex = await fixtureVindex('f16')
})
afterAll(() => db.close())

async function usage(): Promise<{ rssMb: number; contextsMb: number }> {
  gc()
  const { rows } = await db.query<{ b: number }>(
    'select sum(total_bytes)::float8 as b from pg_backend_memory_contexts',
  )
  return { rssMb: process.memoryUsage().rss / 2 ** 20, contextsMb: rows[0]!.b / 2 ** 20 }
}

async function growth(cycles: number, cycle: (i: number) => Promise<void>) {
  for (let i = 0; i < 10; i++) await cycle(i) // warm caches and the allocator
  const before = await usage()
  for (let i = 0; i < cycles; i++) await cycle(i)
  const after = await usage()
  return { rssMb: after.rssMb - before.rssMb, contextsMb: after.contextsMb - before.contextsMb }
}

describe('memory over many model lifetimes', () => {
  it('1,000 create/drop cycles', async () => {
    const g = await growth(1000, async () => {
      await db.query("select infer_create_model('cyc', $1)", [vindex])
      await db.query("select count(*) from walk('France', 3, 'cyc')")
      await db.query("select infer_drop_model('cyc')")
    })
    expect(g.contextsMb).toBeLessThan(CONTEXT_TOLERANCE_MB)
    expect(g.rssMb).toBeLessThan(RSS_TOLERANCE_MB)
  })

  it('100 creates refused by infer.max_memory', async () => {
    await db.exec('set infer.max_memory = 1')
    const g = await growth(100, async () => {
      expect((await sqlError(db, "select infer_create_model('big', $1)", [vindex])).code).toBe(
        '53200',
      )
    })
    await db.exec('reset infer.max_memory')
    expect(g.contextsMb).toBeLessThan(CONTEXT_TOLERANCE_MB)
    expect(g.rssMb).toBeLessThan(RSS_TOLERANCE_MB)
  })

  it('100 rolled-back creates', async () => {
    const g = await growth(100, async () => {
      await db.exec('begin')
      await db.query("select infer_create_model('rolled', $1)", [vindex])
      await db.exec('rollback')
    })
    expect((await db.query('select * from infer_loaded_models()')).rows).toEqual([])
    expect(g.contextsMb).toBeLessThan(CONTEXT_TOLERANCE_MB)
    expect(g.rssMb).toBeLessThan(RSS_TOLERANCE_MB)
  })
})
