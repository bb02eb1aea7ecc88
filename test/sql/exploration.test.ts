// pg_infer's exploration functions (describe_layers, nearest_to,
// infer_explain_walk, infer_show_*, infer_diff, walk per_layer) on the
// fixture model, against the float64 reference (gate scores) and the
// vindex's own down_meta.bin read in TypeScript (tokens, c_scores).
import type { PGlite } from '@electric-sql/pglite'
import type { Vindex } from '@pglite-infer/vindex'
import { openVindexDir } from '@pglite-infer/vindex/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE, STORIES_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { join } from 'node:path'
import {
  isLettersOnly,
  layerBand,
  ReferenceModel,
  type FeatureScore,
} from '../reference/knowledge.js'

const TOL = 1e-5 // f32 vindex against float64 arithmetic

let db: PGlite
let ref: ReferenceModel
let vindex: Vindex
let vindexPath: string

/** The decoded, trimmed token (what the extension shows). */
const tok = (id: number) => ref.decodeToken(id).trim()

/** A feature's `also`: the rule of knowledge.c feature_also, from down_meta.bin. */
function also(layer: number, feature: number, entityLower: string | null): string {
  const { ids, logits } = vindex.downMeta.topTokens(layer, feature)
  const toks = ids.map(tok)
  const top = toks[0]!.toLowerCase()
  const out: string[] = []
  for (let j = 1; j < toks.length && out.length < 3; j++) {
    const t = toks[j]!
    const lower = t.toLowerCase()
    if (!(logits[j]! > 0) || !isLettersOnly(t) || lower === top || lower === entityLower) continue
    if (out.some((o) => o.toLowerCase() === lower)) continue
    out.push(t)
  }
  return out.join(', ')
}

const concept = (layer: number, feature: number) =>
  tok(vindex.downMeta.topTokens(layer, feature).ids[0]!)
const cScore = (layer: number, feature: number) =>
  vindex.downMeta.topTokens(layer, feature).logits[0]!

const byAbs = (a: FeatureScore, b: FeatureScore) =>
  Math.abs(b.score) - Math.abs(a.score) || a.layer - b.layer || a.feature - b.feature

function expectClose(found: number[], want: number[]) {
  expect(found.length).toBe(want.length)
  found.forEach((f, i) => expect(Math.abs(f - want[i]!)).toBeLessThanOrEqual(TOL))
}

beforeAll(async () => {
  ref = ReferenceModel.load(QWEN_FIXTURE)
  vindexPath = await fixtureVindex('f32')
  vindex = await openVindexDir(vindexPath)
  db = await openDb()
  await db.query('select infer_create_model($1, $2)', ['q', vindexPath])
  await db.exec(`set infer.default_model = 'q'`)
})
afterAll(async () => {
  await db?.close()
})

