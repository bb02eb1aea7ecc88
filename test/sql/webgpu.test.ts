// infer.compute = 'webgpu' (a GPU through WebGPU in a worker thread,
// packages/compute/src/webgpu) against the built-in 'wasm' kernels: the same
// hit sets, scores within 1e-4 relative, for walk, describe and signatures on
// the knowledge fixture (f16, f32), stories260K and a tiny checkpoint of every
// family; index builds order like sequential scans; a lost device, a limit too
// small for a matrix and a missing adapter are clear errors; 'auto' keeps wasm
// on a software adapter and falls back when the GPU fails. In CI on lavapipe.
import type { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { InferNamespace } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE, STORIES_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { webgpuAvailable } from '../helpers/webgpu.js'
import { TINY_FAMILIES, makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

const REL = 1e-4
const gpu = await webgpuAvailable('webgpu.test.ts')

type Db = PGlite & { infer: InferNamespace }
let db: Db

async function on<T>(backend: string, f: () => Promise<T>, d: Db = db): Promise<T> {
  await d.exec(`set infer.compute = '${backend}'`)
  try {
    return await f()
  } finally {
    await d.exec('reset infer.compute')
  }
}

async function rows<T>(sql: string, params: unknown[] = [], d: Db = db): Promise<T[]> {
  return (await d.query<T>(sql, params)).rows
}

async function both<T>(sql: string, params: unknown[] = []): Promise<{ wasm: T[]; gpu: T[] }> {
  const wasm = await on('wasm', () => rows<T>(sql, params))
  const gpu = await on('webgpu', () => rows<T>(sql, params))
  return { wasm, gpu }
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b), 1e-6)
}

function expectSame<T extends object>(
  wasm: T[],
  gpu: T[],
  key: (r: T) => string,
  num: (r: T) => number,
  nonEmpty = true,
): void {
  if (nonEmpty) expect(wasm.length).toBeGreaterThan(0)
  expect(new Set(gpu.map(key))).toEqual(new Set(wasm.map(key)))
  const byKey = new Map(gpu.map((r) => [key(r), r]))
  for (const w of wasm) {
    const o = byKey.get(key(w))!
    if (!close(num(w), num(o))) expect([key(w), num(o)]).toEqual([key(w), num(w)])
  }
}

const qwenWords = ['France', 'Paris', 'Japan', 'the yen', 'capital of Germany', 'Spanish']
const storyWords = ['cat', 'Lily', 'the ball', 'happy', 'Once upon a time', 'tree']
const models: { name: string; words: string[]; nonEmpty: boolean }[] = [
  { name: 'qf16', words: qwenWords, nonEmpty: true },
  { name: 'qf32', words: qwenWords, nonEmpty: true },
  { name: 's', words: storyWords, nonEmpty: true },
  ...TINY_FAMILIES.map((f) => ({ name: `tiny_${f}`, words: storyWords, nonEmpty: false })),
]

beforeAll(async () => {
  if (!gpu) return
  db = await openDb()
  const work = scratchDir('webgpu-sql')
  const stories = join(work, 'stories.vindex')
  await extractVindexDir(STORIES_FIXTURE, stories, {
    dtype: 'f32',
    level: 'browse',
    modelName: 'stories260K',
    workers: 0,
  })
  await db.query("select infer_create_model('qf16', $1)", [await fixtureVindex('f16')])
  await db.query("select infer_create_model('qf32', $1)", [await fixtureVindex('f32')])
  await db.query("select infer_create_model('s', $1)", [stories])
  for (const family of TINY_FAMILIES) {
    const tiny = await makeTinyCheckpoint(family, { dir: join(work, `tiny-${family}`) })
    const out = join(work, `tiny-${family}.vindex`)
    await extractVindexDir(tiny.dir, out, { level: 'browse', modelName: family, workers: 0 })
    await db.query('select infer_create_model($1, $2)', [`tiny_${family}`, out])
  }
}, 300_000)

