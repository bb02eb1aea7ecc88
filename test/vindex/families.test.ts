import { rmSync } from 'node:fs'
import { mkdtemp, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MemorySink,
  extractVindex,
  openVindex,
  parseModelConfig,
  roundToF16,
  vindexFromBytes,
  type ExtractLevel,
} from '@pglite-infer/vindex'
import { DirectoryFileSet, extractVindexDir, openVindexDir } from '@pglite-infer/vindex/node'
import { afterAll, describe, expect, it } from 'vitest'
import { downMetaF64, readSafetensorsF64 } from './independent.js'
import {
  TINY,
  TINY_FAMILIES,
  makeTinyCheckpoint,
  type TinyCheckpoint,
  type TinyFamily,
} from './tiny-checkpoints.js'

const made: string[] = []
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })))

async function tiny(
  family: TinyFamily,
  opts: Parameters<typeof makeTinyCheckpoint>[1] = {},
): Promise<TinyCheckpoint> {
  const t = await makeTinyCheckpoint(family, opts)
  made.push(t.dir)
  return t
}

async function extractToMemory(
  dir: string,
  level: ExtractLevel = 'inference',
  dtype: 'f16' | 'f32' = 'f32',
) {
  const sink = new MemorySink()
  const files = new DirectoryFileSet(dir, true)
  const result = await extractVindex(files, sink, { level, dtype, topK: 5 }).finally(() =>
    files.close(),
  )
  return {
    sink,
    result,
    vindex: await openVindex(vindexFromBytes(sink.files), { verifyChecksums: true }),
  }
}

/** [rows x cols] -> [cols x rows] in the test, independent of the package. */
function t(data: Float32Array, rows: number, cols: number): number[] {
  const out = new Array<number>(data.length)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!
  return out
}

describe.each(TINY_FAMILIES)('%s tiny checkpoint', (family) => {
  it('extracts gate rows, down_meta and every weight exactly (f32)', async () => {
    const ck = await tiny(family)
    const { vindex: v } = await extractToMemory(ck.dir)
    const gpt2 = family === 'gpt2'
    const pre = gpt2 ? 'transformer.' : 'model.'
    const I = gpt2 ? 4 * TINY.hidden : TINY.intermediate
    expect(v.index).toMatchObject({
      family,
      num_layers: 2,
      hidden_size: TINY.hidden,
      intermediate_size: I,
      vocab_size: 512,
    })
    // Gate rows: gate_proj rows, or GPT-2 c_fc ([in, out]) columns.
    for (let l = 0; l < 2; l++) {
      const src = ck.tensors.get(
        gpt2 ? `${pre}h.${l}.mlp.c_fc.weight` : `${pre}layers.${l}.mlp.gate_proj.weight`,
      )!
      expect([...v.gateVectors(l)]).toEqual(gpt2 ? t(src.data, TINY.hidden, I) : [...src.data])
    }
    // down_meta against an independent float64 computation.
    const raw = readSafetensorsF64(join(ck.dir, 'model.safetensors'))
    const embed = raw.get(gpt2 ? `${pre}wte.weight` : `${pre}embed_tokens.weight`)!
    for (const f of [0, 5, I - 1]) {
      const down = raw.get(
        gpt2 ? `${pre}h.1.mlp.c_proj.weight` : `${pre}layers.1.mlp.down_proj.weight`,
      )!
      expect(v.topTokens(1, f).ids).toEqual(downMetaF64(embed, down, f, 5, gpt2).ids)
    }
    // Every weight entry round-trips; Conv1D matrices come back as [out, in].
    for (const e of v.weightEntries) {
      const src = ck.tensors.get(`${pre}${e.key}`) ?? ck.tensors.get(e.key)!
      const { data } = await v.weight(e.key)
      const conv1d =
        gpt2 && e.key.endsWith('.weight') && src.shape.length === 2 && !e.key.startsWith('wpe')
      expect([...data]).toEqual(conv1d ? t(src.data, src.shape[0]!, src.shape[1]!) : [...src.data])
      expect(e.offset % 4).toBe(0)
    }
    expect(v.hasWeight(gpt2 ? 'h.0.attn.bias' : 'nothing')).toBe(false)
  })

  it('normalises config.json', async () => {
    const ck = await tiny(family)
    const c = parseModelConfig(ck.config)
    expect(c.family).toBe(family)
    expect(c.numLayers).toBe(2)
    expect(c.hiddenSize).toBe(TINY.hidden)
    const gemma = family.startsWith('gemma')
    expect(c.embedScale).toBeCloseTo(gemma ? Math.sqrt(TINY.hidden) : 1, 12)
    expect(c.normWeightOffset).toBe(gemma ? 1 : 0)
    expect(c.ffnType).toBe(family === 'gpt2' ? 'plain' : 'gated')
  })
})

