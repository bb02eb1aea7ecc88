// infer.compute = 'onnx' (ONNX Runtime in a worker thread, packages/compute)
// against the built-in 'wasm' kernels: the same (layer, feature) sets and
// rows, scores within 1e-4 relative, on the knowledge fixture (f16, f32) and
// stories260K; index builds on 'onnx' order like sequential scans; a worker
// that dies is reported and replaced.
import type { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { InferNamespace } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE, STORIES_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

const REL = 1e-4

let db: PGlite & { infer: InferNamespace }

async function on<T>(backend: 'wasm' | 'onnx', f: () => Promise<T>): Promise<T> {
  await db.exec(`set infer.compute = '${backend}'`)
  try {
    return await f()
  } finally {
    await db.exec('reset infer.compute')
  }
}

async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(sql, params)).rows
}

/** The same query on both backends. */
async function both<T>(sql: string, params: unknown[] = []): Promise<{ wasm: T[]; onnx: T[] }> {
  const wasm = await on('wasm', () => rows<T>(sql, params))
  const onnx = await on('onnx', () => rows<T>(sql, params))
  return { wasm, onnx }
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b), 1e-6)
}

/** Same keys in the same order; each numeric field within REL. */
function expectSame<T extends object>(
  wasm: T[],
  onnx: T[],
  key: (r: T) => string,
  num: (r: T) => number,
): void {
  expect(wasm.length).toBeGreaterThan(0)
  expect(new Set(onnx.map(key))).toEqual(new Set(wasm.map(key)))
  const byKey = new Map(onnx.map((r) => [key(r), r]))
  for (const w of wasm) {
    const o = byKey.get(key(w))!
    if (!close(num(w), num(o))) expect([key(w), num(o)]).toEqual([key(w), num(w)])
  }
}

const qwenWords = ['France', 'Paris', 'Japan', 'the yen', 'capital of Germany', 'Spanish']
const storyWords = ['cat', 'Lily', 'the ball', 'happy', 'Once upon a time', 'tree']
const models: { name: string; words: string[] }[] = [
  { name: 'qf16', words: qwenWords },
  { name: 'qf32', words: qwenWords },
  { name: 's', words: storyWords },
]

beforeAll(async () => {
  db = await openDb()
  const stories = join(scratchDir('stories-browse'), 'model.vindex')
  await extractVindexDir(STORIES_FIXTURE, stories, {
    dtype: 'f32',
    level: 'browse',
    modelName: 'stories260K',
    workers: 0,
  })
  await db.query("select infer_create_model('qf16', $1)", [await fixtureVindex('f16')])
  await db.query("select infer_create_model('qf32', $1)", [await fixtureVindex('f32')])
  await db.query("select infer_create_model('s', $1)", [stories])
}, 120_000)

afterAll(async () => {
  await db?.infer.compute.terminate()
  await db?.close()
})

describe.each(models)('$name: onnx equals wasm', ({ name, words }) => {
  it('infer_signatures: same (layer, feature) sets, scores within 1e-4', async () => {
    type Row = { ord: number; layer: number; feature: number; score: number }
    const { wasm, onnx } = await both<Row>(
      'select * from infer_signatures($1::text[], $2) order by ord, score desc, layer, feature',
      [words, name],
    )
    expectSame(
      wasm,
      onnx,
      (r) => `${r.ord}/${r.layer}/${r.feature}`,
      (r) => r.score,
    )
  })

  it('walk(): same rows', async () => {
    type Row = { layer: number; feature: number; activation: number; concept: string }
    for (const prompt of words.slice(0, 3)) {
      const { wasm, onnx } = await both<Row>('select * from walk($1, 20, $2)', [prompt, name])
      expectSame(
        wasm,
        onnx,
        (r) => `${r.layer}/${r.feature}/${r.concept}`,
        (r) => r.activation,
      )
    }
    // a band: only its layers are scanned
    const { wasm, onnx } = await both<Row>("select * from walk($1, 10, $2, band => 'knowledge')", [
      words[0],
      name,
    ])
    expectSame(
      wasm,
      onnx,
      (r) => `${r.layer}/${r.feature}/${r.concept}`,
      (r) => r.activation,
    )
  })

  it('describe(): same rows', async () => {
    type Row = { relation: string; target: string; confidence: number; layer: number }
    for (const entity of words.slice(0, 3)) {
      const { wasm, onnx } = await both<Row>('select * from describe($1, $2)', [entity, name])
      expect(onnx.map((r) => `${r.relation}/${r.target}/${r.layer}`)).toEqual(
        wasm.map((r) => `${r.relation}/${r.target}/${r.layer}`),
      )
      wasm.forEach((w, i) => expect(close(w.confidence, onnx[i]!.confidence)).toBe(true))
    }
  })

  it('similar_to within 1e-4', async () => {
    for (let i = 0; i + 1 < words.length; i++) {
      const sql = 'select similar_to($1, $2, $3) as s'
      const { wasm, onnx } = await both<{ s: number }>(sql, [words[i], words[i + 1], name])
      expect(close(wasm[0]!.s, onnx[0]!.s)).toBe(true)
    }
  })
})

