// Backend-owned models (issue 10, point 3): a model loaded under
// infer.compute = 'onnx' keeps its gate rows and forward matrices only in the
// onnx backend's worker, streamed from the vindex's files or from a model
// index's pages; the WASM heap keeps the tokenizer, down_meta, bands, the
// embeddings and the norm/bias vectors. A synthetic inference vindex whose
// weights are larger than infer.max_memory registers on onnx and answers
// walk (both modes), describe, similar_to, infer() and a column-index build
// as the same vindex registered on wasm does; wasm on the owned model is
// 55000; a worker that dies re-streams the weights; a model stored in a
// model index loads into the backend the same way (also in a new database
// opened with pgInfer({ compute: 'onnx' })).
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { InferNamespace } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { addInferenceWeights, writeSyntheticVindex } from '../bench/synthetic-vindex.js'
import { openDb, sqlError, testPgInfer } from '../helpers/db.js'
import { scratchDir } from '../helpers/vindex.js'
import { makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

// every forward graph of this file goes through ONNX external data (the
// path a model over 2 GB takes), however small
process.env.PGLITE_INFER_ONNX_EXTERNAL_BYTES = '1'

const TOL = 1e-4
/** Small, but the weights (about 6.6 MB of f16) exceed a 2 MB heap budget. */
const SHAPE = {
  layers: 4,
  hidden: 128,
  features: 2048,
  vocab: 2595,
  heads: 4,
  kvHeads: 2,
  topK: 10,
}
const HEAD_DIM = SHAPE.hidden / SHAPE.heads
const KV_DIM = SHAPE.kvHeads * HEAD_DIM
/** f16 gate rows and forward matrices per layer: what the owned model keeps out of the heap. */
const LAYER_MATRICES =
  SHAPE.features * SHAPE.hidden + // gate
  2 * SHAPE.hidden * SHAPE.hidden + // q, o
  2 * KV_DIM * SHAPE.hidden + // k, v
  2 * SHAPE.features * SHAPE.hidden // up, down
const WEIGHT_BYTES = SHAPE.layers * LAYER_MATRICES * 2
const BUDGET_MB = 2

type Db = PGlite & { infer: InferNamespace }
let db: Db
let vindex: string

async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(sql, params)).rows
}

/** The same query on the owned model under onnx and on the heap model under wasm. */
async function pair<T>(sql: string, params: unknown[] = []): Promise<{ own: T[]; plain: T[] }> {
  await db.exec("set infer.compute = 'onnx'")
  const own = await rows<T>(sql.replaceAll('$M', "'own'"), params)
  await db.exec("set infer.compute = 'wasm'")
  const plain = await rows<T>(sql.replaceAll('$M', "'plain'"), params)
  await db.exec('reset infer.compute')
  return { own, plain }
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b))
}

beforeAll(async () => {
  const work = scratchDir('compute-owned')
  mkdirSync(work, { recursive: true })
  vindex = join(work, 'synthetic.vindex')
  await writeSyntheticVindex(vindex, { shape: SHAPE, seed: 11 })
  addInferenceWeights(vindex, SHAPE)
  db = (await openDb()) as Db
  // addInferenceWeights lists the weight files without checksums
  await db.exec('set infer.verify_checksums = off')
}, 120_000)

afterAll(async () => {
  await db?.infer.compute.terminate()
  await db?.close()
})

