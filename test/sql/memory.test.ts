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

/**
 * Tolerances. The fixture's vindex is 5 MB: a leak of one per cycle would be
 * 500 MB over 100 cycles. RSS also moves with the allocator and the garbage
 * collector, so it gets a wide margin; the JavaScript heap plus array
 * buffers (where the host holds a vindex's bytes) and PostgreSQL's memory
 * contexts are exact enough for narrow ones.
 */
const RSS_TOLERANCE_MB = 128
const JS_TOLERANCE_MB = 24
const CONTEXT_TOLERANCE_MB = 2

let db: PGlite
let vindex: string
beforeAll(async () => {
  db = await openDb()
  vindex = await fixtureVindex('f16')
})
afterAll(() => db.close())

interface Usage {
  rssMb: number
  jsMb: number
  contextsMb: number
}

async function usage(): Promise<Usage> {
  gc()
  gc()
  const { rows } = await db.query<{ b: number }>(
    'select sum(total_bytes)::float8 as b from pg_backend_memory_contexts',
  )
  const m = process.memoryUsage()
  return {
    rssMb: m.rss / 2 ** 20,
    jsMb: (m.heapUsed + m.arrayBuffers) / 2 ** 20,
    contextsMb: rows[0]!.b / 2 ** 20,
  }
}

async function growth(cycles: number, cycle: (i: number) => Promise<void>) {
  for (let i = 0; i < 10; i++) await cycle(i) // warm caches and the allocator
  const before = await usage()
  for (let i = 0; i < cycles; i++) await cycle(i)
  const after = await usage()
  const growth = {
    rssMb: after.rssMb - before.rssMb,
    jsMb: after.jsMb - before.jsMb,
    contextsMb: after.contextsMb - before.contextsMb,
  }
  console.log(`growth over ${cycles} cycles (MB):`, JSON.stringify(growth))
  return growth
}

function expectFlat(g: Usage): void {
  expect(g.contextsMb).toBeLessThan(CONTEXT_TOLERANCE_MB)
  expect(g.jsMb).toBeLessThan(JS_TOLERANCE_MB)
  expect(g.rssMb).toBeLessThan(RSS_TOLERANCE_MB)
}

describe('memory over many model lifetimes', () => {
  it('1,000 create/drop cycles', async () => {
    const g = await growth(1000, async () => {
      await db.query("select infer_create_model('cyc', $1)", [vindex])
      await db.query("select count(*) from walk('France', 3, 'cyc')")
      await db.query("select infer_drop_model('cyc')")
    })
    expectFlat(g)
  })

  it('100 creates refused by infer.max_memory', async () => {
    await db.exec('set infer.max_memory = 1')
    const g = await growth(100, async () => {
      expect((await sqlError(db, "select infer_create_model('big', $1)", [vindex])).code).toBe(
        '53200',
      )
    })
    await db.exec('reset infer.max_memory')
    expectFlat(g)
  })

  it('100 rolled-back creates', async () => {
    const g = await growth(100, async () => {
      await db.exec('begin')
      await db.query("select infer_create_model('rolled', $1)", [vindex])
      await db.exec('rollback')
    })
    expect((await db.query('select * from infer_loaded_models()')).rows).toEqual([])
    expectFlat(g)
  })
})
