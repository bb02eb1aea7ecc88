/**
 * Extraction benchmark on a Qwen2.5-0.5B-shaped checkpoint (24 layers,
 * hidden 896, intermediate 4864, vocab 151936, 14 heads, 2 KV heads) with
 * deterministic random weights, generated on the fly into a temp dir and
 * deleted afterwards.
 *
 *   npx tsx test/bench/vindex-extract.bench.ts [--layers N] [--dtype BF16|F32] [--workers N] [--top-k K]
 *
 * Only the first N layers (default 2) are written and extracted: full
 * down_meta at this shape is ~1.6e13 multiply-adds, so the 24-layer time is
 * extrapolated from the per-layer time and labelled as such. Extraction
 * runs in a child process so its peak RSS (process.resourceUsage().maxRSS)
 * is measured alone.
 */
import { spawnSync } from 'node:child_process'
import {
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
  closeSync,
  writeFileSync,
  statSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const SHAPE = { layers: 24, hidden: 896, intermediate: 4864, vocab: 151936, heads: 14, kvHeads: 2 }
const headDim = SHAPE.hidden / SHAPE.heads

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '2' },
    dtype: { type: 'string', default: 'BF16' },
    workers: { type: 'string', default: '2' },
    'top-k': { type: 'string', default: '10' },
  },
})
const layers = Number(values.layers)
const dtype = values.dtype === 'F32' ? 'F32' : 'BF16'
const workers = Number(values.workers)
const topK = Number(values['top-k'])

