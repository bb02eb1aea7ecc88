// infer_stats(), infer_stats_reset(), infer_warmup() and infer.log_level.
import type { PGlite } from '@electric-sql/pglite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { fixtureVindex } from '../helpers/vindex.js'

interface StatRow {
  model: string
  function: string
  calls: number
  rows: number
  total_ms: number
  cache_hits: number
  cache_misses: number
  heap_bytes: number
  compute_bytes: number
}

let db: PGlite
let vindex: string

async function stats(model?: string): Promise<Map<string, StatRow>> {
  const { rows } = await db.query<StatRow>(
    model ? 'select * from infer_stats($1)' : 'select * from infer_stats()',
    model ? [model] : [],
  )
  return new Map(rows.map((r) => [`${r.model}/${r.function}`, r]))
}

beforeAll(async () => {
  vindex = await fixtureVindex('f16')
  db = await openDb()
})
afterAll(async () => {
  await db?.close()
})

describe('infer_stats', () => {
  it('counts loads, calls, rows and cache use per model and function', async () => {
    await db.query('select infer_stats_reset()')
    expect((await db.query('select * from infer_stats()')).rows).toEqual([])

    await db.query("select infer_create_model('a', $1)", [vindex])
    let s = await stats()
    expect(s.get('a/load')).toMatchObject({ calls: 1, rows: 0 })
    expect(s.get('a/load')!.total_ms).toBeGreaterThan(0)

    const d1 = await db.query("select * from describe('France', 'a')")
    const d2 = await db.query("select * from describe('Japan', 'a')")
    await db.query("select similar_to('France', 'Germany', 'a')")
    s = await stats()
    expect(s.get('a/describe')).toMatchObject({
      calls: 2,
      rows: d1.rows.length + d2.rows.length,
      cache_hits: 2, // the model was loaded both times
      cache_misses: 0,
    })
    // two signatures computed (misses), the model found loaded (a hit)
    expect(s.get('a/similar_to')).toMatchObject({ calls: 1, rows: 1, cache_misses: 2 })

    // <~ with a constant side: its signature is computed once, then cached
    await db.exec(
      "create temp table t (x text); insert into t values ('Paris'), ('Rome'), ('Oslo')",
    )
    await db.exec("set infer.default_model = 'a'")
    await db.query("select x <~ 'France' from t")
    s = await stats()
    const sim = s.get('a/infer_similarity')!
    expect(sim.calls).toBe(3)
    expect(sim.cache_misses).toBe(3 + 1) // 3 rows' texts + the constant once
    expect(sim.cache_hits).toBe(3 + 2) // the model every call + the constant twice

    // heap bytes are the model's, as infer_models() reports them
    const { rows } = await db.query<{ bytes: number }>(
      "select bytes from infer_models() where model_name = 'a'",
    )
    expect(s.get('a/describe')!.heap_bytes).toBe(Number(rows[0]!.bytes))
    expect(s.get('a/describe')!.compute_bytes).toBe(0)
    expect(s.get('a/describe')!.total_ms).toBeGreaterThan(0)
  })

  it('filters by model; a failed call counts nothing; reset empties it', async () => {
    await db.query("select infer_create_model('b', $1)", [vindex])
    await db.query("select * from walk('France', 3, 'b')")
    const only = await stats('b')
    expect([...only.keys()].sort()).toEqual(['b/load', 'b/walk'])
    const before = only.get('b/walk')!.calls
    expect((await sqlError(db, "select * from walk('', 3, 'b')")).code).toBe('22023')
    expect((await stats('b')).get('b/walk')!.calls).toBe(before)
    await db.query('select infer_stats_reset()')
    expect((await db.query('select * from infer_stats()')).rows).toEqual([])
  })

  it('reports the bytes a host compute backend holds', async () => {
    await db.exec("set infer.compute = 'onnx'")
    await db.query("select * from walk('France', 3, 'b')")
    const s = await stats('b')
    await db.exec('reset infer.compute')
    // 6 layers x 1024 features x 256 hidden as f32
    expect(s.get('b/walk')!.compute_bytes).toBe(6 * 1024 * 256 * 4)
    // infer_models() says which backend computes a model, and what it holds there
    await db.exec("set infer.compute = 'onnx'")
    const onnx = await db.query(
      "select compute, compute_bytes from infer_models() where model_name = 'b'",
    )
    await db.exec('reset infer.compute')
    expect(onnx.rows).toEqual([{ compute: 'onnx', compute_bytes: 6 * 1024 * 256 * 4 }])
    const wasm = await db.query("select compute from infer_models() where model_name = 'b'")
    expect(wasm.rows).toEqual([{ compute: 'wasm' }])
  })
})