describe('nearest_to', () => {
  it.each([
    ['France', 3, 5],
    ['Japan', 0, 8],
    ['South Africa', 5, 3],
  ] as const)('nearest_to(%j, %i, %i) is the layer gate KNN', async (entity, layer, top) => {
    const { rows } = await db.query<{
      feature: number
      token: string
      score: number
      also: string
    }>('select * from nearest_to($1, $2, $3)', [entity, layer, top])
    const want = ref.gateKnn(layer, ref.entityQuery(ref.entityForm(entity)), top)
    expect(rows.map((r) => [r.feature, r.token, r.also])).toEqual(
      want.map((w) => [
        w.feature,
        concept(layer, w.feature),
        also(layer, w.feature, entity.toLowerCase()),
      ]),
    )
    expectClose(
      rows.map((r) => r.score),
      want.map((w) => w.score),
    )
  })

  it('defaults to 20 rows and takes named arguments', async () => {
    const { rows } = await db.query("select * from nearest_to(entity => 'Paris', layer => 2)")
    expect(rows).toHaveLength(20)
  })

  it('refuses bad arguments with clear SQLSTATEs', async () => {
    expect(await sqlError(db, "select * from nearest_to('France', 6)")).toMatchObject({
      code: '22023',
      message: 'layer 6 is out of range: model "q" has layers 0 to 5',
    })
    expect((await sqlError(db, "select * from nearest_to('France', -1)")).code).toBe('22023')
    expect((await sqlError(db, "select * from nearest_to('France', NULL)")).code).toBe('22004')
    expect((await sqlError(db, 'select * from nearest_to(NULL, 1)')).code).toBe('22004')
    expect((await sqlError(db, "select * from nearest_to('France', 1, 0)")).code).toBe('22023')
    expect((await sqlError(db, "select * from nearest_to('France', 1, 10001)")).code).toBe('22023')
    expect((await sqlError(db, "select * from nearest_to('France', 1, NULL)")).code).toBe('22004')
    expect((await sqlError(db, "select * from nearest_to('', 1)")).code).toBe('22023')
    expect((await sqlError(db, "select * from nearest_to('France', 1, 5, 'nope')")).code).toBe(
      '42704',
    )
  })

  it('a top larger than the layer gives every feature once', async () => {
    const { rows } = await db.query<{ feature: number }>(
      "select feature from nearest_to('France', 1, 10000)",
    )
    expect(rows).toHaveLength(ref.features)
    expect(new Set(rows.map((r) => r.feature)).size).toBe(ref.features)
  })
})

describe('describe_layers', () => {
  it.each(['France', 'Japan', 'euro'])(
    'describe_layers(%j): every per-layer hit, no dedup',
    async (entity) => {
      const { rows } = await db.query<{
        layer: number
        feature: number
        target: string
        gate_score: number
        also: string
      }>('select * from describe_layers($1)', [entity])
      const cands = ref.describeCandidates(ref.entityForm(entity), 20)
      const thr = ref.describeThreshold(cands, 0)
      const self = entity.toLowerCase()
      const want = cands
        .filter((c) => c.score >= thr)
        .filter((c) => {
          const t = concept(c.layer, c.feature)
          return isLettersOnly(t) && t.toLowerCase() !== self && !STOP.has(t.toLowerCase())
        })
        .sort(byAbs)
      expect(rows.map((r) => [r.layer, r.feature, r.target, r.also])).toEqual(
        want.map((w) => [
          w.layer,
          w.feature,
          concept(w.layer, w.feature),
          also(w.layer, w.feature, self),
        ]),
      )
      expectClose(
        rows.map((r) => r.gate_score),
        want.map((w) => w.score),
      )
      // unlike describe(), a target may repeat across layers
      const targets = rows.map((r) => r.target.toLowerCase())
      const { rows: described } = await db.query('select * from describe($1)', [entity])
      expect(rows.length).toBeGreaterThanOrEqual(described.length)
      expect(new Set(targets).size).toBeLessThanOrEqual(targets.length)
    },
  )

  it('an explicit threshold cuts the rows', async () => {
    const { rows } = await db.query<{ gate_score: number }>(
      "select gate_score from describe_layers('France', threshold => 0.5)",
    )
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.every((r) => r.gate_score >= 0.5)).toBe(true)
    expect((await sqlError(db, "select * from describe_layers('France', 'q', -1)")).code).toBe(
      '22023',
    )
    expect((await sqlError(db, 'select * from describe_layers(NULL)')).code).toBe('22004')
  })
})