describe('a model whose weights exceed infer.max_memory', () => {
  it('does not fit the heap on wasm (53200), registers on onnx', async () => {
    await db.exec(`set infer.max_memory = ${BUDGET_MB}`)
    await db.exec("set infer.compute = 'wasm'")
    const err = (await db
      .query("select infer_create_model('nofit', $1, 'inference')", [vindex])
      .catch((e: unknown) => e)) as { code?: string; hint?: string }
    expect(err.code).toBe('53200')
    // the error says what would work
    expect(err.hint).toMatch(/SET infer\.compute = 'onnx'/)
    await db.exec("set infer.compute = 'onnx'")
    expect(await rows("select infer_create_model('own', $1, 'inference') as r", [vindex])).toEqual([
      { r: 'own' },
    ])
    await db.exec('reset infer.max_memory; reset infer.compute')
    // the same vindex, in the heap, as the reference
    await db.exec("set infer.compute = 'wasm'")
    await db.query("select infer_create_model('plain', $1, 'inference')", [vindex])
    await db.exec('reset infer.compute')
  }, 120_000)

  it('infer_models(): heap bytes, backend bytes, who owns the weights', async () => {
    type Row = {
      name: string
      compute: string
      weights: string
      heap_bytes: number
      backend_bytes: number
      bytes: number
      compute_bytes: number
    }
    const r = await rows<Row>(
      "select name, compute, weights, heap_bytes, backend_bytes, bytes, compute_bytes from infer_models() where name in ('own', 'plain') order by name",
    )
    const own = r[0]!
    const plain = r[1]!
    expect([own.name, own.compute, own.weights]).toEqual(['own', 'onnx', 'onnx'])
    expect([plain.name, plain.compute, plain.weights]).toEqual(['plain', 'wasm', 'heap'])
    // the heap keeps everything but the gate rows and the forward matrices
    expect(plain.heap_bytes - own.heap_bytes).toBe(WEIGHT_BYTES)
    expect(own.heap_bytes).toBeLessThan(BUDGET_MB * 1024 * 1024)
    expect(own.heap_bytes).toBe(own.bytes)
    // the worker: float32 gate rows; float32 forward matrices (gate again) and
    // embeddings; the f16 W_down kept for write tokens
    const f32Gate = SHAPE.layers * SHAPE.features * SHAPE.hidden * 4
    const f32Forward = (SHAPE.layers * LAYER_MATRICES + SHAPE.vocab * SHAPE.hidden) * 4
    const keptDown = SHAPE.layers * SHAPE.hidden * SHAPE.features * 2
    expect(own.backend_bytes).toBe(f32Gate + f32Forward + keptDown)
    expect(own.compute_bytes).toBe(own.backend_bytes)
    expect(plain.backend_bytes).toBe(0)
  })
})

describe('owned (onnx) equals heap (wasm)', () => {
  const prompts = ['The capital of France is', 'Japan', 'currency of Spain']

  it('walk, embedding mode: same sets, scores within 1e-4', async () => {
    type Row = { layer: number; feature: number; activation: number; concept: string }
    for (const p of prompts) {
      const { own, plain } = await pair<Row>('select * from walk($1, 20, $M)', [p])
      expect(plain.length).toBe(20)
      expect(own.map((r) => `${r.layer}/${r.feature}/${r.concept}`)).toEqual(
        plain.map((r) => `${r.layer}/${r.feature}/${r.concept}`),
      )
      plain.forEach((w, i) => expect(close(own[i]!.activation, w.activation)).toBe(true))
    }
  })

  it("walk, forward mode (write tokens from the backend's W_down): same rows", async () => {
    type Row = { layer: number; feature: number; activation: number; concept: string }
    for (const p of prompts) {
      const { own, plain } = await pair<Row>("select * from walk($1, 10, $M, 'forward')", [p])
      expect(plain.length).toBeGreaterThan(0)
      const key = (r: Row) => `${r.layer}/${r.feature}/${r.concept}`
      expect(new Set(own.map(key))).toEqual(new Set(plain.map(key)))
      const byKey = new Map(plain.map((r) => [key(r), r.activation]))
      own.forEach((r) => expect(close(r.activation, byKey.get(key(r))!)).toBe(true))
    }
  })

  it('describe(): same rows', async () => {
    type Row = { relation: string; target: string; confidence: number; layer: number }
    for (const e of ['France', 'Japan', 'Spain']) {
      const { own, plain } = await pair<Row>('select * from describe($1, $M)', [e])
      expect(own.map((r) => `${r.relation}/${r.target}/${r.layer}`)).toEqual(
        plain.map((r) => `${r.relation}/${r.target}/${r.layer}`),
      )
      plain.forEach((w, i) => expect(close(own[i]!.confidence, w.confidence)).toBe(true))
    }
  })

  it('similar_to within 1e-4', async () => {
    const words = ['France', 'Paris', 'Japan', 'Tokyo']
    for (let i = 0; i + 1 < words.length; i++) {
      const { own, plain } = await pair<{ s: number }>('select similar_to($1, $2, $M) as s', [
        words[i],
        words[i + 1],
      ])
      expect(close(own[0]!.s, plain[0]!.s)).toBe(true)
    }
  })

  it('infer(): same top-10 tokens, probabilities within 1e-4', async () => {
    type Row = { token: string; probability: number }
    for (const p of prompts) {
      const { own, plain } = await pair<Row>('select * from infer($1, 10, $M)', [p])
      expect(plain).toHaveLength(10)
      expect(own.map((r) => r.token)).toEqual(plain.map((r) => r.token))
      plain.forEach((w, i) => expect(close(own[i]!.probability, w.probability)).toBe(true))
    }
  })

  it('a column index built on the owned model orders like one built on wasm', async () => {
    const titles = [
      'The capital of France is Paris',
      'Japan uses the yen',
      'Spain speaks Spanish',
      'Berlin is in Germany',
      'The currency of Italy',
      'Tokyo is a large city',
      'Madrid and Lisbon',
      'Rome was not built in a day',
      'The language of Brazil',
      'Canada and Mexico',
      'Paris in the spring',
      'The euro is a currency',
    ]
    await db.exec('create table docs (id serial primary key, title text)')
    await db.query('insert into docs (title) select unnest($1::text[])', [titles])
    await db.exec("set infer.compute = 'onnx'")
    await db.exec("create index docs_own on docs using infer (title) with (model = 'own')")
    await db.exec("set infer.compute = 'wasm'")
    await db.exec('create table docs2 as select * from docs')
    await db.exec("create index docs_plain on docs2 using infer (title) with (model = 'plain')")
    type Row = { id: number; d: number }
    for (const q of ['capital of France', 'currency', 'Japan']) {
      await db.exec('set enable_seqscan = off')
      await db.exec("set infer.compute = 'onnx'")
      await db.exec("set infer.default_model = 'own'")
      const own = await rows<Row>(
        'select id, title <~> $1 as d from docs order by title <~> $1 limit 8',
        [q],
      )
      await db.exec("set infer.compute = 'wasm'")
      await db.exec("set infer.default_model = 'plain'")
      const plain = await rows<Row>(
        'select id, title <~> $1 as d from docs2 order by title <~> $1 limit 8',
        [q],
      )
      await db.exec('reset enable_seqscan; reset infer.default_model; reset infer.compute')
      expect(plain).toHaveLength(8)
      expect([q, own.map((r) => r.id)]).toEqual([q, plain.map((r) => r.id)])
      plain.forEach((w, i) => expect(close(own[i]!.d, w.d)).toBe(true))
    }
    await db.exec('drop table docs; drop table docs2')
  })
})

