/**
 * A synthetic HuggingFace checkpoint (config.json, tokenizer.json,
 * model.safetensors) of a real model's shape with deterministic random
 * weights, for benchmarks that start from a checkpoint: extraction
 * (vindex-extract.bench.ts) and the backend-owned model larger than the heap
 * (owned.bench.ts --extract). Written chunk by chunk: never more than 16 MiB
 * in memory, whatever the shape.
 *
 *   npx tsx test/bench/synthetic-checkpoint.ts --shape 1.5b --out /tmp/qwen-1.5b-shaped [--dtype BF16|F32] [--layers N]
 *
 * The weights are random, so the model knows nothing; what it costs to
 * extract and query depends only on the shape and dtype. Never commit one.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

export interface CheckpointShape {
  /** What the shape is of, for tables. */
  label: string
  layers: number
  hidden: number
  intermediate: number
  vocab: number
  heads: number
  kvHeads: number
}

/** Qwen2.5's shapes (Qwen2 architecture: q/k/v biases, tied embeddings). */
export const SHAPES: Record<string, CheckpointShape> = {
  '0.5b': {
    label: 'Qwen2.5-0.5B',
    layers: 24,
    hidden: 896,
    intermediate: 4864,
    vocab: 151936,
    heads: 14,
    kvHeads: 2,
  },
  '1.5b': {
    label: 'Qwen2.5-1.5B',
    layers: 28,
    hidden: 1536,
    intermediate: 8960,
    vocab: 151936,
    heads: 12,
    kvHeads: 2,
  },
}

export type CheckpointDtype = 'BF16' | 'F32'

/** Tensors of the first `layers` layers plus embeddings and final norm. */
function tensorList(s: CheckpointShape, layers: number): [string, number[]][] {
  const { hidden: H, intermediate: I, vocab: V, heads, kvHeads } = s
  const headDim = H / heads
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]]
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`
    out.push(
      [`${p}.self_attn.q_proj.weight`, [heads * headDim, H]],
      [`${p}.self_attn.q_proj.bias`, [heads * headDim]],
      [`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, H]],
      [`${p}.self_attn.k_proj.bias`, [kvHeads * headDim]],
      [`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, H]],
      [`${p}.self_attn.v_proj.bias`, [kvHeads * headDim]],
      [`${p}.self_attn.o_proj.weight`, [H, heads * headDim]],
      [`${p}.mlp.gate_proj.weight`, [I, H]],
      [`${p}.mlp.up_proj.weight`, [I, H]],
      [`${p}.mlp.down_proj.weight`, [H, I]],
      [`${p}.input_layernorm.weight`, [H]],
      [`${p}.post_attention_layernorm.weight`, [H]],
    )
  }
  out.push(['model.norm.weight', [H]])
  return out
}

/**
 * Writes model.safetensors; returns its size in bytes. Values are xorshift32
 * bits masked to small finite numbers (exponent 118..125, both signs).
 */
function writeSafetensors(
  dir: string,
  s: CheckpointShape,
  layers: number,
  dtype: CheckpointDtype,
  onProgress?: (done: number, total: number) => void,
): number {
  const bpe = dtype === 'F32' ? 4 : 2
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  let offset = 0
  for (const [name, shape] of tensorList(s, layers)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * bpe
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8)
  const fd = openSync(join(dir, 'model.safetensors'), 'w')
  try {
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
    writeSync(fd, len)
    writeSync(fd, json)
    let state = 0x9e3779b9
    const chunk = new Uint32Array(4 * 1024 * 1024)
    const total = offset / 4
    for (let left = total; left > 0;) {
      const n = Math.min(left, chunk.length)
      for (let i = 0; i < n; i++) {
        state ^= state << 13
        state ^= state >>> 17
        state ^= state << 5
        chunk[i] =
          dtype === 'F32' ? (state & 0x807fffff) | 0x3c000000 : (state & 0x807f807f) | 0x3c003c00
      }
      writeSync(fd, new Uint8Array(chunk.buffer, 0, n * 4))
      left -= n
      onProgress?.(total - left, total)
    }
  } finally {
    closeSync(fd)
  }
  return 8 + Buffer.byteLength(json) + offset
}

/** config.json of a Qwen2 model of this shape, and the knowledge fixture's tokenizer. */
function writeConfig(dir: string, s: CheckpointShape, layers: number): void {
  const c = {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    vocab_size: s.vocab,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    torch_dtype: 'bfloat16',
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2))
  const tok = resolve(
    import.meta.dirname,
    '..',
    'fixtures',
    'models',
    'knowledge-qwen2-6l',
    'tokenizer.json',
  )
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(tok))
}

/**
 * Writes a checkpoint of shape `s` into `dir` (created if missing). With
 * `layers` below the shape's, only those layers are written and config.json
 * says so, which keeps a benchmark's checkpoint small.
 */
export function writeSyntheticCheckpoint(
  dir: string,
  s: CheckpointShape,
  opts: {
    layers?: number
    dtype?: CheckpointDtype
    onProgress?: (done: number, total: number) => void
  } = {},
): { bytes: number } {
  const layers = opts.layers ?? s.layers
  mkdirSync(dir, { recursive: true })
  const bytes = writeSafetensors(dir, s, layers, opts.dtype ?? 'BF16', opts.onProgress)
  writeConfig(dir, s, layers)
  return { bytes }
}

if (import.meta.filename === resolve(process.argv[1] ?? '')) {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '1.5b' },
      out: { type: 'string' },
      dtype: { type: 'string', default: 'BF16' },
      layers: { type: 'string' },
    },
  })
  const s = SHAPES[values.shape!]
  if (!s || !values.out) {
    console.error(
      `usage: synthetic-checkpoint.ts --shape ${Object.keys(SHAPES).join('|')} --out DIR`,
    )
    process.exit(2)
  }
  const t = performance.now()
  let last = 0
  const { bytes } = writeSyntheticCheckpoint(resolve(values.out), s, {
    layers: values.layers ? Number(values.layers) : undefined,
    dtype: values.dtype === 'F32' ? 'F32' : 'BF16',
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total)
      if (pct !== last) process.stderr.write(`\rwriting model.safetensors ${(last = pct)}%`)
    },
  })
  process.stderr.write(
    `\n${s.label} shape, ${(bytes / 1e9).toFixed(2)} GB, written in ${((performance.now() - t) / 1000).toFixed(0)} s to ${values.out}\n`,
  )
}
