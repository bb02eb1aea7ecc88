// Cross-checks the float64 TypeScript reference (knowledge.ts) against
// semantics-reference.json, float64 numpy outputs of the same definitions on
// the knowledge-qwen2-6l fixture, and checks the parts that file does not
// cover (describe's filtering, implies, infer_distance, bands, errors).

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, beforeAll } from 'vitest'
import { ReferenceModel, STOPWORDS, layerBand, topKLogits, isLettersOnly } from './knowledge.js'
import { SafetensorsFile, f16ToNumber, bf16ToNumber } from './safetensors.js'
import { ReferenceLm } from './forward.js'

const MODEL_DIR = fileURLToPath(new URL('../fixtures/models/knowledge-qwen2-6l', import.meta.url))

interface SemanticsReference {
  model: {
    num_hidden_layers: number
    intermediate_size: number
    hidden_size: number
    vocab_size: number
  }
  down_meta_top: number[][][]
  walk: {
    prompt: string
    top: number
    rows: { layer: number; feature: number; activation: number; concept: string }[]
  }[]
  describe: {
    entity: string
    candidates: { layer: number; feature: number; score: number; target: string }[]
  }[]
  similar_to: { a: string; b: string; score: number }[]
  infer: {
    prompt: string
    ids: number[]
    top: { id: number; token: string; probability: number }[]
  }[]
}

const REL = 1e-9

function expectClose(actual: number, expected: number, what: string): void {
  const err = Math.abs(actual - expected)
  const tol = REL * Math.max(Math.abs(expected), 1e-300)
  if (!(err <= tol))
    throw new Error(
      `${what}: ${actual} vs ${expected} (relative error ${err / Math.abs(expected)})`,
    )
}

let model: ReferenceModel
let ref: SemanticsReference

beforeAll(() => {
  model = ReferenceModel.load(MODEL_DIR)
  ref = JSON.parse(
    readFileSync(`${MODEL_DIR}/semantics-reference.json`, 'utf8'),
  ) as SemanticsReference
})

describe('safetensors reader', () => {
  it('widens f16 and bf16 exactly', () => {
    expect(f16ToNumber(0x3c00)).toBe(1)
    expect(f16ToNumber(0xc000)).toBe(-2)
    expect(f16ToNumber(0x7bff)).toBe(65504)
    expect(f16ToNumber(0x0001)).toBe(2 ** -24)
    expect(f16ToNumber(0x3555)).toBe(0.333251953125)
    expect(f16ToNumber(0x7c00)).toBe(Infinity)
    expect(Number.isNaN(f16ToNumber(0x7e00))).toBe(true)
    expect(bf16ToNumber(0x3f80)).toBe(1)
    expect(bf16ToNumber(0xc040)).toBe(-3)
    expect(bf16ToNumber(0x3eab)).toBe(0.333984375)
  })

  it('reads the fixture checkpoint', () => {
    const f = new SafetensorsFile(`${MODEL_DIR}/model.safetensors`)
    expect(f.shape('model.embed_tokens.weight')).toEqual([2595, 256])
    expect(f.shape('model.layers.3.mlp.gate_proj.weight')).toEqual([1024, 256])
    expect(f.shape('model.layers.3.mlp.down_proj.weight')).toEqual([256, 1024])
    const e = f.get('model.embed_tokens.weight')
    expect(e.dtype).toBe('F32')
    expect(e.data.length).toBe(2595 * 256)
    expect(e.data.every((x) => Number.isFinite(x) && Math.fround(x) === x)).toBe(true)
  })
})

