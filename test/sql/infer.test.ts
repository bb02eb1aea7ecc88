// infer() and walk(mode => 'forward'): the C forward pass against
// HuggingFace transformers' outputs (the fixture's reference.json), the
// float64 Llama reference on stories260K, and an independent float64 pass
// for every other family on tiny generated checkpoints.
import type { PGlite } from '@electric-sql/pglite'
import { loadTokenizer } from '@pglite-infer/vindex'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { QWEN_FIXTURE, STORIES_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { FamilyReference, topProbabilities } from '../reference/forward-families.js'
import { ReferenceLm } from '../reference/forward.js'
import { makeTinyCheckpoint, type TinyFamily } from '../vindex/tiny-checkpoints.js'

interface RefPrompt {
  prompt: string
  input_ids: number[]
  top10: { id: number; text: string; prob: number; logit: number }[]
  layers: Record<string, { act_top20_abs: [number, number][] }>
}
interface InferRow {
  token: string
  probability: number
  rank: number
}
interface WalkRow {
  layer: number
  feature: number
  activation: number
  concept: string
}

const reference = JSON.parse(readFileSync(join(QWEN_FIXTURE, 'reference.json'), 'utf8')) as {
  prompts: RefPrompt[]
}

/** |a - b| <= tol * max(1, |b|) */
function near(found: number[], want: number[], tol: number): [number, number, number][] {
  return found.flatMap((f, i) =>
    Math.abs(f - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)) ? [] : [[i, f, want[i]!]],
  )
}

async function extractInference(dir: string, name: string, dtype: 'f16' | 'f32' = 'f32') {
  const out = join(scratchDir(name), 'model.vindex')
  await extractVindexDir(dir, out, { dtype, level: 'inference', modelName: name, workers: 0 })
  return out
}