describe('config specifics', () => {
  it('reads per-family fields', async () => {
    const cfg = async (f: TinyFamily) => parseModelConfig((await tiny(f)).config)
    expect(await cfg('llama')).toMatchObject({
      ropeTheta: 500000,
      tieWordEmbeddings: false,
      ropeScaling: { rope_type: 'llama3', factor: 8 },
    })
    expect(await cfg('mistral')).toMatchObject({ slidingWindow: 64, ropeTheta: 1e6 })
    expect(await cfg('qwen2')).toMatchObject({
      attentionBias: true,
      attentionOutputBias: false,
      tieWordEmbeddings: true,
    })
    expect(await cfg('qwen3')).toMatchObject({ headDim: 16, qkNorm: true })
    expect(await cfg('gemma2')).toMatchObject({
      headDim: 16,
      finalLogitSoftcapping: 30,
      attnLogitSoftcapping: 50,
      queryPreAttnScalar: 16,
      sandwichNorms: true,
    })
    expect(await cfg('gemma3')).toMatchObject({
      ropeTheta: 1e6,
      ropeLocalTheta: 10000,
      slidingWindowPattern: 6,
      qkNorm: true,
      ropeScaling: { rope_type: 'linear', factor: 8 },
    })
    expect(await cfg('gpt2')).toMatchObject({
      positionEmbedding: 'learned',
      normType: 'layernorm',
      intermediateSize: 128,
      ropeTheta: null,
      activation: 'gelu_new',
    })
  })

  it('survives the index.json round trip (modelConfigFromIndex)', async () => {
    for (const family of TINY_FAMILIES) {
      const ck = await tiny(family)
      const { vindex } = await extractToMemory(ck.dir, 'browse')
      const { architectures: _a, torchDtype: _t, ...want } = parseModelConfig(ck.config)
      const { architectures: _b, torchDtype: _u, ...got } = vindex.config
      expect(got).toEqual(want)
    }
  })

  it('reads Gemma 3 multimodal configs through text_config', () => {
    const c = parseModelConfig({
      architectures: ['Gemma3ForConditionalGeneration'],
      model_type: 'gemma3',
      text_config: {
        model_type: 'gemma3_text',
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 32,
        vocab_size: 100,
      },
    })
    expect(c).toMatchObject({
      family: 'gemma3',
      modelType: 'gemma3_text',
      hiddenSize: 64,
      embedScale: 8,
    })
  })
})