describe('model and tokenizer', () => {
  it('has the fixture dimensions', () => {
    expect(model.modelType).toBe('qwen2')
    expect(model.numLayers).toBe(ref.model.num_hidden_layers)
    expect(model.features).toBe(ref.model.intermediate_size)
    expect(model.hidden).toBe(ref.model.hidden_size)
    expect(model.vocab).toBe(ref.model.vocab_size)
    expect(model.embedScale).toBe(1)
  })

  it('tokenizes like HF (no special tokens are added for this Qwen2 fixture)', () => {
    for (const inf of ref.infer) {
      expect(model.tokenize(inf.prompt, true)).toEqual(inf.ids)
      expect(model.tokenize(inf.prompt, false)).toEqual(inf.ids)
    }
    for (const inf of ref.infer)
      for (const t of inf.top) expect(model.tokenizer.decode([t.id])).toBe(t.token)
  })

  it('rejects empty text', () => {
    expect(() => model.walk('')).toThrow()
    expect(() => model.describe('')).toThrow()
    expect(() => model.similarTo('', 'France')).toThrow()
    expect(() => model.similarTo('France', '')).toThrow()
    expect(() => model.inferDistance('', '')).toThrow()
    expect(() => model.implies('', 'Paris')).toThrow()
  })
})

describe('down_meta', () => {
  it('top-10 tokens of every feature match semantics-reference.json', () => {
    for (let l = 0; l < model.numLayers; l++) {
      const layer = model.downMetaLayer(l, 10)
      const got = layer.map((f) => f.map((t) => t.token))
      expect(got, `layer ${l}`).toEqual(ref.down_meta_top[l])
      for (const f of layer)
        for (let i = 1; i < f.length; i++) expect(f[i - 1]!.logit >= f[i]!.logit).toBe(true)
    }
  })

  it('per-feature path computes the same logits as the per-layer path', () => {
    const fresh = ReferenceModel.load(MODEL_DIR)
    for (const [l, f] of [
      [0, 0],
      [2, 517],
      [5, 1023],
      [3, 1],
    ] as const) {
      const single = fresh.downMeta(l, f, 10)
      const logits = fresh.downLogits(l, f)
      expect(single).toEqual(model.downMeta(l, f, 10))
      expect(single.map((t) => t.token)).toEqual(ref.down_meta_top[l]![f])
      // top-1 is the arg max; every logit not in the top-k is <= the k-th
      const kth = single[9]!.logit
      for (let v = 0; v < logits.length; v++) {
        if (!single.some((t) => t.token === v)) expect(logits[v]! <= kth).toBe(true)
      }
    }
  })

  it('breaks logit ties by token id ascending', () => {
    const top = topKLogits(Float64Array.from([1, 3, 2, 3, 0, 3]), 4)
    expect(top).toEqual([
      { token: 1, logit: 3 },
      { token: 3, logit: 3 },
      { token: 5, logit: 3 },
      { token: 2, logit: 2 },
    ])
  })
})

describe('walk', () => {
  it('matches semantics-reference.json row for row', () => {
    for (const w of ref.walk) {
      const rows = model.walk(w.prompt, w.top)
      expect(rows.map((r) => [r.layer, r.feature, r.concept])).toEqual(
        w.rows.map((r) => [r.layer, r.feature, r.concept]),
      )
      rows.forEach((r, i) =>
        expectClose(r.activation, w.rows[i]!.activation, `${w.prompt} row ${i}`),
      )
    }
  })

  it('orders rows by layer, then |activation| descending', () => {
    for (const mode of ['last', 'average'] as const) {
      const rows = model.walk('The capital of France is', 40, mode)
      expect(rows).toHaveLength(40)
      for (let i = 1; i < rows.length; i++) {
        const a = rows[i - 1]!
        const b = rows[i]!
        expect(
          a.layer < b.layer ||
            (a.layer === b.layer && Math.abs(a.activation) >= Math.abs(b.activation)),
        ).toBe(true)
      }
    }
  })

  it("mode 'average' uses the mean token embedding", () => {
    const ids = model.tokenize('People in Japan speak', true)
    const q = model.queryMean(ids)
    const rows = model.walk('People in Japan speak', 5, 'average')
    for (const r of rows) expect(model.gateScores(r.layer, q)[r.feature]).toBe(r.activation)
    const minTop = Math.min(...rows.map((r) => Math.abs(r.activation)))
    for (let l = 0; l < model.numLayers; l++) {
      const s = model.gateScores(l, q)
      let above = 0
      for (const x of s) if (Math.abs(x) > minTop) above++
      expect(above).toBeLessThanOrEqual(rows.filter((r) => r.layer === l).length)
    }
  })
})