describe('infer_warmup', () => {
  it('loads a model ahead of use and warms entities', async () => {
    const other = await openDb()
    await other.query("select infer_create_model('w', $1)", [vindex])
    await other.query("select infer_create_model('w2', $1)", [vindex])
    // a new session: registered, not loaded
    const dump = await other.dumpDataDir('none')
    await other.close()
    const fresh = await openDbFrom(dump)
    const loaded = await fresh.query<{ loaded: boolean }>(
      "select loaded from infer_models() where model_name = 'w'",
    )
    expect(loaded.rows).toEqual([{ loaded: false }])
    const { rows } = await fresh.query<{ r: string }>(
      "select infer_warmup('w', ARRAY['France', NULL, 'Japan', '']) as r",
    )
    expect(rows[0]!.r).toMatch(/^model 'w' loaded \(\d+ bytes\), 2 entities warmed$/)
    expect(
      (await fresh.query("select loaded from infer_models() where model_name = 'w'")).rows,
    ).toEqual([{ loaded: true }])
    const again = await fresh.query<{ r: string }>("select infer_warmup('w') as r")
    expect(again.rows[0]!.r).toMatch(/^model 'w' already loaded \(\d+ bytes\), 0 entities warmed$/)
    expect((await sqlError(fresh, "select infer_warmup('nope')")).code).toBe('42704')
    expect((await sqlError(fresh, 'select infer_warmup(NULL)')).code).toBe('22004')
    await fresh.close()
  })
})

describe('infer.log_level', () => {
  async function notices(sql: string): Promise<string[]> {
    const seen: string[] = []
    await db.query(sql, [], { onNotice: (n) => seen.push(`${n.severity}: ${n.message}`) })
    return seen.filter((m) => m.includes('pg_infer'))
  }

  it('is warning by default: pg_infer says nothing of its work', async () => {
    expect((await db.query('show infer.log_level')).rows).toEqual([
      { 'infer.log_level': 'warning' },
    ])
    expect(await notices("select infer_create_model('l0', '" + vindex + "')")).toEqual([])
  })

  it('info reports model loads', async () => {
    await db.exec("set infer.log_level = 'info'")
    const seen = await notices("select infer_create_model('l1', '" + vindex + "')")
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatch(
      new RegExp(
        `^INFO: pg_infer: loaded model "l1" from ${vindex} in [0-9.]+ ms \\(\\d+ bytes in the heap\\)$`,
      ),
    )
    // per-call lines are debug only
    expect(await notices("select * from describe('France', 'l1')")).toEqual([])
  })

  it('debug adds one line per call (shown with client_min_messages = debug1)', async () => {
    await db.exec("set infer.log_level = 'debug'; set client_min_messages = debug1")
    const seen = await notices("select * from walk('France', 4, 'l1')")
    await db.exec('reset client_min_messages; reset infer.log_level')
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatch(
      /^DEBUG: pg_infer: walk on model "l1": 4 rows in [0-9.]+ ms, cache hit$/,
    )
  })

  it("accepts the peer's level names and refuses others", async () => {
    await db.exec("set infer.log_level = 'trace'")
    expect((await db.query('show infer.log_level')).rows).toEqual([{ 'infer.log_level': 'debug' }])
    await db.exec("set infer.log_level = 'warn'")
    expect((await db.query('show infer.log_level')).rows).toEqual([
      { 'infer.log_level': 'warning' },
    ])
    expect((await sqlError(db, "set infer.log_level = 'loud'")).code).toBe('22023')
    await db.exec('reset infer.log_level')
  })
})

async function openDbFrom(dump: Blob | File): Promise<PGlite> {
  const { PGlite } = await import('@electric-sql/pglite')
  const { testPgInfer } = await import('../helpers/db.js')
  const db = await PGlite.create({ loadDataDir: dump, extensions: { pgInfer: testPgInfer() } })
  return db
}
