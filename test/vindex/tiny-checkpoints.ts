/**
 * Deterministic tiny HuggingFace checkpoints with random weights, in the
 * exact tensor names and shapes of each supported family, for tests (and
 * later forward-pass tests). Written with a seeded PRNG so every run makes
 * the same bytes. The tokenizer is stories260K's (512 tokens).
 */
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export type TinyFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'gpt2'
export type TinyDtype = 'F32' | 'F16' | 'BF16'

export const TINY_FAMILIES: TinyFamily[] = [
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'gemma2',
  'gemma3',
  'gpt2',
]

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models')

/** Shared dimensions: small, but with GQA and head_dim != hidden/heads where the family allows. */
export const TINY = {
  vocab: 512,
  hidden: 32,
  intermediate: 48,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  positions: 16,
}

export interface TinyOptions {
  dtype?: TinyDtype
  /** Split the tensors over two shards with model.safetensors.index.json. */
  sharded?: boolean
  seed?: number
  /** Output directory (default: a fresh directory under the OS temp dir). */
  dir?: string
}

export interface TinyCheckpoint {
  dir: string
  family: TinyFamily
  config: Record<string, unknown>
  /** Every tensor by its full HF name, as the f32 values stored (after dtype rounding). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>
}

/** mulberry32: tiny, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export async function makeTinyCheckpoint(
  family: TinyFamily,
  opts: TinyOptions = {},
): Promise<TinyCheckpoint> {
  const dtype = opts.dtype ?? 'F32'
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), `tiny-${family}-`)))
  await mkdir(dir, { recursive: true })
  const config = tinyConfig(family)
  const rand = prng(opts.seed ?? 1234)
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>()
  for (const [name, shape] of tensorShapes(family, config)) {
    const n = shape.reduce((a, b) => a * b, 1)
    const data = new Float32Array(n)
    for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * 0.5
    tensors.set(name, { shape, data: roundTo(data, dtype) })
  }
  await writeCheckpoint(dir, tensors, dtype, opts.sharded ?? false)
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2))
  await copyFile(join(FIXTURES, 'stories260K', 'tokenizer.json'), join(dir, 'tokenizer.json'))
  await copyFile(
    join(FIXTURES, 'stories260K', 'tokenizer_config.json'),
    join(dir, 'tokenizer_config.json'),
  )
  return { dir, family, config, tensors }
}

function tinyConfig(family: TinyFamily): Record<string, unknown> {
  const { vocab, hidden, intermediate, layers, heads, kvHeads, positions } = TINY
  if (family === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: hidden,
      n_head: heads,
      n_layer: layers,
      n_positions: positions,
      n_ctx: positions,
      n_inner: null,
      vocab_size: vocab,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
      bos_token_id: 1,
      eos_token_id: 2,
    }
  }
  const base = {
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocab,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-6,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  }
  switch (family) {
    case 'llama':
      return {
        ...base,
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        hidden_act: 'silu',
        rope_theta: 500000,
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        },
        tie_word_embeddings: false,
        attention_bias: false,
        mlp_bias: false,
      }
    case 'mistral':
      return {
        ...base,
        architectures: ['MistralForCausalLM'],
        model_type: 'mistral',
        hidden_act: 'silu',
        rope_theta: 1e6,
        sliding_window: 64,
        tie_word_embeddings: false,
      }
    case 'qwen2':
      return {
        ...base,
        architectures: ['Qwen2ForCausalLM'],
        model_type: 'qwen2',
        hidden_act: 'silu',
        rope_theta: 1e6,
        tie_word_embeddings: true,
        use_sliding_window: false,
      }
    case 'qwen3':
      return {
        ...base,
        architectures: ['Qwen3ForCausalLM'],
        model_type: 'qwen3',
        hidden_act: 'silu',
        head_dim: 16,
        rope_theta: 1e6,
        tie_word_embeddings: true,
        attention_bias: false,
      }
    case 'gemma2':
      return {
        ...base,
        architectures: ['Gemma2ForCausalLM'],
        model_type: 'gemma2',
        head_dim: 16,
        hidden_activation: 'gelu_pytorch_tanh',
        query_pre_attn_scalar: 16,
        final_logit_softcapping: 30,
        attn_logit_softcapping: 50,
        sliding_window: 64,
        rope_theta: 10000,
      }
    case 'gemma3':
      return {
        ...base,
        architectures: ['Gemma3ForCausalLM'],
        model_type: 'gemma3_text',
        head_dim: 16,
        hidden_activation: 'gelu_pytorch_tanh',
        query_pre_attn_scalar: 16,
        rope_theta: 1e6,
        rope_local_base_freq: 10000,
        rope_scaling: { rope_type: 'linear', factor: 8 },
        sliding_window: 64,
        sliding_window_pattern: 6,
        final_logit_softcapping: null,
        attn_logit_softcapping: null,
      }
  }
}

/** Full HF tensor names and shapes, in the order HF writes them. */
function tensorShapes(family: TinyFamily, c: Record<string, unknown>): [string, number[]][] {
  const { vocab, hidden: H, intermediate: I, layers, heads, kvHeads, positions } = TINY
  if (family === 'gpt2') return gpt2Shapes(vocab, H, layers, positions)
  const hd = (c.head_dim as number | undefined) ?? H / heads
  const out: [string, number[]][] = [['model.embed_tokens.weight', [vocab, H]]]
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`
    out.push([`${p}.self_attn.q_proj.weight`, [heads * hd, H]])
    out.push([`${p}.self_attn.k_proj.weight`, [kvHeads * hd, H]])
    out.push([`${p}.self_attn.v_proj.weight`, [kvHeads * hd, H]])
    out.push([`${p}.self_attn.o_proj.weight`, [H, heads * hd]])
    if (family === 'qwen2') {
      out.push(
        [`${p}.self_attn.q_proj.bias`, [heads * hd]],
        [`${p}.self_attn.k_proj.bias`, [kvHeads * hd]],
        [`${p}.self_attn.v_proj.bias`, [kvHeads * hd]],
      )
    }
    if (family === 'qwen3' || family === 'gemma3') {
      out.push([`${p}.self_attn.q_norm.weight`, [hd]], [`${p}.self_attn.k_norm.weight`, [hd]])
    }
    out.push(
      [`${p}.mlp.gate_proj.weight`, [I, H]],
      [`${p}.mlp.up_proj.weight`, [I, H]],
      [`${p}.mlp.down_proj.weight`, [H, I]],
    )
    out.push([`${p}.input_layernorm.weight`, [H]], [`${p}.post_attention_layernorm.weight`, [H]])
    if (family === 'gemma2' || family === 'gemma3') {
      out.push(
        [`${p}.pre_feedforward_layernorm.weight`, [H]],
        [`${p}.post_feedforward_layernorm.weight`, [H]],
      )
    }
  }
  out.push(['model.norm.weight', [H]])
  if (c.tie_word_embeddings === false) out.push(['lm_head.weight', [vocab, H]])
  return out
}

function gpt2Shapes(
  vocab: number,
  H: number,
  layers: number,
  positions: number,
): [string, number[]][] {
  const out: [string, number[]][] = [
    ['transformer.wte.weight', [vocab, H]],
    ['transformer.wpe.weight', [positions, H]],
  ]
  for (let l = 0; l < layers; l++) {
    const p = `transformer.h.${l}`
    out.push([`${p}.ln_1.weight`, [H]], [`${p}.ln_1.bias`, [H]])
    // Conv1D weights are [in, out].
    out.push([`${p}.attn.c_attn.weight`, [H, 3 * H]], [`${p}.attn.c_attn.bias`, [3 * H]])
    out.push([`${p}.attn.c_proj.weight`, [H, H]], [`${p}.attn.c_proj.bias`, [H]])
    // The causal-mask buffer old GPT-2 checkpoints carry: not a weight.
    out.push([`${p}.attn.bias`, [1, 1, positions, positions]])
    out.push([`${p}.ln_2.weight`, [H]], [`${p}.ln_2.bias`, [H]])
    out.push([`${p}.mlp.c_fc.weight`, [H, 4 * H]], [`${p}.mlp.c_fc.bias`, [4 * H]])
    out.push([`${p}.mlp.c_proj.weight`, [4 * H, H]], [`${p}.mlp.c_proj.bias`, [H]])
  }
  out.push(['transformer.ln_f.weight', [H]], ['transformer.ln_f.bias', [H]])
  return out
}

// ---- encoding (independent of the package under test) ----

/** Rounds f32 values to what the dtype can store, so `tensors` holds what was written. */
function roundTo(data: Float32Array, dtype: TinyDtype): Float32Array {
  if (dtype === 'F32') return data
  const bits = encode(data, dtype)
  const u16 = new Uint16Array(bits.buffer, bits.byteOffset, data.length)
  const out = new Float32Array(data.length)
  const u32 = new Uint32Array(out.buffer)
  for (let i = 0; i < data.length; i++) {
    if (dtype === 'BF16') u32[i] = u16[i]! << 16
    else out[i] = halfToFloat(u16[i]!)
  }
  return out
}

function encode(data: Float32Array, dtype: TinyDtype): Uint8Array {
  if (dtype === 'F32')
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
  const out = new Uint16Array(data.length)
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < data.length; i++) {
    const x = u32[i]!
    // BF16: round-to-nearest-even on the dropped 16 bits; F16 via Math.fround-free path.
    out[i] = dtype === 'BF16' ? (x + 0x7fff + ((x >>> 16) & 1)) >>> 16 : floatToHalf(data[i]!)
  }
  return new Uint8Array(out.buffer)
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const f = h & 0x3ff
  if (e === 0) return s * f * 2 ** -24
  if (e === 31) return f ? NaN : s * Infinity
  return s * (1 + f / 1024) * 2 ** (e - 15)
}

/** Round-to-nearest half by search over the exponent (values here are |x| < 1). */
function floatToHalf(x: number): number {
  const sign = x < 0 ? 0x8000 : 0
  const a = Math.abs(x)
  if (a < 2 ** -24 / 2) return sign
  let e = Math.floor(Math.log2(a))
  if (e < -14) {
    return sign | Math.round(a / 2 ** -24) // subnormal
  }
  let m = Math.round((a / 2 ** e - 1) * 1024)
  if (m === 1024) {
    m = 0
    e++
  }
  return sign | ((e + 15) << 10) | m
}

async function writeCheckpoint(
  dir: string,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  dtype: TinyDtype,
  sharded: boolean,
): Promise<void> {
  const names = [...tensors.keys()]
  if (!sharded) {
    await writeFile(join(dir, 'model.safetensors'), safetensorsBytes(names, tensors, dtype))
    return
  }
  const half = Math.ceil(names.length / 2)
  const shards = [names.slice(0, half), names.slice(half)]
  const weightMap: Record<string, string> = {}
  for (const [i, part] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`
    for (const n of part) weightMap[n] = file
    await writeFile(join(dir, file), safetensorsBytes(part, tensors, dtype))
  }
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  )
}

/** safetensors: u64 LE header size, JSON header (space padded to 8), data. */
export function safetensorsBytes(
  names: string[],
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  dtype: TinyDtype,
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  const blobs: Uint8Array[] = []
  let offset = 0
  for (const n of names) {
    const t = tensors.get(n)!
    const bytes = encode(t.data, dtype)
    header[n] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] }
    blobs.push(bytes)
    offset += bytes.byteLength
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8)
  const head = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + head.byteLength + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true)
  out.set(head, 8)
  let o = 8 + head.byteLength
  for (const b of blobs) {
    out.set(b, o)
    o += b.byteLength
  }
  return out
}