describe('infer() on knowledge-qwen2-6l against transformers', () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb()
    await db.query("select infer_create_model('q', $1, 'inference')", [
      await fixtureVindex('f32', 'inference'),
    ])
    await db.query("select infer_create_model('q16', $1, 'inference')", [
      await fixtureVindex('f16', 'inference'),
    ])
  })
  afterAll(async () => {
    await db?.close()
  })

  it.each(reference.prompts.map((p) => [p.prompt, p] as const))(
    'infer(%j) matches the top-10 tokens and probabilities',
    async (prompt, ref) => {
      const { rows } = await db.query<InferRow>("select * from infer($1, 10, 'q')", [prompt])
      expect(rows.map((r) => r.token)).toEqual(ref.top10.map((t) => t.text))
      expect(rows.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      const bad = rows.flatMap((r, i) =>
        Math.abs(r.probability - ref.top10[i]!.prob) <= 1e-3 ? [] : [[i, r.probability]],
      )
      expect(bad).toEqual([])
    },
  )

  it.each(reference.prompts.map((p) => [p.prompt, p] as const))(
    "walk(%j, mode => 'forward') matches the act values at layers 0, 2, 5",
    async (prompt, ref) => {
      const { rows } = await db.query<WalkRow>(
        "select * from walk($1, 6144, 'q', mode => 'forward')",
        [prompt],
      )
      for (const [layer, want] of Object.entries(ref.layers)) {
        const got = rows.filter((r) => r.layer === Number(layer)).slice(0, 20)
        expect(got.map((r) => r.feature)).toEqual(want.act_top20_abs.map(([f]) => f))
        const values = want.act_top20_abs.map(([, v]) => v)
        expect(
          near(
            got.map((r) => r.activation),
            values,
            1e-3,
          ),
        ).toEqual([])
      }
    },
  )

  it('forward walk concepts read the untied lm_head, signed like the activation', async () => {
    const fam = new FamilyReference(QWEN_FIXTURE)
    const tokenizer = loadTokenizer(
      readFileSync(join(QWEN_FIXTURE, 'tokenizer.json'), 'utf8'),
      readFileSync(join(QWEN_FIXTURE, 'tokenizer_config.json'), 'utf8'),
    )
    const { rows } = await db.query<WalkRow>(
      "select * from walk('The capital of France is', 20, 'q', 'forward')",
    )
    expect(rows.some((r) => r.activation < 0)).toBe(true)
    for (const r of rows)
      expect([r.layer, r.feature, r.concept]).toEqual([
        r.layer,
        r.feature,
        tokenizer.decode([fam.writeToken(r.layer, r.feature, r.activation < 0)]).trim(),
      ])
  })

  it.each(['forward', 'embedding'])(
    "walk(band => 'knowledge'), %s: the top rows of the knowledge band's layers only",
    async (mode) => {
      const bands = await db.query<{ layer: number; band: string }>(
        "select * from infer_layer_bands('q')",
      )
      const knowledge = bands.rows.filter((b) => b.band === 'knowledge').map((b) => b.layer)
      expect(knowledge).toEqual([2, 3])
      const all = await db.query<WalkRow>("select * from walk($1, 6144, 'q', $2)", [
        'The capital of France is',
        mode,
      ])
      const want = all.rows
        .filter((r) => knowledge.includes(r.layer))
        .sort((a, b) => Math.abs(b.activation) - Math.abs(a.activation))
        .slice(0, 15)
        .sort((a, b) => a.layer - b.layer || Math.abs(b.activation) - Math.abs(a.activation))
      const { rows } = await db.query<WalkRow>(
        "select * from walk($1, 15, 'q', $2, band => 'knowledge')",
        ['The capital of France is', mode],
      )
      expect(rows).toEqual(want)
    },
  )

  it('the f16 vindex predicts the same top tokens, probabilities within 2e-2', async () => {
    for (const ref of reference.prompts) {
      const { rows } = await db.query<InferRow>("select * from infer($1, 3, 'q16')", [ref.prompt])
      expect(rows[0]!.token).toBe(ref.top10[0]!.text)
      expect(Math.abs(rows[0]!.probability - ref.top10[0]!.prob)).toBeLessThan(2e-2)
    }
  })

  it('defaults: top 10, infer.default_model; probabilities sum below 1', async () => {
    await db.exec("set infer.default_model = 'q'")
    const { rows } = await db.query<InferRow>("select * from infer('People in Japan speak')")
    await db.exec('reset infer.default_model')
    expect(rows).toHaveLength(10)
    expect(rows[0]!.token).toBe(' Japanese')
    const sum = rows.reduce((a, r) => a + r.probability, 0)
    expect(sum).toBeLessThanOrEqual(1 + 1e-9)
  })

  it('infer_models() counts the inference weights in bytes', async () => {
    const { rows } = await db.query<{ name: string; bytes: number }>(
      'select name, bytes from infer_models() order by name',
    )
    // browse data: gate + embeddings (f32) + down_meta (int32 token, f32 logit)
    const browse = 6 * 1024 * 256 * 4 + 2595 * 256 * 4 + 6 * 1024 * 10 * 8
    // per layer q, k, v, o, up, down, biases, norms; final norm; lm_head
    const layer =
      (256 * 256 * 2 + 128 * 256 * 2 + 1024 * 256 * 2) * 4 + (256 + 128 * 2) * 4 + 2 * 256 * 4
    const weights = 6 * layer + 256 * 4 + 2595 * 256 * 4
    const q = rows.find((r) => r.name === 'q')!
    expect(q.bytes).toBeGreaterThanOrEqual(browse + weights)
    expect(q.bytes).toBeLessThan(browse + weights + 4096)
  })
})

