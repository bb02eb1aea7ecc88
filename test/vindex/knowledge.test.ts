import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  MemorySink,
  extractVindex,
  openVindex,
  roundToF16,
  vindexFromBytes,
  type Vindex,
} from '@pglite-infer/vindex'
import { DirectoryFileSet } from '@pglite-infer/vindex/node'
import { beforeAll, describe, expect, it } from 'vitest'
import { downMetaF64, readSafetensorsF64, type RawTensor } from './independent.js'
import { FIXTURES } from './tiny-checkpoints.js'

const MODEL = join(FIXTURES, 'knowledge-qwen2-6l')
const raw = readSafetensorsF64(join(MODEL, 'model.safetensors'))
const reference = JSON.parse(readFileSync(join(MODEL, 'semantics-reference.json'), 'utf8')) as {
  down_meta_top: number[][][]
}

async function extract(dtype: 'f16' | 'f32'): Promise<Vindex> {
  const sink = new MemorySink()
  const files = new DirectoryFileSet(MODEL, true)
  await extractVindex(files, sink, { dtype, modelName: 'knowledge-qwen2-6l' }).finally(() =>
    files.close(),
  )
  return openVindex(vindexFromBytes(sink.files), { verifyChecksums: true })
}

function tensor(name: string): RawTensor {
  const t = raw.get(name)
  if (!t) throw new Error(`fixture lacks ${name}`)
  return t
}

describe('knowledge-qwen2-6l vindex contents', () => {
  let f32: Vindex
  let f16: Vindex
  beforeAll(async () => {
    ;[f32, f16] = await Promise.all([extract('f32'), extract('f16')])
  })

  it('has the fixture dimensions', () => {
    expect(f32.index).toMatchObject({
      version: 2,
      family: 'qwen2',
      num_layers: 6,
      hidden_size: 256,
      intermediate_size: 1024,
      vocab_size: 2595,
      embed_scale: 1,
      down_top_k: 10,
      layer_bands: null,
    })
    expect(f32.config).toMatchObject({
      numHeads: 4,
      numKvHeads: 2,
      headDim: 64,
      ropeTheta: 10000,
      normEps: 1e-6,
    })
    expect(f32.config.tieWordEmbeddings).toBe(false)
  })

  it('down_meta top-k equals an independent float64 computation on sampled features', () => {
    const embed = tensor('model.embed_tokens.weight')
    for (const layer of [0, 2, 5]) {
      const down = tensor(`model.layers.${layer}.mlp.down_proj.weight`)
      for (const feature of [0, 1, 17, 511, 1023]) {
        const want = downMetaF64(embed, down, feature, 10)
        const got = f32.topTokens(layer, feature)
        expect(got.ids).toEqual(want.ids)
        got.logits.forEach((l, i) => expect(l).toBeCloseTo(want.logits[i]!, 5))
        expect(got.topTokenId).toBe(want.ids[0])
        // down_meta is computed from the source f32 weights whatever the storage dtype.
        expect(f16.topTokens(layer, feature).ids).toEqual(want.ids)
      }
    }
  })

  it('down_meta matches semantics-reference.json for every feature of every layer', () => {
    let compared = 0
    for (let layer = 0; layer < 6; layer++) {
      for (let feature = 0; feature < 1024; feature++) {
        expect(f32.topTokens(layer, feature).ids).toEqual(reference.down_meta_top[layer]![feature])
        compared++
      }
    }
    expect(compared).toBe(6144)
  })

  it('gate vectors equal the source rows: f32 exactly, f16 to f16 rounding', () => {
    for (const layer of [0, 3, 5]) {
      const src = tensor(`model.layers.${layer}.mlp.gate_proj.weight`).values
      const g32 = f32.gateVectors(layer)
      const g16 = f16.gateVectors(layer)
      expect(g32.length).toBe(1024 * 256)
      for (let i = 0; i < src.length; i++) {
        if (g32[i] !== src[i]) throw new Error(`f32 gate ${layer}[${i}] ${g32[i]} != ${src[i]}`)
        if (g16[i] !== roundToF16(src[i]!)) throw new Error(`f16 gate ${layer}[${i}]`)
        if (Math.abs(g16[i]! - src[i]!) > Math.abs(src[i]!) * 2 ** -11 + 2 ** -25)
          throw new Error('f16 error too large')
      }
    }
    expect([...f32.gateRow(2, 7)]).toEqual([
      ...tensor('model.layers.2.mlp.gate_proj.weight').values.slice(7 * 256, 8 * 256),
    ])
  })

  it('embeddings are stored unscaled and the tokenizer works', () => {
    const e = tensor('model.embed_tokens.weight').values
    expect([...f32.embeddingRow(2280)]).toEqual([...e.slice(2280 * 256, 2281 * 256)])
    const tok = f32.tokenizer()
    expect(tok.encode('The capital of France is').ids).toEqual([267, 277, 265, 1179, 260])
    expect(tok.decode([2280])).toBe(' Paris')
  })
})