describe('describe', () => {
  it('gate candidates match semantics-reference.json', () => {
    for (const d of ref.describe) {
      const cands = model.describeCandidates(d.entity, 20)
      expect(cands.map((c) => [c.layer, c.feature, c.target])).toEqual(
        d.candidates.map((c) => [c.layer, c.feature, c.target]),
      )
      cands.forEach((c, i) =>
        expectClose(c.score, d.candidates[i]!.score, `${d.entity} candidate ${i}`),
      )
    }
  })

  it('filters the reference candidates as specified', () => {
    for (const d of ref.describe) {
      // An independent derivation from the reference file's candidates.
      const max = Math.max(...d.candidates.map((c) => c.score))
      const kept = new Map<string, { target: string; score: number; layer: number }>()
      for (const c of d.candidates) {
        const t = c.target.trim()
        const key = t.toLowerCase()
        if (
          c.score < 0.1 * max ||
          !/^\p{L}+$/u.test(t) ||
          key === d.entity.toLowerCase() ||
          STOPWORDS.has(key)
        ) {
          continue
        }
        const prev = kept.get(key)
        if (!prev || c.score > prev.score)
          kept.set(key, { target: t, score: c.score, layer: c.layer })
      }
      const expected = [...kept.values()].sort((a, b) => b.score - a.score || a.layer - b.layer)
      const edges = model.describe(d.entity)
      expect(edges.map((e) => [e.target, e.layer])).toEqual(
        expected.map((e) => [e.target, e.layer]),
      )
      edges.forEach((e, i) =>
        expectClose(e.confidence, expected[i]!.score, `${d.entity} edge ${i}`),
      )
      for (const e of edges) expect(e.relation).toBe(layerBand(e.layer, 6))
    }
  })

  it('returns content words only, deduplicated, strongest first', () => {
    const edges = model.describe('France')
    expect(edges.length).toBeGreaterThan(0)
    const seen = new Set<string>()
    for (const e of edges) {
      expect(isLettersOnly(e.target)).toBe(true)
      expect(STOPWORDS.has(e.target.toLowerCase())).toBe(false)
      expect(e.target.toLowerCase()).not.toBe('france')
      expect(seen.has(e.target.toLowerCase())).toBe(false)
      seen.add(e.target.toLowerCase())
    }
    for (let i = 1; i < edges.length; i++)
      expect(edges[i - 1]!.confidence >= edges[i]!.confidence).toBe(true)
  })

  it('applies an explicit threshold and top_k', () => {
    const all = model.describe('Japan', 0, 20)
    const strict = model.describe('Japan', 0.45, 20)
    expect(strict.length).toBeGreaterThan(0)
    expect(strict.length).toBeLessThan(all.length)
    for (const e of strict) expect(e.confidence).toBeGreaterThanOrEqual(0.45)
    const few = model.describeCandidates('Japan', 3)
    expect(few).toHaveLength(3 * model.numLayers)
    // a negative threshold keeps negative-score candidates too
    expect(model.describe('Japan', -10, 20).some((e) => e.confidence < 0)).toBe(true)
  })

  it('uses entity tokens without special tokens and the mean embedding', () => {
    const q = model.entityQuery(' France')
    const ids = model.tokenize(' France', false)
    expect(ids).toEqual([1179])
    expect(Array.from(q)).toEqual(Array.from(model.embed.subarray(1179 * 256, 1180 * 256)))
  })
})