afterAll(async () => {
  await db?.infer.webgpu.terminate()
  await db?.close()
})

describe.skipIf(!gpu).each(models)('$name: webgpu equals wasm', ({ name, words, nonEmpty }) => {
  it('infer_signatures: same (layer, feature) sets, scores within 1e-4', async () => {
    type Row = { ord: number; layer: number; feature: number; score: number }
    const { wasm, gpu } = await both<Row>(
      'select * from infer_signatures($1::text[], $2) order by ord, score desc, layer, feature',
      [words, name],
    )
    expectSame(
      wasm,
      gpu,
      (r) => `${r.ord}/${r.layer}/${r.feature}`,
      (r) => r.score,
      nonEmpty,
    )
  })

  it('walk(): same rows', async () => {
    type Row = { layer: number; feature: number; activation: number; concept: string }
    for (const prompt of words.slice(0, 3)) {
      const { wasm, gpu } = await both<Row>('select * from walk($1, 20, $2)', [prompt, name])
      expectSame(
        wasm,
        gpu,
        (r) => `${r.layer}/${r.feature}/${r.concept}`,
        (r) => r.activation,
        nonEmpty,
      )
    }
  })

  it('describe(): same rows', async () => {
    type Row = { relation: string; target: string; confidence: number; layer: number }
    for (const entity of words.slice(0, 3)) {
      const { wasm, gpu } = await both<Row>('select * from describe($1, $2)', [entity, name])
      expect(gpu.map((r) => `${r.relation}/${r.target}/${r.layer}`)).toEqual(
        wasm.map((r) => `${r.relation}/${r.target}/${r.layer}`),
      )
      wasm.forEach((w, i) => expect(close(w.confidence, gpu[i]!.confidence)).toBe(true))
    }
  })
})