describe('checkpoint storage variants', () => {
  it('reads sharded checkpoints like single-file ones', async () => {
    const single = await tiny('llama', { seed: 7 })
    const sharded = await tiny('llama', { seed: 7, sharded: true })
    expect((await readdir(sharded.dir)).filter((f) => f.endsWith('.safetensors'))).toHaveLength(2)
    const a = await extractToMemory(single.dir)
    const b = await extractToMemory(sharded.dir)
    for (const name of [
      'gate_vectors.bin',
      'embeddings.bin',
      'down_meta.bin',
      'attn_weights.bin',
      'lm_head.bin',
    ]) {
      expect(b.sink.files.get(name)).toEqual(a.sink.files.get(name))
    }
  })

  it.each(['F16', 'BF16'] as const)('decodes %s checkpoints exactly', async (dtype) => {
    const ck = await tiny('qwen2', { dtype })
    const { vindex: v } = await extractToMemory(ck.dir)
    // Every F16/BF16 value is exactly representable in f32.
    expect([...v.gateVectors(0)]).toEqual([
      ...ck.tensors.get('model.layers.0.mlp.gate_proj.weight')!.data,
    ])
    expect([...v.embeddingRow(3)]).toEqual([
      ...ck.tensors.get('model.embed_tokens.weight')!.data.slice(3 * 32, 4 * 32),
    ])
    const q = await v.weight('layers.1.self_attn.q_proj.bias')
    expect([...q.data]).toEqual([...ck.tensors.get('model.layers.1.self_attn.q_proj.bias')!.data])
  })

  it('stores f16 within f16 rounding', async () => {
    const ck = await tiny('mistral', { seed: 3 })
    const { vindex: v } = await extractToMemory(ck.dir, 'browse', 'f16')
    const src = ck.tensors.get('model.layers.1.mlp.gate_proj.weight')!.data
    expect([...v.gateVectors(1)]).toEqual([...src].map(roundToF16))
  })
})

describe('round trip', () => {
  it('reading from a directory and from bytes agree, and arrays equal what was written', async () => {
    const ck = await tiny('gemma3', { seed: 11 })
    const dir = await mkdtemp(join(tmpdir(), 'vindex-rt-'))
    made.push(dir)
    await extractVindexDir(ck.dir, dir, {
      level: 'all',
      dtype: 'f16',
      topK: 4,
      workers: 2,
      overwrite: true,
    })
    const fromDir = await openVindexDir(dir, { verifyChecksums: true })
    const files = new Map<string, Uint8Array>()
    for (const name of await readdir(dir))
      files.set(name, new Uint8Array(await readFile(join(dir, name))))
    const fromBytes = await openVindex(vindexFromBytes(files), { verifyChecksums: true })
    expect(fromBytes.index).toEqual(fromDir.index)
    expect(fromDir.index.extract_level).toBe('all')
    for (let l = 0; l < 2; l++) {
      expect([...fromBytes.gateVectors(l)]).toEqual([...fromDir.gateVectors(l)])
      for (let f = 0; f < TINY.intermediate; f++)
        expect(fromBytes.topTokens(l, f)).toEqual(fromDir.topTokens(l, f))
    }
    expect([...fromBytes.embeddings()]).toEqual([...fromDir.embeddings()])
    const src = ck.tensors.get('model.embed_tokens.weight')!.data
    expect([...fromDir.embeddings()]).toEqual([...src].map(roundToF16))
    for (const e of fromDir.weightEntries)
      expect((await fromBytes.weight(e.key)).data).toEqual((await fromDir.weight(e.key)).data)
    // The worker pool (used here) and the inline engine agree.
    const inline = await extractToMemory(ck.dir, 'browse', 'f16')
    expect(files.get('down_meta.bin')).toEqual(
      rewriteTopK(inline.sink.files.get('down_meta.bin')!, 5, 4),
    )
  })
})

/** Keeps the first `k` of `from` entries per record, to compare top-4 with top-5 output. */
function rewriteTopK(bytes: Uint8Array, from: number, k: number): Uint8Array {
  const src = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const layers = src.getUint32(8, true)
  const out: number[] = [src.getUint32(0, true), src.getUint32(4, true), layers, k]
  let p = 16
  for (let l = 0; l < layers; l++) {
    const n = src.getUint32(p, true)
    out.push(n)
    p += 4
    for (let f = 0; f < n; f++) {
      for (let w = 0; w < 2 + 2 * k; w++) out.push(src.getUint32(p + 4 * w, true))
      p += 8 + 8 * from
    }
  }
  return new Uint8Array(new Uint32Array(out).buffer)
}