describe('infer_explain_walk and walk(per_layer)', () => {
  const prompt = 'The capital of France is'

  it('is walk with the top per layer, with bands and secondary tokens', async () => {
    const { rows } = await db.query<{
      layer: number
      band: string
      feature: number
      activation: number
      token: string
      also: string
    }>('select * from infer_explain_walk($1, 3)', [prompt])
    const q = ref.queryLast(ref.tokenize(prompt, true))
    const want: FeatureScore[] = []
    for (let l = 0; l < ref.numLayers; l++) want.push(...ref.gateKnn(l, q, 3))
    expect(rows.map((r) => [r.layer, r.band, r.feature, r.token, r.also])).toEqual(
      want.map((w) => [
        w.layer,
        layerBand(w.layer, ref.numLayers, ref.modelType),
        w.feature,
        concept(w.layer, w.feature),
        also(w.layer, w.feature, null),
      ]),
    )
    expectClose(
      rows.map((r) => r.activation),
      want.map((w) => w.score),
    )

    const walked = await db.query<{ layer: number; feature: number; concept: string }>(
      'select * from walk($1, 3, per_layer => true)',
      [prompt],
    )
    expect(walked.rows.map((r) => [r.layer, r.feature, r.concept])).toEqual(
      rows.map((r) => [r.layer, r.feature, r.token]),
    )
  })

  it('defaults to 5 per layer; walk without per_layer keeps top over all layers', async () => {
    const { rows } = await db.query('select * from infer_explain_walk($1)', [prompt])
    expect(rows).toHaveLength(5 * ref.numLayers)
    const all = await db.query('select * from walk($1, 3)', [prompt])
    expect(all.rows).toHaveLength(3)
  })

  it('per_layer works in forward mode too', async () => {
    const inf = await openDb()
    await inf.query('select infer_create_model($1, $2, $3)', [
      'qi',
      await fixtureVindex('f32', 'inference'),
      'inference',
    ])
    const { rows } = await inf.query<{ layer: number }>(
      "select layer from walk($1, 2, 'qi', 'forward', per_layer => true)",
      [prompt],
    )
    expect(rows.map((r) => r.layer)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    const banded = await inf.query<{ layer: number }>(
      "select layer from walk($1, 2, 'qi', 'forward', 'knowledge', true)",
      [prompt],
    )
    expect(banded.rows.map((r) => r.layer)).toEqual([2, 2, 3, 3])
    await inf.close()
  })

  it('refuses a NULL or out-of-range top', async () => {
    expect((await sqlError(db, 'select * from infer_explain_walk($1, NULL)', [prompt])).code).toBe(
      '22004',
    )
    expect((await sqlError(db, 'select * from infer_explain_walk($1, 0)', [prompt])).code).toBe(
      '22023',
    )
    expect((await sqlError(db, "select * from infer_explain_walk('')")).code).toBe('22023')
  })
})

describe('infer_show_layers / infer_show_features / infer_show_relations', () => {
  it('infer_show_layers lists each layer, its band and its feature count', async () => {
    const { rows } = await db.query('select * from infer_show_layers()')
    expect(rows).toEqual(
      Array.from({ length: ref.numLayers }, (_, l) => ({
        layer: l,
        band: layerBand(l, ref.numLayers, ref.modelType),
        num_features: ref.features,
      })),
    )
  })

  /** Features of a layer by c_score descending, then feature, as down_meta.bin holds them. */
  function byScore(layer: number) {
    return Array.from({ length: ref.features }, (_, f) => ({ f, s: cScore(layer, f) })).sort(
      (a, b) => b.s - a.s || a.f - b.f,
    )
  }

  it('infer_show_features: top features by c_score, exact from down_meta.bin', async () => {
    const { rows } = await db.query<{
      feature: number
      token: string
      score: number
      also: string
      label: string | null
    }>('select * from infer_show_features(2, top => 7)')
    const want = byScore(2).slice(0, 7)
    expect(rows).toEqual(
      want.map(({ f, s }) => ({
        feature: f,
        token: concept(2, f),
        score: s,
        also: also(2, f, null),
        label: null,
      })),
    )
  })

  it('filters on the token (case-insensitive) and min_score; defaults to 50 rows', async () => {
    const { rows } = await db.query<{ feature: number; token: string; score: number }>(
      "select * from infer_show_features(3, filter => 'PAR', min_score => 0.25)",
    )
    const want = byScore(3).filter(
      ({ f, s }) => s >= 0.25 && concept(3, f).toLowerCase().includes('par'),
    )
    expect(rows.map((r) => r.feature)).toEqual(want.slice(0, 50).map((w) => w.f))
    expect(rows.length).toBeGreaterThan(0)
    const all = await db.query('select * from infer_show_features(0)')
    expect(all.rows).toHaveLength(50)
  })

  it('shows relation labels with their sign', async () => {
    await db.exec(`insert into infer.feature_label_data values
      ('q', 4, 17, 1, 'capital', 2), ('q', 4, 17, -1, 'language', 3)`)
    const { rows } = await db.query<{ label: string | null }>(
      'select label from infer_show_features(4, top => 100000) where feature = 17',
    )
    await db.exec("delete from infer.feature_label_data where model = 'q'")
    expect(rows).toEqual([{ label: 'capital, -language' }])
  })

  it('every exploration function names an unknown model (42704)', async () => {
    for (const sql of [
      "select * from infer_show_layers('nope')",
      "select * from infer_show_relations('nope')",
      "select * from infer_explain_walk('France', 3, 'nope')",
      "select * from describe_layers('France', 'nope')",
      "select * from nearest_to('France', 1, 3, 'nope')",
    ])
      expect(await sqlError(db, sql), sql).toMatchObject({
        code: '42704',
        message: 'model "nope" does not exist',
      })
    // and the backend keeps working
    expect((await db.query('select count(*)::int as n from infer_show_layers()')).rows).toEqual([
      { n: 6 },
    ])
  })

  it('infer_show_features refuses bad arguments', async () => {
    expect((await sqlError(db, 'select * from infer_show_features(99)')).code).toBe('22023')
    expect((await sqlError(db, 'select * from infer_show_features(NULL)')).code).toBe('22004')
    expect((await sqlError(db, 'select * from infer_show_features(1, top => 0)')).code).toBe(
      '22023',
    )
    expect((await sqlError(db, "select * from infer_show_features(1, model => 'nope')")).code).toBe(
      '42704',
    )
  })

  it('infer_show_relations: content tokens of the knowledge band, by frequency', async () => {
    const { rows } = await db.query<{
      relation: string
      count: number
      max_score: number
      layers: string
    }>('select relation, count, max_score, layers from infer_show_relations()')
    const agg = new Map<string, { count: number; max: number; layers: number[] }>()
    for (let l = 0; l < ref.numLayers; l++) {
      if (layerBand(l, ref.numLayers, ref.modelType) !== 'knowledge') continue
      for (let f = 0; f < ref.features; f++) {
        const s = cScore(l, f)
        const t = concept(l, f)
        const key = t.toLowerCase()
        if (!(s >= Math.fround(0.2)) || !isLettersOnly(t) || STOP.has(key)) continue
        if (Buffer.byteLength(key) < 3) continue
        const a = agg.get(key) ?? { count: 0, max: 0, layers: [] }
        a.count++
        a.max = Math.max(a.max, s)
        if (!a.layers.includes(l)) a.layers.push(l)
        agg.set(key, a)
      }
    }
    const want = [...agg.entries()]
      .sort((x, y) => y[1].count - x[1].count || y[1].max - x[1].max || (x[0] < y[0] ? -1 : 1))
      .slice(0, 30)
      .map(([relation, a]) => ({
        relation,
        count: a.count,
        max_score: a.max,
        layers: a.layers.join(','),
      }))
    expect(rows).toEqual(want)
    expect(rows.map((r) => r.relation)).toContain('capital')
  })
})

describe('infer_diff', () => {
  let storiesPath: string
  beforeAll(async () => {
    storiesPath = join(scratchDir('stories'), 'stories.vindex')
    await extractVindexDir(STORIES_FIXTURE, storiesPath, { dtype: 'f32', workers: 0 })
    await db.query('select infer_create_model($1, $2)', ['s', storiesPath])
    await db.query('select infer_create_model($1, $2)', ['q2', vindexPath])
  })

  it('the same model twice differs nowhere', async () => {
    expect((await db.query("select * from infer_diff('q', 'q2')")).rows).toEqual([])
    expect((await db.query("select * from infer_diff('q', 'q2', 'France')")).rows).toEqual([])
  })

  it('two different models: largest score changes first, with added and removed features', async () => {
    const stories = await openVindexDir(storiesPath)
    const sref = ReferenceModel.load(STORIES_FIXTURE)
    const layers = Math.max(vindex.numLayers, stories.numLayers)
    const want: [number, number, string | null, string | null, number, number, string][] = []
    for (let l = 0; l < layers; l++) {
      const fa = l < vindex.numLayers ? vindex.index.layers[l]!.num_features : 0
      const fb = l < stories.numLayers ? stories.index.layers[l]!.num_features : 0
      for (let f = 0; f < Math.max(fa, fb); f++) {
        const ta = f < fa ? concept(l, f) : null
        const tb = f < fb ? sref.decodeToken(stories.downMeta.topTokens(l, f).ids[0]!).trim() : null
        const sa = f < fa ? cScore(l, f) : 0
        const sb = f < fb ? stories.downMeta.topTokens(l, f).logits[0]! : 0
        if (ta !== null && ta === tb && Math.abs(Math.fround(sa - sb)) <= Math.fround(0.01))
          continue
        want.push([
          l,
          f,
          ta,
          tb,
          sa,
          sb,
          ta === null ? 'added' : tb === null ? 'removed' : 'modified',
        ])
      }
    }
    want.sort(
      (x, y) =>
        Math.abs(Math.fround(y[5] - y[4])) - Math.abs(Math.fround(x[5] - x[4])) ||
        x[0] - y[0] ||
        x[1] - y[1],
    )
    const { rows } = await db.query<Record<string, unknown>>(
      "select * from infer_diff('q', 's', top => 40)",
    )
    expect(rows.map((r) => Object.values(r))).toEqual(want.slice(0, 40))
    const one = await db.query<{ layer: number }>("select * from infer_diff('q', 's', 5, 10000)")
    expect(one.rows.length).toBe(want.filter((w) => w[0] === 5).length)
    expect(new Set(one.rows.map((r) => r.layer))).toEqual(new Set([5]))
  })

  it('the entity form compares what describe() says in each model', async () => {
    const { rows } = await db.query<{ relation: string; target: string; status: string }>(
      "select * from infer_diff('q', 's', 'France', 500)",
    )
    type Edge = { relation: string; target: string; confidence: number }
    const a = (await db.query<Edge>("select * from describe('France', 'q')")).rows
    const b = (await db.query<Edge>("select * from describe('France', 's')")).rows
    const key = (e: { relation: string; target: string }) =>
      `${e.relation}/${e.target.toLowerCase()}`
    const inB = new Map(b.map((e) => [key(e), e]))
    const inA = new Map(a.map((e) => [key(e), e]))
    const want = new Map<string, string>()
    for (const e of a) {
      const o = inB.get(key(e))
      if (!o) want.set(key(e), 'removed')
      else if (Math.abs(o.confidence - e.confidence) > 0.01) want.set(key(e), 'modified')
    }
    for (const e of b) if (!inA.has(key(e))) want.set(key(e), 'added')
    expect(new Map(rows.map((r) => [key(r), r.status]))).toEqual(want)
    expect(rows.length).toBeGreaterThan(0)
  })

  it('refuses unknown models, NULLs and bad layers', async () => {
    expect((await sqlError(db, "select * from infer_diff('q', 'nope')")).code).toBe('42704')
    expect((await sqlError(db, "select * from infer_diff(NULL, 'q')")).code).toBe('22004')
    expect((await sqlError(db, "select * from infer_diff('q', 's', 6)")).code).toBe('22023')
    expect((await sqlError(db, "select * from infer_diff('q', 's', top => 0)")).code).toBe('22023')
    expect((await sqlError(db, "select * from infer_diff('q', 's', 'France', 0)")).code).toBe(
      '22023',
    )
  })
})

// knowledge.c's stopword list (NLTK's original 127 words)
const STOP = new Set(
  `a about above after again against all am an and any are as at be because been before being below
between both but by can did do does doing don down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own s same she
should so some such t than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
you your yours yourself yourselves`.split(/\s+/),
)
