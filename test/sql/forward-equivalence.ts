// The forward step's equivalence suite, shared by every host backend's test
// (compute-forward.test.ts: onnx; webgpu-forward.test.ts: webgpu): on the
// knowledge fixture (f32, f16), stories260K and a tiny checkpoint of every
// family, infer() top-10 tokens identical and probabilities within 1e-4,
// forward-mode walk rows the same sets (activations within 1e-4), describe()
// rows and infer_answer()'s greedy continuation (multi-step decode on the
// backend's KV cache) identical to the built-in 'wasm' pass; signatures
// (greedy continuations of a batch of texts stepped together) and
// similar_to (the vocabulary sample stepped together) the same.
import type { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { InferNamespace } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { STORIES_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { makeTinyCheckpoint, type TinyFamily } from '../vindex/tiny-checkpoints.js'

export type Db = PGlite & { infer: InferNamespace }
export type HostBackend = 'onnx' | 'webgpu'

export interface InferRow {
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

export async function on<T>(
  db: Db,
  backend: 'wasm' | HostBackend,
  f: () => Promise<T>,
): Promise<T> {
  await db.exec(`set infer.compute = '${backend}'`)
  try {
    return await f()
  } finally {
    await db.exec('reset infer.compute')
  }
}

/**
 * Declares the suite for `backend`; returns the database its tests use
 * (opened in beforeAll, closed in afterAll) for the caller's own tests.
 */
export function forwardEquivalence(
  backend: HostBackend,
  options: {
    /**
     * Compare similar_to too, whose first call per loaded model steps the
     * vocabulary sample (512 tokens x 9 steps). webgpu has no batched pass
     * (the worker steps a batch one run at a time) and on a software
     * rasterizer that takes minutes per model, so its suite leaves it out.
     */
    similarTo?: boolean
  } = {},
): { db: () => Db } {
  let db: Db
  const TOL = 1e-4
  const signatures = `signatures of a batch${options.similarTo === false ? '' : ' and similar_to'}`

  async function both<T>(sql: string, params: unknown[] = []): Promise<{ wasm: T[]; host: T[] }> {
    const wasm = await on(db, 'wasm', async () => (await db.query<T>(sql, params)).rows)
    const host = await on(db, backend, async () => (await db.query<T>(sql, params)).rows)
    return { wasm, host }
  }

  /** |a - b| <= TOL * max(1, |b|): the mismatches. */
  function far(a: number[], b: number[]): [number, number, number][] {
    return a.flatMap((x, i) =>
      Math.abs(x - b[i]!) <= TOL * Math.max(1, Math.abs(b[i]!)) ? [] : [[i, x, b[i]!]],
    )
  }

  async function expectSameInfer(model: string, prompt: string): Promise<void> {
    const { wasm, host } = await both<InferRow>('select * from infer($1, 10, $2)', [prompt, model])
    expect(wasm).toHaveLength(10)
    expect(host.map((r) => r.token)).toEqual(wasm.map((r) => r.token))
    expect(
      far(
        host.map((r) => r.probability),
        wasm.map((r) => r.probability),
      ),
    ).toEqual([])
  }

  async function expectSameWalk(model: string, prompt: string, top: number): Promise<void> {
    const { wasm, host } = await both<WalkRow>("select * from walk($1, $2, $3, 'forward')", [
      prompt,
      top,
      model,
    ])
    expect(wasm.length).toBeGreaterThan(0)
    const key = (r: WalkRow) => `${r.layer}:${r.feature}:${r.concept}`
    expect(new Set(host.map(key))).toEqual(new Set(wasm.map(key)))
    const byKey = new Map(host.map((r) => [key(r), r.activation]))
    expect(
      far(
        wasm.map((r) => byKey.get(key(r))!),
        wasm.map((r) => r.activation),
      ),
    ).toEqual([])
  }

  async function expectSameAnswer(model: string, prompt: string): Promise<void> {
    const { wasm, host } = await both<{ answer: string | null; probability: number | null }>(
      'select * from infer_answer($1, $2)',
      [prompt, model],
    )
    expect(host[0]!.answer).toEqual(wasm[0]!.answer)
    if (wasm[0]!.probability !== null)
      expect(far([host[0]!.probability!], [wasm[0]!.probability])).toEqual([])
  }

  /** Inference-level vindexes by model name: signature tests load them again. */
  const vindexes = new Map<string, string>()

  async function inference(dir: string, name: string, dtype: 'f16' | 'f32' = 'f32') {
    const out = join(scratchDir(name), 'model.vindex')
    await extractVindexDir(dir, out, { dtype, level: 'inference', modelName: name, workers: 0 })
    return out
  }

  /**
   * infer_signatures of a batch and similar_to of pairs, on two fresh loads
   * of the same vindex (signatures, token states and the vocabulary sample
   * are cached per loaded model): one computed on wasm, one on the backend,
   * where the texts' continuations and the sample's tokens are stepped
   * together in batched passes.
   */
  async function expectSameSignatures(model: string, texts: string[]): Promise<void> {
    const path = vindexes.get(model)!
    await db.query("select infer_create_model('sig_w', $1, 'inference')", [path])
    await db.query("select infer_create_model('sig_h', $1, 'inference')", [path])
    try {
      type Sig = { ord: number; token: number; score: number }
      const sql = 'select ord, feature as token, score from infer_signatures($1::text[], $2)'
      const wasm = await on(
        db,
        'wasm',
        async () => (await db.query<Sig>(sql, [texts, 'sig_w'])).rows,
      )
      const host = await on(
        db,
        backend,
        async () => (await db.query<Sig>(sql, [texts, 'sig_h'])).rows,
      )
      expect(new Set(wasm.map((r) => r.ord)).size).toBe(texts.length)
      expect(host.map((r) => `${r.ord}:${r.token}`)).toEqual(wasm.map((r) => `${r.ord}:${r.token}`))
      expect(
        far(
          host.map((r) => r.score),
          wasm.map((r) => r.score),
        ),
      ).toEqual([])
      if (options.similarTo === false) return
      const pairs = texts.slice(1).map((t, i) => [texts[i]!, t] as const)
      const sim = (m: string) => async () => {
        const out: number[] = []
        for (const [a, b] of pairs)
          out.push(
            (await db.query<{ s: number }>('select similar_to($1, $2, $3) as s', [a, b, m]))
              .rows[0]!.s,
          )
        return out
      }
      const simWasm = await on(db, 'wasm', sim('sig_w'))
      const simHost = await on(db, backend, sim('sig_h'))
      expect(far(simHost, simWasm)).toEqual([])
    } finally {
      await db.query("select infer_drop_model('sig_w'), infer_drop_model('sig_h')")
    }
  }

  beforeAll(async () => {
    db = await openDb()
    vindexes.set('q', await fixtureVindex('f32', 'inference'))
    vindexes.set('q16', await fixtureVindex('f16', 'inference'))
    vindexes.set('s', await inference(STORIES_FIXTURE, 'stories260K'))
    for (const m of ['q', 'q16', 's'])
      await db.query(`select infer_create_model('${m}', $1, 'inference')`, [vindexes.get(m)])
  }, 180_000)

  afterAll(async () => {
    await db?.infer.compute.terminate()
    await db?.infer.webgpu.terminate()
    await db?.close()
  })

  const qwenPrompts = [
    'The capital of France is',
    'The currency of Japan is the',
    'The capital of France is Paris and the currency of Japan is the yen. People in',
  ]

  describe.each(['q', 'q16'])(`knowledge-qwen2-6l (%s): ${backend} equals wasm`, (model) => {
    it.each(qwenPrompts)('infer(%j) top-10', async (prompt) => {
      await expectSameInfer(model, prompt)
    })

    it('forward-mode walk rows are the same sets', async () => {
      await expectSameWalk(model, 'The capital of France is', 50)
    })

    it("infer_answer's greedy continuation (decode steps on the worker's KV cache)", async () => {
      for (const prompt of ['The capital of France is', 'The official language of Spain is'])
        await expectSameAnswer(model, prompt)
    })

    it(`${signatures} (texts and the vocabulary sample stepped together)`, async () => {
      await expectSameSignatures(model, [
        'France',
        'Paris',
        'the capital of Germany',
        'The currency of Japan is the yen and',
        // past SIGNATURE_PROMPT_MAX (64 tokens): no continuation, its own tokens only
        Array.from({ length: 20 }, () => 'Paris and Berlin and Rome').join(' '),
        'France',
      ])
    })
  })

  describe('describe() with relation templates', () => {
    beforeAll(async () => {
      await db.query("select infer_add_relation('q', 'capital', 'The capital of {} is')")
      await db.query("select infer_add_relation('q', 'currency', 'The currency of {} is the')")
    })

    it.each(['France', 'Japan', 'Germany'])('describe(%j) rows are identical', async (entity) => {
      const { wasm, host } = await both<{
        relation: string
        target: string
        confidence: number
        layer: number
      }>("select * from describe($1, 'q') order by relation, target", [entity])
      expect(wasm.length).toBeGreaterThan(0)
      expect(host.map((r) => [r.relation, r.target, r.layer])).toEqual(
        wasm.map((r) => [r.relation, r.target, r.layer]),
      )
      expect(
        far(
          host.map((r) => r.confidence),
          wasm.map((r) => r.confidence),
        ),
      ).toEqual([])
    })
  })

  describe(`stories260K (Llama, tied embeddings, BOS): ${backend} equals wasm`, () => {
    it.each(['Once upon a time', 'Lily and Tom went to the', 'The cat sat on the mat. It was'])(
      'infer(%j) top-10',
      async (prompt) => {
        await expectSameInfer('s', prompt)
      },
    )

    it('forward-mode walk and greedy continuation', async () => {
      await expectSameWalk('s', 'Once upon a time', 40)
      await expectSameAnswer('s', 'Once upon a time there was a')
    })

    it(signatures, async () => {
      await expectSameSignatures('s', ['cat', 'Lily', 'the ball', 'Once upon a time', 'tree'])
    })
  })

  const FAMILIES: TinyFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'gpt2']

  describe.each(FAMILIES)(`tiny %s checkpoint: ${backend} equals wasm`, (family) => {
    const model = `t_${family}`
    beforeAll(async () => {
      const ck = await makeTinyCheckpoint(family, { dir: scratchDir(`fwd-tiny-${family}`) })
      if (family === 'gemma3') {
        // a global layer too: linear RoPE scaling there, the local base on layer 0
        const cfg = { ...ck.config, layer_types: ['sliding_attention', 'full_attention'] }
        writeFileSync(join(ck.dir, 'config.json'), JSON.stringify(cfg))
      }
      vindexes.set(model, await inference(ck.dir, `fwd-tiny-${family}`))
      await db.query(`select infer_create_model('${model}', $1, 'inference')`, [
        vindexes.get(model),
      ])
    }, 60_000)

    // GPT-2's tiny context is 16 positions; the others get a prompt longer
    // than their sliding window (64) too
    const prompts = ['Once upon a time', 'The little dog ran to the park and']
    if (family !== 'gpt2')
      prompts.push(Array.from({ length: 12 }, () => 'the big red ball was fun').join(' '))

    it.each(prompts)('infer(%j) top-10 and its forward-mode walk', async (prompt) => {
      await expectSameInfer(model, prompt)
      await expectSameWalk(model, prompt, 200)
    })

    it('greedy continuation', async () => {
      await expectSameAnswer(model, 'Once upon a')
    })

    it(signatures, async () => {
      // GPT-2's context (16) leaves no room for the long text's continuation
      const long = Array.from(
        { length: family === 'gpt2' ? 2 : 10 },
        () => 'the big red ball was fun',
      )
      await expectSameSignatures(model, ['Once upon a', 'dog', long.join(' '), 'the park'])
    })
  })
  return { db: () => db }
}