describe.skipIf(!gpu)('a column index built on webgpu', () => {
  it('orders like the sequential sort', async () => {
    const corpus = readFileSync(`${QWEN_FIXTURE}/corpus.txt`, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, 100)
    await db.exec('create table docs (id serial primary key, title text)')
    await db.query('insert into docs (title) select unnest($1::text[])', [corpus])
    await db.exec("set infer.default_model = 'qf16'")
    await on('webgpu', () =>
      db.exec("create index docs_title on docs using infer (title) with (model = 'qf16')"),
    )
    for (const q of ['capital of France', 'currency', 'Japan']) {
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

describe.skipIf(!gpu)('choosing and failing', () => {
  const walk = "select count(*)::int as n from walk('France', 10, 'qf32')"
  const walk16 = "select count(*)::int as n from walk('Japan', 10, 'qf16')"

  it("accepts 'webgpu' as infer.compute", async () => {
    await db.exec("set infer.compute = 'webgpu'")
    expect((await rows<{ c: string }>("select current_setting('infer.compute') as c"))[0]!.c).toBe(
      'webgpu',
    )
    await db.exec('reset infer.compute')
  })

  it('a device lost mid-call is a 58000 error, and the next query works', async () => {
    const before = await on('webgpu', () => rows<{ n: number }>(walk))
    db.infer.webgpu.loseDeviceNextCall()
    const err = await on('webgpu', () => sqlError(db, walk))
    expect(err.code).toBe('58000')
    expect(err.message).toMatch(/WebGPU device was lost/)
    expect(await on('webgpu', () => rows<{ n: number }>(walk))).toEqual(before)
  })

  it('statement_timeout ends a webgpu call with 57014; the next call works', async () => {
    const before = await on('webgpu', () => rows<{ n: number }>(walk))
    db.infer.webgpu.stallNextCall(5000)
    await db.exec("set statement_timeout = '300ms'")
    const t0 = performance.now()
    const err = await on('webgpu', () => sqlError(db, walk))
    const ms = performance.now() - t0
    await db.exec('reset statement_timeout')
    expect(err.code).toBe('57014')
    expect(ms).toBeLessThan(300 + 500)
    expect(await on('webgpu', () => rows<{ n: number }>(walk))).toEqual(before)
  })

  it("'auto' keeps wasm on a software adapter (lavapipe): the GPU worker holds nothing", async () => {
    const d = await openDb()
    try {
      await d.query("select infer_create_model('a', $1)", [await fixtureVindex('f16')])
      const n = await rows<{ n: number }>(walk16.replace("'qf16'", "'a'"), [], d)
      expect(n[0]!.n).toBeGreaterThan(0)
      const m = await rows<{ compute_bytes: string }>(
        "select compute_bytes from infer_loaded_models() where name = 'a'",
        [],
        d,
      )
      expect(Number(m[0]?.compute_bytes ?? 0)).toBe(0)
    } finally {
      await d.close()
    }
  })

  it("'auto' on a GPU serves gate passes, and falls back to wasm when the device is lost", async () => {
    // lavapipe stands in for a GPU here
    const d = await openDb({ compute: { webgpu: { allowSoftwareForAuto: true } } })
    try {
      await d.query("select infer_create_model('qf16', $1)", [await fixtureVindex('f16')])
      const wasm = await on('wasm', () => rows<{ n: number }>(walk16, [], d), d)
      expect(await rows<{ n: number }>(walk16, [], d)).toEqual(wasm)
      const held = await rows<{ compute_bytes: string }>(
        "select compute_bytes from infer_loaded_models() where name = 'qf16'",
        [],
        d,
      )
      expect(Number(held[0]!.compute_bytes)).toBeGreaterThan(0)
      d.infer.webgpu.loseDeviceNextCall()
      expect(await rows<{ n: number }>(walk16, [], d)).toEqual(wasm)
      expect(await rows<{ n: number }>(walk16, [], d)).toEqual(wasm)
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })

  it('a limit too small for one gate row is an error naming the limit', async () => {
    const d = await openDb({ compute: { webgpu: { maxStorageBufferBindingSize: 1000 } } })
    try {
      await d.query("select infer_create_model('qf32', $1)", [await fixtureVindex('f32')])
      const err = await on('webgpu', () => sqlError(d, walk), d)
      expect(err.code).toBe('54000')
      expect(err.message).toMatch(/maxStorageBufferBindingSize \(1000 bytes\)/)
      // the session keeps working
      expect((await rows<{ n: number }>(walk, [], d))[0]!.n).toBeGreaterThan(0)
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })

  it('a matrix split by a low limit gives the same answers', async () => {
    // qf32 rows are hidden x 4 bytes: 16 KiB parts hold a few rows each
    const d = await openDb({ compute: { webgpu: { maxStorageBufferBindingSize: 16384 } } })
    try {
      await d.query("select infer_create_model('qf32', $1)", [await fixtureVindex('f32')])
      const sql = "select layer, feature, activation from walk('Japan', 20, 'qf32')"
      type Row = { layer: number; feature: number; activation: number }
      const wasm = await on('wasm', () => rows<Row>(sql, [], d), d)
      const split = await on('webgpu', () => rows<Row>(sql, [], d), d)
      expectSame(
        wasm,
        split,
        (r) => `${r.layer}/${r.feature}`,
        (r) => r.activation,
      )
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })

  it('no adapter, chosen explicitly, is 58000 naming what to install', async () => {
    const d = await openDb({ compute: { webgpu: { dawn: ['adapter=no such adapter'] } } })
    try {
      await d.query("select infer_create_model('qf32', $1)", [await fixtureVindex('f32')])
      const err = await on('webgpu', () => sqlError(d, walk), d)
      expect(err.code).toBe('58000')
      expect(err.message).toMatch(/no WebGPU adapter/)
      expect(err.message).toMatch(/npm i webgpu/)
      expect(err.message).toMatch(/mesa-vulkan-drivers/)
      // 'auto' does not need one
      expect((await rows<{ n: number }>(walk, [], d))[0]!.n).toBeGreaterThan(0)
    } finally {
      await d.infer.webgpu.terminate()
      await d.close()
    }
  })
})
