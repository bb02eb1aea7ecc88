// A plain float64 forward pass of a Llama/Qwen2-style causal LM (RMSNorm,
// RoPE 'default', grouped-query attention with optional q/k/v biases, SwiGLU
// MLP), for the reference next-token prediction (pg_infer's infer()). Reads
// the HuggingFace checkpoint directly; no caching, no batching: one prompt,
// every position recomputed. Slow for real models, fine for test fixtures.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Checkpoint, type TensorF64 } from './safetensors.js'

export interface NextToken {
  id: number
  logit: number
  probability: number
}

interface LmConfig {
  model_type?: string
  hidden_size: number
  intermediate_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads?: number
  head_dim?: number
  rms_norm_eps?: number
  rope_theta?: number
  rope_parameters?: { rope_theta?: number; rope_type?: string }
  rope_scaling?: { rope_type?: string; type?: string } | null
  hidden_act?: string
  tie_word_embeddings?: boolean
  vocab_size: number
}

/** y[o] = sum_i W[o, i] x[i] (+ b[o]); W is [out x in] row-major. */
function linear(w: TensorF64, x: Float64Array, b?: TensorF64): Float64Array {
  const [out, inp] = w.shape as [number, number]
  if (x.length !== inp) throw new Error(`${w.name}: input ${x.length} != ${inp}`)
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = 0
    const ro = o * inp
    for (let i = 0; i < inp; i++) s += w.data[ro + i]! * x[i]!
    y[o] = b ? s + b.data[o]! : s
  }
  return y
}

function rmsNorm(x: Float64Array, w: TensorF64, eps: number): Float64Array {
  let ss = 0
  for (const v of x) ss += v * v
  const r = 1 / Math.sqrt(ss / x.length + eps)
  return x.map((v, i) => v * r * w.data[i]!)
}

const silu = (v: number): number => v / (1 + Math.exp(-v))

export class ReferenceLm {
  private readonly cfg: LmConfig
  private readonly ck: Checkpoint
  private readonly p: string
  private readonly headDim: number
  private readonly kvHeads: number
  private readonly eps: number
  private readonly theta: number
  private readonly cache = new Map<string, TensorF64>()

  constructor(dir: string) {
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as LmConfig & {
      text_config?: LmConfig
    }
    this.cfg = raw.text_config ?? raw
    const mt = this.cfg.model_type ?? ''
    if (!['qwen2', 'llama', 'mistral', 'qwen3'].includes(mt))
      throw new Error(`forward pass: unsupported model_type ${mt}`)
    const act = this.cfg.hidden_act ?? 'silu'
    if (act !== 'silu') throw new Error(`forward pass: unsupported hidden_act ${act}`)
    const ropeType =
      this.cfg.rope_parameters?.rope_type ?? this.cfg.rope_scaling?.rope_type ?? 'default'
    if (ropeType !== 'default') throw new Error(`forward pass: unsupported rope_type ${ropeType}`)
    this.ck = new Checkpoint(dir)
    this.p = this.ck.has('model.embed_tokens.weight') ? 'model.' : ''
    this.headDim = this.cfg.head_dim ?? this.cfg.hidden_size / this.cfg.num_attention_heads
    this.kvHeads = this.cfg.num_key_value_heads ?? this.cfg.num_attention_heads
    this.eps = this.cfg.rms_norm_eps ?? 1e-6
    this.theta = this.cfg.rope_parameters?.rope_theta ?? this.cfg.rope_theta ?? 10000
  }

  private t(name: string): TensorF64 {
    let v = this.cache.get(name)
    if (!v) {
      v = this.ck.get(name)
      this.cache.set(name, v)
    }
    return v
  }

  private opt(name: string): TensorF64 | undefined {
    return this.ck.has(name) ? this.t(name) : undefined
  }

  /** Rotate one head vector in place ('default' RoPE, rotate_half pairing i <-> i + d/2). */
  private rope(x: Float64Array, off: number, pos: number): void {
    const half = this.headDim / 2
    for (let i = 0; i < half; i++) {
      const ang = pos * Math.pow(this.theta, (-2 * i) / this.headDim)
      const c = Math.cos(ang)
      const s = Math.sin(ang)
      const a = x[off + i]!
      const b = x[off + i + half]!
      x[off + i] = a * c - b * s
      x[off + i + half] = b * c + a * s
    }
  }