describe('an owned model with its own lm_head (tiny Llama, untied)', () => {
  beforeAll(async () => {
    const ck = await makeTinyCheckpoint('llama', { dir: scratchDir('owned-tiny-llama') })
    const out = join(scratchDir('owned-tiny-llama-vindex'), 'model.vindex')
    await extractVindexDir(ck.dir, out, { level: 'inference', modelName: 'tiny', workers: 0 })
    await db.exec("set infer.compute = 'onnx'")
    await db.query("select infer_create_model('lown', $1, 'inference')", [out])
    await db.exec("set infer.compute = 'wasm'")
    await db.query("select infer_create_model('lplain', $1, 'inference')", [out])
    await db.exec('reset infer.compute')
    for (const m of ['lown', 'lplain'])
      await db.query(`select infer_add_relation('${m}', 'next', 'Once upon a {} the')`)
  }, 60_000)

  async function lpair<T>(sql: string, params: unknown[] = []) {
    await db.exec("set infer.compute = 'onnx'")
    const own = await rows<T>(sql.replaceAll('$M', "'lown'"), params)
    await db.exec("set infer.compute = 'wasm'")
    const plain = await rows<T>(sql.replaceAll('$M', "'lplain'"), params)
    await db.exec('reset infer.compute')
    return { own, plain }
  }

  it('is owned; its lm_head is in the backend', async () => {
    expect(
      await rows(
        "select name, weights from infer_models() where name in ('lown', 'lplain') order by name",
      ),
    ).toEqual([
      { name: 'lown', weights: 'onnx' },
      { name: 'lplain', weights: 'heap' },
    ])
  })

  it("write tokens and the relation layer (the logit lens on the backend's lm_head)", async () => {
    type Walk = { layer: number; feature: number; activation: number; concept: string }
    for (const p of ['Once upon a time', 'The little dog ran to the park and']) {
      const { own, plain } = await lpair<Walk>("select * from walk($1, 40, $M, 'forward')", [p])
      expect(plain.length).toBeGreaterThan(0)
      const key = (r: Walk) => `${r.layer}/${r.feature}/${r.concept}`
      expect(new Set(own.map(key))).toEqual(new Set(plain.map(key)))
      const inf = await lpair<{ token: string; probability: number }>(
        'select * from infer($1, 10, $M)',
        [p],
      )
      expect(inf.own.map((r) => r.token)).toEqual(inf.plain.map((r) => r.token))
    }
    type Edge = { relation: string; target: string; confidence: number; layer: number }
    for (const e of ['time', 'dog']) {
      const { own, plain } = await lpair<Edge>(
        'select * from describe($1, $M) order by relation, target, layer',
        [e],
      )
      expect(own.map((r) => `${r.relation}/${r.target}/${r.layer}`)).toEqual(
        plain.map((r) => `${r.relation}/${r.target}/${r.layer}`),
      )
      plain.forEach((w, i) => expect(close(own[i]!.confidence, w.confidence)).toBe(true))
    }
  })
})

