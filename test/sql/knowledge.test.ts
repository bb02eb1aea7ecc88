// walk / describe / similar_to / implies on the fixture model, row for row
// against the independent float64 reference (test/reference/knowledge.ts).
import type { PGlite } from '@electric-sql/pglite'
import { roundToF16 } from '@pglite-infer/vindex'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'
import { ReferenceModel } from '../reference/knowledge.js'

const WALK_PROMPTS = [
  'The capital of France is',
  'People in Japan speak',
  'The currency of Germany is the',
  'Bogotá',
  'Once upon a time',
]
const ENTITIES = ['France', 'Japan', 'Germany', 'Paris', 'euro', 'South Africa', 'Brazil']
const PAIRS: [string, string][] = [
  ['France', 'Germany'],
  ['France', 'Paris'],
  ['Japan', 'yen'],
  ['Spain', 'banana'],
  ['Italy', 'Italy'],
]

/** |a - b| <= tol * max(|a|, |b|, 1e-3): relative, with a floor near zero. */
function close(a: number, b: number, tol: number): boolean {
  return Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b), 1e-3)
}

function expectScores(found: number[], expected: number[], tol: number) {
  expect(found.length).toBe(expected.length)
  const bad = found.flatMap((f, i) => (close(f, expected[i]!, tol) ? [] : [[i, f, expected[i]]]))
  expect(bad).toEqual([])
}

/**
 * A reference whose weights are rounded to f16 like the f16 vindex's, but
 * whose concepts come from the float32 down_meta the extractor computed.
 */
function f16Reference(ref32: ReferenceModel): ReferenceModel {
  const ref = ReferenceModel.load(QWEN_FIXTURE)
  for (const m of [ref.embed, ...ref.gate])
    for (let i = 0; i < m.length; i++) m[i] = roundToF16(m[i]!)
  ref.concept = (layer: number, feature: number) => ref32.concept(layer, feature)
  return ref
}

interface WalkRow {
  layer: number
  feature: number
  activation: number
  concept: string
}
interface EdgeRow {
  relation: string
  target: string
  confidence: number
  layer: number
}

for (const [dtype, tol] of [
  ['f32', 1e-5],
  ['f16', 1e-3],
] as const) {
  describe(`knowledge queries on the ${dtype} vindex`, () => {
    let db: PGlite
    let ref: ReferenceModel
    const ref32 = ReferenceModel.load(QWEN_FIXTURE)

    beforeAll(async () => {
      ref = dtype === 'f32' ? ref32 : f16Reference(ref32)
      db = await openDb()
      await db.query('select infer_create_model($1, $2)', ['q', await fixtureVindex(dtype)])
      await db.exec(`set infer.default_model = 'q'`)
    })
    afterAll(async () => {
      await db?.close()
    })

    for (const mode of ['last', 'average'] as const) {
      it.each(WALK_PROMPTS)(`walk(%j, 25) in mode ${mode}`, async (prompt) => {
        await db.exec(`set infer.walk_embed_mode = '${mode}'`)
        const { rows } = await db.query<WalkRow>('select * from walk($1, 25)', [prompt])
        const want = ref.walk(prompt, 25, mode)
        expect(rows.map((r) => [r.layer, r.feature, r.concept])).toEqual(
          want.map((r) => [r.layer, r.feature, r.concept]),
        )
        expectScores(
          rows.map((r) => r.activation),
          want.map((r) => r.activation),
          tol,
        )
      })
    }

    it('walk defaults to top 10 in mode last', async () => {
      await db.exec('reset infer.walk_embed_mode')
      const { rows } = await db.query<WalkRow>("select * from walk('Paris is the capital of')")
      expect(rows.map((r) => [r.layer, r.feature])).toEqual(
        ref.walk('Paris is the capital of', 10, 'last').map((r) => [r.layer, r.feature]),
      )
    })

    it.each(ENTITIES)('describe(%j)', async (entity) => {
      const { rows } = await db.query<EdgeRow>('select * from describe($1)', [entity])
      // the entity as it occurs mid-sentence (' France'), by the case rule
      const want = ref.describe(ref.entityForm(entity), 0, 20)
      expect(rows.map((r) => [r.relation, r.target, r.layer])).toEqual(
        want.map((e) => [e.relation, e.target, e.layer]),
      )
      expectScores(
        rows.map((r) => r.confidence),
        want.map((e) => e.confidence),
        tol,
      )
      expect(rows.length).toBeGreaterThan(0)
    })

    it('describe with an explicit threshold and infer.describe_top_k', async () => {
      await db.exec('set infer.describe_top_k = 5')
      const { rows } = await db.query<EdgeRow>("select * from describe('Japan', threshold => 0.3)")
      await db.exec('reset infer.describe_top_k')
      const want = ref.describe(ref.entityForm('Japan'), 0.3, 5)
      expect(rows.map((r) => [r.target, r.layer])).toEqual(want.map((e) => [e.target, e.layer]))
      expect(rows.every((r) => r.confidence >= 0.3)).toBe(true)
    })

    it('infer.gate_threshold applies when no threshold is given', async () => {
      await db.exec('set infer.gate_threshold = 0.45')
      const { rows } = await db.query<EdgeRow>("select * from describe('France')")
      await db.exec('reset infer.gate_threshold')
      const want = ref.describe(ref.entityForm('France'), 0.45, 20)
      expect(rows.map((r) => r.target)).toEqual(want.map((e) => e.target))
    })

    it.each(PAIRS)('similar_to(%j, %j) and infer_distance', async (a, b) => {
      const { rows } = await db.query<{ s: number; d: number }>(
        'select similar_to($1, $2) as s, infer_distance($1, $2) as d',
        [a, b],
      )
      const s = ref.similarToTokens(a, b)
      expectScores([rows[0]!.s], [s], tol)
      // a distance near 0 (a text and itself): absolute, as float32 sums leave ~1e-7
      expect(Math.abs(rows[0]!.d - (1 - s))).toBeLessThan(tol)
    })

    it("infer_signatures gives each text's signature: the distinct tokens of its entity form", async () => {
      // 40 texts: more than two batches of 16, with a partial last batch
      const texts = [...ENTITIES, ...WALK_PROMPTS, ...PAIRS.flat()]
      while (texts.length < 40) texts.push(`${texts[texts.length % 7]} ${texts.length}`)
      const { rows } = await db.query<{
        ord: number
        layer: number
        feature: number
        score: number
      }>('select * from infer_signatures($1)', [texts])
      texts.forEach((t, i) => {
        const got = rows.filter((r) => r.ord === i + 1)
        expect(got.map((r) => [r.layer, r.feature, r.score])).toEqual(
          ref.signatureTokens(t).map((id) => [null, id, 1]),
        )
      })
    })

    it('implies() agrees with the reference on true and false pairs', async () => {
      const cases: [string, string][] = [
        ['France', ref.describe(ref.entityForm('France'))[0]!.target],
        ['Japan', ref.describe(ref.entityForm('Japan'))[1]!.target.toUpperCase()],
        ['France', 'Paris'],
        ['Germany', 'banana'],
      ]
      for (const [s, o] of cases) {
        const { rows } = await db.query<{ v: boolean }>('select implies($1, $2) as v', [s, o])
        expect([s, o, rows[0]!.v]).toEqual([s, o, ref.implies(ref.entityForm(s), o)])
      }
    })
  })
}