  /** Final-position logits for token ids. */
  logits(ids: number[]): Float64Array {
    if (ids.length === 0) throw new Error('no tokens')
    const H = this.cfg.hidden_size
    const nH = this.cfg.num_attention_heads
    const d = this.headDim
    const group = nH / this.kvHeads
    const embed = this.t(`${this.p}embed_tokens.weight`)
    let xs = ids.map((id) => embed.data.slice(id * H, (id + 1) * H))
    for (let l = 0; l < this.cfg.num_hidden_layers; l++) {
      const L = `${this.p}layers.${l}.`
      const qs: Float64Array[] = []
      const ks: Float64Array[] = []
      const vs: Float64Array[] = []
      xs.forEach((x, pos) => {
        const h = rmsNorm(x, this.t(`${L}input_layernorm.weight`), this.eps)
        const q = linear(
          this.t(`${L}self_attn.q_proj.weight`),
          h,
          this.opt(`${L}self_attn.q_proj.bias`),
        )
        const k = linear(
          this.t(`${L}self_attn.k_proj.weight`),
          h,
          this.opt(`${L}self_attn.k_proj.bias`),
        )
        const v = linear(
          this.t(`${L}self_attn.v_proj.weight`),
          h,
          this.opt(`${L}self_attn.v_proj.bias`),
        )
        for (let hh = 0; hh < nH; hh++) this.rope(q, hh * d, pos)
        for (let hh = 0; hh < this.kvHeads; hh++) this.rope(k, hh * d, pos)
        qs.push(q)
        ks.push(k)
        vs.push(v)
      })
      xs = xs.map((x, pos) => {
        const attn = new Float64Array(nH * d)
        for (let hh = 0; hh < nH; hh++) {
          const kv = Math.floor(hh / group)
          const scores: number[] = []
          for (let j = 0; j <= pos; j++) {
            let s = 0
            for (let i = 0; i < d; i++) s += qs[pos]![hh * d + i]! * ks[j]![kv * d + i]!
            scores.push(s / Math.sqrt(d))
          }
          const m = Math.max(...scores)
          const e = scores.map((s) => Math.exp(s - m))
          const z = e.reduce((a, b) => a + b, 0)
          for (let j = 0; j <= pos; j++) {
            for (let i = 0; i < d; i++) attn[hh * d + i]! += (e[j]! / z) * vs[j]![kv * d + i]!
          }
        }
        const o = linear(
          this.t(`${L}self_attn.o_proj.weight`),
          attn,
          this.opt(`${L}self_attn.o_proj.bias`),
        )
        const x1 = x.map((v, i) => v + o[i]!)
        const h2 = rmsNorm(x1, this.t(`${L}post_attention_layernorm.weight`), this.eps)
        const g = linear(this.t(`${L}mlp.gate_proj.weight`), h2)
        const u = linear(this.t(`${L}mlp.up_proj.weight`), h2)
        const m = linear(
          this.t(`${L}mlp.down_proj.weight`),
          g.map((gv, i) => silu(gv) * u[i]!),
        )
        return x1.map((v, i) => v + m[i]!)
      })
    }
    const last = rmsNorm(xs[xs.length - 1]!, this.t(`${this.p}norm.weight`), this.eps)
    const head = this.ck.has('lm_head.weight') ? this.t('lm_head.weight') : embed
    return linear(head, last)
  }

  /** The k most probable next tokens (softmax of the final logits), probability descending, ties by id. */
  nextTokens(ids: number[], k = 10): NextToken[] {
    const lg = this.logits(ids)
    let m = -Infinity
    for (const v of lg) m = Math.max(m, v)
    let z = 0
    for (const v of lg) z += Math.exp(v - m)
    const all: NextToken[] = Array.from(lg, (v, id) => ({
      id,
      logit: v,
      probability: Math.exp(v - m) / z,
    }))
    return all.sort((a, b) => b.logit - a.logit || a.id - b.id).slice(0, k)
  }
}