describe('choosing a backend for an owned model', () => {
  it("infer.compute = 'wasm' (or 'webgpu') on it is 55000 and says what to do", async () => {
    for (const backend of ['wasm', 'webgpu']) {
      await db.exec(`set infer.compute = '${backend}'`)
      for (const sql of [
        "select * from walk('France', 5, 'own')",
        "select * from infer('France', 5, 'own')",
      ]) {
        const err = await sqlError(db, sql)
        expect(err.code).toBe('55000')
        expect(err.message).toBe(
          `model "own" is owned by the onnx compute backend: infer.compute = '${backend}' cannot compute it`,
        )
      }
    }
    await db.exec('reset infer.compute')
  })

  it("'auto' serves it on onnx", async () => {
    const want = await pair<{ token: string }>('select token from infer($1, 5, $M)', ['France'])
    expect(await rows("select token from infer('France', 5, 'own')")).toEqual(want.plain)
  })
})

describe('a worker that dies', () => {
  const sql = "select layer, feature, concept from walk('France', 10, 'own')"
  const inferSql = "select token from infer('Japan', 5, 'own')"

  it('mid-call: 58000, then the next query re-streams the weights and works', async () => {
    await db.exec("set infer.compute = 'onnx'")
    const before = await rows(sql)
    const beforeInfer = await rows(inferSql)
    db.infer.compute.crashNextCall()
    const err = await sqlError(db, sql)
    expect(err.code).toBe('58000')
    expect(err.message).toMatch(/compute worker exited/)
    expect(await rows(sql)).toEqual(before)
    db.infer.compute.crashNextCall()
    expect((await sqlError(db, inferSql)).code).toBe('58000')
    expect(await rows(inferSql)).toEqual(beforeInfer)
    await db.infer.compute.terminate()
    expect(await rows(inferSql)).toEqual(beforeInfer)
    await db.exec('reset infer.compute')
  })
})

describe('a model stored in a model index', () => {
  it('streams from index pages into the backend, also in a new database', async () => {
    const want = (
      await pair<{ token: string; probability: number }>('select * from infer($1, 10, $M)', [
        'The capital of France is',
      ])
    ).plain
    // infer.max_memory counts every model loaded: only this one from now on
    await db.exec("select infer_drop_model('own'); select infer_drop_model('plain')")
    await db.exec(`set infer.max_memory = ${BUDGET_MB}; set infer.compute = 'onnx'`)
    await db.exec(
      `create index stored on infer._models using infer (name) with (source = '${vindex}', level = 'inference')`,
    )
    const check = async (d: PGlite) => {
      const got = (
        await d.query<{ token: string; probability: number }>(
          "select * from infer('The capital of France is', 10, 'stored')",
        )
      ).rows
      expect(got.map((r) => r.token)).toEqual(want.map((r) => r.token))
      want.forEach((w, i) => expect(close(got[i]!.probability, w.probability)).toBe(true))
    }
    await check(db)
    expect(
      await rows(
        "select weights, heap_bytes < 2097152 as small from infer_models() where name = 'stored'",
      ),
    ).toEqual([{ weights: 'onnx', small: true }])
    // the worker restarts: the weights come back from the index pages
    await db.infer.compute.terminate()
    await check(db)
    await db.exec('reset infer.max_memory; reset infer.compute')

    // a new database from a dump, its sessions on onnx by default
    const dump = await db.dumpDataDir()
    const other = (await PGlite.create({
      loadDataDir: dump,
      extensions: { infer: testPgInfer({ compute: 'onnx' }) },
    })) as Db
    try {
      await other.exec(`set infer.max_memory = ${BUDGET_MB}`)
      await check(other)
      // (the setting exists once pg_infer's library is loaded)
      expect(
        (await other.query<{ c: string }>("select current_setting('infer.compute') as c")).rows,
      ).toEqual([{ c: 'onnx' }])
      expect(
        (await other.query('select name, weights from infer_models() where loaded order by name'))
          .rows,
      ).toEqual([{ name: 'stored', weights: 'onnx' }])
    } finally {
      await other.infer.compute.terminate()
      await other.close()
    }
  }, 120_000)
})