/** Tensors of the first `layers` layers plus embeddings and final norm. */
function tensorList(): [string, number[]][] {
  const { hidden: H, intermediate: I, vocab: V, heads, kvHeads } = SHAPE
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]]
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`
    out.push(
      [`${p}.self_attn.q_proj.weight`, [heads * headDim, H]],
      [`${p}.self_attn.q_proj.bias`, [heads * headDim]],
    )
    out.push(
      [`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, H]],
      [`${p}.self_attn.k_proj.bias`, [kvHeads * headDim]],
    )
    out.push(
      [`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, H]],
      [`${p}.self_attn.v_proj.bias`, [kvHeads * headDim]],
    )
    out.push([`${p}.self_attn.o_proj.weight`, [H, heads * headDim]])
    out.push(
      [`${p}.mlp.gate_proj.weight`, [I, H]],
      [`${p}.mlp.up_proj.weight`, [I, H]],
      [`${p}.mlp.down_proj.weight`, [H, I]],
    )
    out.push([`${p}.input_layernorm.weight`, [H]], [`${p}.post_attention_layernorm.weight`, [H]])
  }
  out.push(['model.norm.weight', [H]])
  return out
}

/** Writes model.safetensors chunk by chunk: never more than 16 MiB in memory. */
function writeCheckpoint(dir: string): number {
  const bpe = dtype === 'F32' ? 4 : 2
  const list = tensorList()
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  let offset = 0
  for (const [name, shape] of list) {
    const bytes = shape.reduce((a, b) => a * b, 1) * bpe
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8)
  const fd = openSync(join(dir, 'model.safetensors'), 'w')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  writeSync(fd, len)
  writeSync(fd, json)
  let state = 0x9e3779b9
  const chunk = new Uint32Array(4 * 1024 * 1024)
  for (let left = offset / 4; left > 0;) {
    const n = Math.min(left, chunk.length)
    for (let i = 0; i < n; i++) {
      // xorshift32; mask to small finite values (exponent 118..125) for BF16 and F32 alike.
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      chunk[i] =
        dtype === 'F32' ? (state & 0x807fffff) | 0x3c000000 : (state & 0x807f807f) | 0x3c003c00
    }
    writeSync(fd, new Uint8Array(chunk.buffer, 0, n * 4))
    left -= n
  }
  closeSync(fd)
  return 8 + Buffer.byteLength(json) + offset
}

function writeConfig(dir: string): void {
  const c = {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_size: SHAPE.hidden,
    intermediate_size: SHAPE.intermediate,
    num_hidden_layers: SHAPE.layers,
    num_attention_heads: SHAPE.heads,
    num_key_value_heads: SHAPE.kvHeads,
    vocab_size: SHAPE.vocab,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c))
  const tok = resolve(
    import.meta.dirname,
    '..',
    'fixtures',
    'models',
    'knowledge-qwen2-6l',
    'tokenizer.json',
  )
  writeFileSync(join(dir, 'tokenizer.json'), new Uint8Array(require_('node:fs').readFileSync(tok)))
}

function require_(m: string): typeof import('node:fs') {
  return process.getBuiltinModule(m) as typeof import('node:fs')
}

/** Runs the extraction in a child process; it reports its own peak RSS. */
function extractInChild(
  modelDir: string,
  outDir: string,
): { seconds: number; bytesRead: number; maxRssKiB: number; perLayer: number[] } {
  const nodeEntry = resolve(
    import.meta.dirname,
    '..',
    '..',
    'packages',
    'vindex',
    'dist',
    'node.js',
  )
  const script = `
    import { extractVindexDir } from ${JSON.stringify(nodeEntry)}
    const t = []; let last = Date.now()
    const r = await extractVindexDir(${JSON.stringify(modelDir)}, ${JSON.stringify(outDir)}, {
      level: 'browse', topK: ${topK}, workers: ${workers}, maxLayers: ${layers}, overwrite: true,
      onProgress: (p) => { if (p.stage === 'layers') { const n = Date.now(); t.push((n - last) / 1000); last = n } else if (p.stage === 'embeddings' && p.done === p.total) last = Date.now() },
    })
    console.log(JSON.stringify({ seconds: r.seconds, bytesRead: r.bytesRead, maxRssKiB: process.resourceUsage().maxRSS, perLayer: t }))
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  if (r.status !== 0)
    throw new Error(
      `extraction failed (status ${r.status}, signal ${r.signal}): ${r.stderr}${r.error ?? ''}`,
    )
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

const dir = mkdtempSync(join(tmpdir(), 'vindex-bench-'))
try {
  const t0 = Date.now()
  const inputBytes = writeCheckpoint(dir)
  writeConfig(dir)
  const genSeconds = (Date.now() - t0) / 1000
  const out = join(dir, 'out.vindex')
  const r = extractInChild(dir, out)
  const embedBytes = SHAPE.vocab * SHAPE.hidden * 4
  const perLayer = r.perLayer.reduce((a, b) => a + b, 0) / r.perLayer.length
  const fixed = r.seconds - r.perLayer.reduce((a, b) => a + b, 0)
  const rows: [string, string][] = [
    [
      'checkpoint',
      `Qwen2.5-0.5B shape, ${dtype}, first ${layers}/${SHAPE.layers} layers written, ${(inputBytes / 1e6).toFixed(0)} MB (generated in ${genSeconds.toFixed(1)} s)`,
    ],
    ['extract', `level browse, dtype f16, top-k ${topK}, ${workers} down_meta worker(s)`],
    ['seconds (measured)', r.seconds.toFixed(1)],
    ['  embeddings + setup', fixed.toFixed(1)],
    ['  per layer (gate + down_meta)', perLayer.toFixed(1)],
    [
      'input read',
      `${(r.bytesRead / 1e6).toFixed(0)} MB, ${(r.bytesRead / 1e6 / r.seconds).toFixed(1)} MB/s`,
    ],
    ['peak RSS', `${(r.maxRssKiB / 1024).toFixed(0)} MiB`],
    ['largest tensor (embedding f32)', `${(embedBytes / 2 ** 20).toFixed(0)} MiB`],
    ['peak RSS / largest tensor', ((r.maxRssKiB * 1024) / embedBytes).toFixed(2)],
    [
      'EXTRAPOLATED 24-layer time',
      `${((fixed + perLayer * SHAPE.layers) / 60).toFixed(1)} min (= setup + 24 x per-layer)`,
    ],
    [
      'output gate_vectors.bin',
      `${(statSync(join(out, 'gate_vectors.bin')).size / 1e6).toFixed(1)} MB`,
    ],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