describe('a column index built on onnx', () => {
  it('orders like the sequential sort', async () => {
    const corpus = readFileSync(`${QWEN_FIXTURE}/corpus.txt`, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, 150)
    await db.exec('create table docs (id serial primary key, title text)')
    await db.query('insert into docs (title) select unnest($1::text[])', [corpus])
    await db.exec("set infer.default_model = 'qf16'")
    await on('onnx', () =>
      db.exec("create index docs_title on docs using infer (title) with (model = 'qf16')"),
    )
    for (const q of ['capital of France', 'currency', 'Japan', 'language of Spain']) {
      await db.exec('set enable_indexscan = on; set enable_seqscan = off')
      const index = await rows<{ id: number }>(
        'select id from docs order by title <~> $1 limit 20',
        [q],
      )
      await db.exec('set enable_indexscan = off; set enable_seqscan = on')
      const seq = await rows<{ id: number }>(
        'select id from docs order by title <~> $1, ctid limit 20',
        [q],
      )
      await db.exec('reset enable_indexscan; reset enable_seqscan')
      expect([q, index.map((r) => r.id)]).toEqual([q, seq.map((r) => r.id)])
    }
    await db.exec('drop table docs; reset infer.default_model')
  })
})

describe('choosing and failing', () => {
  it('refuses an unknown infer.compute with 22023', async () => {
    expect((await sqlError(db, "set infer.compute = 'gpu'")).code).toBe('22023')
    expect((await rows<{ c: string }>("select current_setting('infer.compute') as c"))[0]!.c).toBe(
      'auto',
    )
  })

  it('a terminated worker is restarted by the next call', async () => {
    const sql = "select count(*)::int as n from infer_signatures(array['France', 'Japan'], 'qf16')"
    const before = await on('onnx', () => rows<{ n: number }>(sql))
    await db.infer.compute.terminate()
    expect(await on('onnx', () => rows<{ n: number }>(sql))).toEqual(before)
  })

  it('a worker that dies mid-call is a clear error, and the next query works', async () => {
    const sql = "select count(*)::int as n from walk('France', 10, 'qf32')"
    const before = await on('onnx', () => rows<{ n: number }>(sql))
    db.infer.compute.crashNextCall()
    const err = await on('onnx', () => sqlError(db, sql))
    expect(err.code).toBe('58000')
    expect(err.message).toMatch(/compute worker exited/)
    expect(await on('onnx', () => rows<{ n: number }>(sql))).toEqual(before)
  })

  it('statement_timeout ends a call in the worker with 57014; the next call works', async () => {
    const sql = "select count(*)::int as n from walk('France', 10, 'qf16')"
    const before = await on('onnx', () => rows<{ n: number }>(sql))
    // the worker is busy for 5 s: the statement must not wait for it
    db.infer.compute.stallNextCall(5000)
    await db.exec("set statement_timeout = '300ms'")
    const t0 = performance.now()
    const err = await on('onnx', () => sqlError(db, sql))
    const ms = performance.now() - t0
    await db.exec('reset statement_timeout')
    expect(err.code).toBe('57014')
    expect(err.message).toMatch(/statement timeout/)
    // the client waits in 50 ms slices
    expect(ms).toBeLessThan(300 + 500)
    expect(await on('onnx', () => rows<{ n: number }>(sql))).toEqual(before)
  })

  it('a model re-created under the same name is reloaded in the backend', async () => {
    type Row = { layer: number; feature: number; score: number }
    const sql = "select layer, feature, score from infer_signatures(array['Paris'], 'm')"
    await db.query("select infer_create_model('m', $1)", [await fixtureVindex('f16')])
    const first = await on('onnx', () => rows<Row>(sql))
    await db.query("select infer_drop_model('m')")
    await db.query("select infer_create_model('m', $1)", [await fixtureVindex('f32')])
    const { wasm, onnx } = await both<Row>(sql)
    expectSame(
      wasm,
      onnx,
      (r) => `${r.layer}/${r.feature}`,
      (r) => r.score,
    )
    expect(first.length).toBe(onnx.length)
    await db.query("select infer_drop_model('m')")
  })
})