describe('stories260K (Llama, tied embeddings, BOS) against the float64 reference', () => {
  let db: PGlite
  const ref = new ReferenceLm(STORIES_FIXTURE)
  const tokenizer = loadTokenizer(
    readFileSync(join(STORIES_FIXTURE, 'tokenizer.json'), 'utf8'),
    readFileSync(join(STORIES_FIXTURE, 'tokenizer_config.json'), 'utf8'),
  )
  beforeAll(async () => {
    db = await openDb()
    await db.query("select infer_create_model('s', $1, 'inference')", [
      await extractInference(STORIES_FIXTURE, 'stories260K'),
    ])
  })
  afterAll(async () => {
    await db?.close()
  })

  it.each(['Once upon a time', 'Lily and Tom went to the', 'The cat sat on the mat. It was'])(
    'infer(%j)',
    async (prompt) => {
      const ids = tokenizer.encode(prompt, { add_special_tokens: true }).ids
      expect(ids[0]).toBe(1) // <s>
      const want = ref.nextTokens(ids, 10)
      const { rows } = await db.query<InferRow>("select * from infer($1, 10, 's')", [prompt])
      expect(rows.map((r) => r.token)).toEqual(want.map((t) => tokenizer.decode([t.id])))
      expect(
        near(
          rows.map((r) => r.probability),
          want.map((t) => t.probability),
          1e-4,
        ),
      ).toEqual([])
    },
  )
})

const FAMILIES: TinyFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'gpt2']

describe.each(FAMILIES)('tiny %s checkpoint against the float64 family reference', (family) => {
  let db: PGlite
  let ref: FamilyReference
  let tokenizer: ReturnType<typeof loadTokenizer>
  beforeAll(async () => {
    const ck = await makeTinyCheckpoint(family, { dir: scratchDir(`tiny-${family}`) })
    if (family === 'gemma3') {
      // a global layer too: linear RoPE scaling there, the local base on layer 0
      const cfg = { ...ck.config, layer_types: ['sliding_attention', 'full_attention'] }
      writeFileSync(join(ck.dir, 'config.json'), JSON.stringify(cfg))
    }
    ref = new FamilyReference(ck.dir)
    tokenizer = loadTokenizer(
      readFileSync(join(ck.dir, 'tokenizer.json'), 'utf8'),
      readFileSync(join(ck.dir, 'tokenizer_config.json'), 'utf8'),
    )
    db = await openDb()
    await db.query("select infer_create_model('t', $1, 'inference')", [
      await extractInference(ck.dir, `tiny-${family}`),
    ])
  })
  afterAll(async () => {
    await db?.close()
  })

  // GPT-2's tiny context is 16 positions; the others get a prompt longer
  // than their sliding window (64) too
  const prompts = ['Once upon a time', 'The little dog ran to the park and']
  if (family !== 'gpt2')
    prompts.push(Array.from({ length: 12 }, () => 'the big red ball was fun').join(' '))

  it.each(prompts)('infer(%j) and its forward-mode walk', async (prompt) => {
    const ids = tokenizer.encode(prompt, { add_special_tokens: true }).ids
    const want = ref.run(ids)
    const top = topProbabilities(want.logits, 10)
    const { rows } = await db.query<InferRow>("select * from infer($1, 10, 't')", [prompt])
    expect(rows.map((r) => r.token)).toEqual(top.map((t) => tokenizer.decode([t.id])))
    expect(
      near(
        rows.map((r) => r.probability),
        top.map((t) => t.probability),
        1e-4,
      ),
    ).toEqual([])

    const walk = await db.query<WalkRow>("select * from walk($1, 10000, 't', 'forward')", [prompt])
    want.acts.forEach((act, layer) => {
      const got = walk.rows.filter((r) => r.layer === layer)
      expect(got).toHaveLength(act.length)
      const byFeature = new Map(got.map((r) => [r.feature, r.activation]))
      const found = Array.from(act, (_, f) => byFeature.get(f)!)
      expect(near(found, Array.from(act), 1e-4)).toEqual([])
    })
  })

  it('forward walk concepts are the tokens the features write (logit lens of +-W_down[:, f])', async () => {
    const { rows } = await db.query<WalkRow>(
      "select * from walk('Once upon a time', 12, 't', 'forward')",
    )
    expect(rows).toHaveLength(12)
    for (const r of rows) {
      const id = ref.writeToken(r.layer, r.feature, r.activation < 0)
      expect([r.layer, r.feature, r.concept]).toEqual([
        r.layer,
        r.feature,
        tokenizer.decode([id]).trim(),
      ])
    }
  })
})