describe('similar_to, infer_distance, implies', () => {
  it('similar_to matches semantics-reference.json', () => {
    for (const s of ref.similar_to) {
      const got = model.similarTo(s.a, s.b)
      if (s.score === 0) expect(got).toBe(0)
      else expectClose(got, s.score, `similar_to(${s.a}, ${s.b})`)
    }
  })

  it('similar_to is symmetric and infer_distance = 1 / (1 + similar_to)', () => {
    for (const s of ref.similar_to) {
      expect(model.similarTo(s.b, s.a)).toBe(model.similarTo(s.a, s.b))
      expect(model.inferDistance(s.a, s.b)).toBe(1 / (1 + model.similarTo(s.a, s.b)))
    }
    expect(model.inferDistance('France', 'Paris')).toBe(1)
    expect(model.similarTo('France', 'France')).toBe(model.similarityFeatures('France')[0]!.score)
  })

  it('implies reads describe targets, normalised', () => {
    const targets = model.describe('France').map((e) => e.target)
    expect(targets).toContain('Malta')
    expect(model.implies('France', 'Malta')).toBe(true)
    expect(model.implies('France', '  malta ')).toBe(true)
    expect(model.implies('France', 'the')).toBe(false)
    expect(model.implies('France', 'France')).toBe(false)
    for (const t of targets) expect(model.implies('France', t.toUpperCase())).toBe(true)
  })
})

describe('layer bands', () => {
  it("follows LARQL's rule", () => {
    expect([0, 1, 2, 3, 4, 5].map((l) => layerBand(l, 6))).toEqual([
      'syntax',
      'syntax',
      'knowledge',
      'knowledge',
      'output',
      'output',
    ])
    // curated: gemma3 34 layers = syntax 0-13, knowledge 14-27, output 28-33
    expect(layerBand(13, 34, 'gemma3')).toBe('syntax')
    expect(layerBand(14, 34, 'gemma3')).toBe('knowledge')
    expect(layerBand(28, 34, 'gemma3')).toBe('output')
    // proportional: 32 layers of an unlisted family = syntax 0-11, knowledge 12-24
    expect(layerBand(11, 32, 'custom')).toBe('syntax')
    expect(layerBand(12, 32, 'custom')).toBe('knowledge')
    expect(layerBand(24, 32, 'custom')).toBe('knowledge')
    expect(layerBand(25, 32, 'custom')).toBe('output')
    expect(() => layerBand(6, 6)).toThrow()
  })
})

describe('HF float32 outputs (reference.json, semantics-reference.json infer)', () => {
  it('gate KNN of a mean embedding matches reference.json (float32, top-20 by score)', () => {
    const hf = JSON.parse(readFileSync(`${MODEL_DIR}/reference.json`, 'utf8')) as {
      gate_knn: {
        text: string
        input_ids: number[]
        gate_knn_top20: Record<string, [number, number][]>
      }[]
    }
    for (const g of hf.gate_knn) {
      expect(model.tokenize(g.text, false)).toEqual(g.input_ids)
      const q = model.entityQuery(g.text)
      for (const [layer, top] of Object.entries(g.gate_knn_top20)) {
        const s = model.gateScores(Number(layer), q)
        const order = Array.from(s, (score, feature) => ({ feature, score }))
          .sort((a, b) => b.score - a.score || a.feature - b.feature)
          .slice(0, top.length)
        expect(order.map((o) => o.feature)).toEqual(top.map((t) => t[0]))
        order.forEach((o, i) => expect(Math.abs(o.score - top[i]![1])).toBeLessThan(1e-5))
      }
    }
  })

  it('infer: the float64 forward pass gives the same top-10 next tokens', () => {
    const lm = new ReferenceLm(MODEL_DIR)
    for (const inf of ref.infer) {
      const ids = model.tokenize(inf.prompt, true)
      expect(ids).toEqual(inf.ids)
      const top = lm.nextTokens(ids, 10)
      expect(top.map((t) => t.id)).toEqual(inf.top.map((t) => t.id))
      // HF ran in float32: agree to ~1e-5 relative, not 1e-9
      top.forEach((t, i) => {
        const p = inf.top[i]!.probability
        expect(Math.abs(t.probability - p) / p).toBeLessThan(1e-4)
      })
    }
  })
})
