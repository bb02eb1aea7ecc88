// A plain float64 forward pass for every family pg_infer supports, written
// from the HuggingFace modeling code (not from extension/src/forward.c), to
// check the C forward pass on tiny checkpoints: Llama (llama3 RoPE
// scaling), Mistral (sliding window), Qwen2 (q/k/v bias), Qwen3 (q/k norm),
// Gemma 2 (embedding scale, (1 + w) norms, sandwich norms, GeGLU,
// query_pre_attn_scalar, attention and final soft-capping), Gemma 3 (q/k
// norm, local RoPE base on sliding layers, linear scaling on global ones)
// and GPT-2 (learned positions, LayerNorm, fused Conv1D attention, GELU).
// Every position is recomputed from the checkpoint; slow and simple.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Checkpoint, type TensorF64 } from './safetensors.js'

type Json = Record<string, unknown>
type Vec = Float64Array<ArrayBufferLike>

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined)

/** y = W x (+ b) with W [out x in] (nn.Linear). */
function linear(w: TensorF64, x: Vec, b?: TensorF64): Vec {
  const [out, inp] = w.shape as [number, number]
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = 0
    for (let i = 0; i < inp; i++) s += w.data[o * inp + i]! * x[i]!
    y[o] = s + (b ? b.data[o]! : 0)
  }
  return y
}

/** y = x W + b with W [in x out] (GPT-2's Conv1D). */
function conv1d(w: TensorF64, x: Vec, b: TensorF64): Vec {
  const [inp, out] = w.shape as [number, number]
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = b.data[o]!
    for (let i = 0; i < inp; i++) s += x[i]! * w.data[i * out + o]!
    y[o] = s
  }
  return y
}

function rmsNorm(x: Vec, w: TensorF64, eps: number, offset: number): Vec {
  let ss = 0
  for (const v of x) ss += v * v
  const r = 1 / Math.sqrt(ss / x.length + eps)
  return x.map((v, i) => v * r * (offset + w.data[i]!))
}

function layerNorm(x: Vec, w: TensorF64, b: TensorF64, eps: number): Vec {
  const mean = x.reduce((a, v) => a + v, 0) / x.length
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length
  const r = 1 / Math.sqrt(variance + eps)
  return x.map((v, i) => (v - mean) * r * w.data[i]! + b.data[i]!)
}

const silu = (v: number) => v / (1 + Math.exp(-v))
const geluTanh = (v: number) =>
  0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
const add = (a: Vec, b: Vec): Vec => a.map((v, i) => v + b[i]!)
const softcap = (v: number, cap: number | undefined) => (cap ? cap * Math.tanh(v / cap) : v)

/** HF's _compute_default_rope_parameters, then the linear / llama3 variants. */
function invFreq(dim: number, theta: number, scaling: Json | null): number[] {
  const f = Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim))
  const type = scaling ? (scaling.rope_type ?? scaling.type) : 'default'
  if (!scaling || type === 'default') return f
  const factor = num(scaling.factor)!
  if (type === 'linear') return f.map((v) => v / factor)
  if (type !== 'llama3') throw new Error(`reference: rope_type ${String(type)}`)
  const low = num(scaling.low_freq_factor)!
  const high = num(scaling.high_freq_factor)!
  const old = num(scaling.original_max_position_embeddings)!
  return f.map((v) => {
    const wavelen = (2 * Math.PI) / v
    if (wavelen < old / high) return v
    if (wavelen > old / low) return v / factor
    const smooth = (old / wavelen - low) / (high - low)
    return (1 - smooth) * (v / factor) + smooth * v
  })
}

function rotate(x: Vec, heads: number, d: number, freq: number[], pos: number): void {
  const half = d / 2
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++) {
      const c = Math.cos(pos * freq[i]!)
      const s = Math.sin(pos * freq[i]!)
      const a = x[h * d + i]!
      const b = x[h * d + i + half]!
      x[h * d + i] = a * c - b * s
      x[h * d + i + half] = b * c + a * s
    }
}

/** Per-head RMSNorm (Qwen3 / Gemma 3 q_norm, k_norm). */
function headNorm(x: Vec, heads: number, d: number, w: TensorF64, eps: number, off: number): Vec {
  const out = new Float64Array(x.length)
  for (let h = 0; h < heads; h++)
    out.set(rmsNorm(x.subarray(h * d, (h + 1) * d), w, eps, off), h * d)
  return out
}

export interface FamilyRun {
  logits: Vec
  /** Per layer, the input of down_proj / c_proj at the last position. */
  acts: Vec[]
}

export class FamilyReference {
  readonly cfg: Json
  private readonly ck: Checkpoint
  readonly family: string

  constructor(dir: string) {
    this.cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json
    this.ck = new Checkpoint(dir)
    this.family = String(this.cfg.model_type).replace('_text', '')
  }

  private t(name: string): TensorF64 {
    return this.ck.get(name)
  }
  private opt(name: string): TensorF64 | undefined {
    return this.ck.has(name) ? this.ck.get(name) : undefined
  }

  /**
   * The token feature `f` of layer `l` writes toward when it fires with the
   * given sign: argmax over the vocabulary of the final norm and the output
   * head applied to +-W_down[:, f] (soft-capping keeps the argmax; ties: the
   * lower id).
   */
  writeToken(l: number, f: number, negative: boolean): number {
    const sign = negative ? -1 : 1
    let normed: Vec
    let head: TensorF64
    if (this.family === 'gpt2') {
      const pre = this.ck.has('transformer.wte.weight') ? 'transformer.' : ''
      const w = this.t(`${pre}h.${l}.mlp.c_proj.weight`) // Conv1D: [intermediate x hidden]
      const H = w.shape[1]!
      const col = Float64Array.from({ length: H }, (_, i) => sign * w.data[f * H + i]!)
      const eps = num(this.cfg.layer_norm_epsilon) ?? 1e-5
      normed = layerNorm(col, this.t(`${pre}ln_f.weight`), this.t(`${pre}ln_f.bias`), eps)
      head = this.t(`${pre}wte.weight`)
    } else {
      const w = this.t(`model.layers.${l}.mlp.down_proj.weight`) // [hidden x intermediate]
      const [H, I] = w.shape as [number, number]
      const col = Float64Array.from({ length: H }, (_, i) => sign * w.data[i * I + f]!)
      const off = this.family.startsWith('gemma') ? 1 : 0
      const eps = num(this.cfg.rms_norm_eps) ?? 1e-6
      normed = rmsNorm(col, this.t('model.norm.weight'), eps, off)
      head = this.opt('lm_head.weight') ?? this.t('model.embed_tokens.weight')
    }
    const logits = linear(head, normed)
    let best = 0
    for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v
    return best
  }

  run(ids: number[]): FamilyRun {
    return this.family === 'gpt2' ? this.gpt2(ids) : this.decoder(ids)
  }

  /** Attention of every position over the earlier ones (a window on sliding layers). */
  private attend(
    qs: Vec[],
    ks: Vec[],
    vs: Vec[],
    heads: number,
    kvHeads: number,
    d: number,
    scale: number,
    cap: number | undefined,
    window: number | undefined,
  ): Vec[] {
    return qs.map((q, pos) => {
      const out = new Float64Array(heads * d)
      for (let h = 0; h < heads; h++) {
        const kv = Math.floor(h / (heads / kvHeads))
        const js: number[] = []
        for (let j = 0; j <= pos; j++) if (!window || pos - j < window) js.push(j)
        const s = js.map((j) => {
          let dot = 0
          for (let i = 0; i < d; i++) dot += q[h * d + i]! * ks[j]![kv * d + i]!
          return softcap(dot * scale, cap)
        })
        const m = Math.max(...s)
        const e = s.map((v) => Math.exp(v - m))
        const z = e.reduce((a, b) => a + b, 0)
        js.forEach((j, n) => {
          for (let i = 0; i < d; i++) out[h * d + i]! += (e[n]! / z) * vs[j]![kv * d + i]!
        })
      }
      return out
    })
  }

  private isSliding(l: number): boolean {
    const c = this.cfg
    if (Array.isArray(c.layer_types)) return c.layer_types[l] === 'sliding_attention'
    if (!num(c.sliding_window)) return false
    if (this.family === 'gemma2') return l % 2 === 0
    if (this.family === 'gemma3') return (l + 1) % (num(c.sliding_window_pattern) ?? 6) !== 0
    return this.family === 'mistral'
  }

  private decoder(ids: number[]): FamilyRun {
    const c = this.cfg
    const H = num(c.hidden_size)!
    const heads = num(c.num_attention_heads)!
    const kvHeads = num(c.num_key_value_heads) ?? heads
    const d = num(c.head_dim) ?? H / heads
    const eps = num(c.rms_norm_eps) ?? 1e-6
    const gemma = this.family.startsWith('gemma')
    const off = gemma ? 1 : 0
    const act = gemma ? geluTanh : silu
    const scale = 1 / Math.sqrt(num(c.query_pre_attn_scalar) ?? d)
    const theta = num(c.rope_theta) ?? 10000
    const scaling = (c.rope_scaling as Json | null | undefined) ?? null
    const globalFreq = invFreq(d, theta, scaling)
    const localFreq =
      this.family === 'gemma3' ? invFreq(d, num(c.rope_local_base_freq) ?? 10000, null) : globalFreq
    const embed = this.t('model.embed_tokens.weight')
    // Gemma's normalizer is sqrt(hidden) rounded to the activations' float32
    const norm0 = gemma ? Math.fround(Math.sqrt(H)) : 1
    let xs: Vec[] = ids.map((id) => embed.data.slice(id * H, (id + 1) * H).map((v) => v * norm0))
    const acts: Vec[] = []
    const n = (x: Vec, key: string) => rmsNorm(x, this.t(key), eps, off)
    for (let l = 0; l < num(c.num_hidden_layers)!; l++) {
      const p = `model.layers.${l}.`
      const sliding = this.isSliding(l)
      const freq = sliding ? localFreq : globalFreq
      const qs: Vec[] = []
      const ks: Vec[] = []
      const vs: Vec[] = []
      xs.forEach((x, pos) => {
        const h = n(x, `${p}input_layernorm.weight`)
        let q = linear(
          this.t(`${p}self_attn.q_proj.weight`),
          h,
          this.opt(`${p}self_attn.q_proj.bias`),
        )
        let k = linear(
          this.t(`${p}self_attn.k_proj.weight`),
          h,
          this.opt(`${p}self_attn.k_proj.bias`),
        )
        const v = linear(
          this.t(`${p}self_attn.v_proj.weight`),
          h,
          this.opt(`${p}self_attn.v_proj.bias`),
        )
        if (this.ck.has(`${p}self_attn.q_norm.weight`)) {
          q = headNorm(q, heads, d, this.t(`${p}self_attn.q_norm.weight`), eps, off)
          k = headNorm(k, kvHeads, d, this.t(`${p}self_attn.k_norm.weight`), eps, off)
        }
        rotate(q, heads, d, freq, pos)
        rotate(k, kvHeads, d, freq, pos)
        qs.push(q)
        ks.push(k)
        vs.push(v)
      })
      const window = sliding ? num(c.sliding_window) : undefined
      const cap = num(c.attn_logit_softcapping)
      const att = this.attend(qs, ks, vs, heads, kvHeads, d, scale, cap, window)
      xs = xs.map((x, pos) => {
        let o = linear(
          this.t(`${p}self_attn.o_proj.weight`),
          att[pos]!,
          this.opt(`${p}self_attn.o_proj.bias`),
        )
        if (gemma) o = n(o, `${p}post_attention_layernorm.weight`)
        const x1 = add(x, o)
        const h2 = n(
          x1,
          gemma ? `${p}pre_feedforward_layernorm.weight` : `${p}post_attention_layernorm.weight`,
        )
        const g = linear(this.t(`${p}mlp.gate_proj.weight`), h2)
        const u = linear(this.t(`${p}mlp.up_proj.weight`), h2)
        const a = g.map((gv, i) => act(gv) * u[i]!)
        if (pos === xs.length - 1) acts.push(a)
        let m = linear(this.t(`${p}mlp.down_proj.weight`), a)
        if (gemma) m = n(m, `${p}post_feedforward_layernorm.weight`)
        return add(x1, m)
      })
    }
    const last = n(xs[xs.length - 1]!, 'model.norm.weight')
    const head = this.opt('lm_head.weight') ?? embed
    const cap = num(c.final_logit_softcapping)
    return { logits: linear(head, last).map((v) => softcap(v, cap)), acts }
  }

  private gpt2(ids: number[]): FamilyRun {
    const c = this.cfg
    const H = num(c.n_embd)!
    const heads = num(c.n_head)!
    const d = H / heads
    const eps = num(c.layer_norm_epsilon) ?? 1e-5
    const pre = this.ck.has('transformer.wte.weight') ? 'transformer.' : ''
    const wte = this.t(`${pre}wte.weight`)
    const wpe = this.t(`${pre}wpe.weight`)
    let xs: Vec[] = ids.map((id, pos) =>
      add(wte.data.slice(id * H, (id + 1) * H), wpe.data.slice(pos * H, (pos + 1) * H)),
    )
    const ln = (x: Vec, key: string) =>
      layerNorm(x, this.t(`${key}.weight`), this.t(`${key}.bias`), eps)
    const acts: Vec[] = []
    for (let l = 0; l < num(c.n_layer)!; l++) {
      const p = `${pre}h.${l}.`
      const qkv = xs.map((x) =>
        conv1d(this.t(`${p}attn.c_attn.weight`), ln(x, `${p}ln_1`), this.t(`${p}attn.c_attn.bias`)),
      )
      const att = this.attend(
        qkv.map((v) => v.slice(0, H)),
        qkv.map((v) => v.slice(H, 2 * H)),
        qkv.map((v) => v.slice(2 * H)),
        heads,
        heads,
        d,
        1 / Math.sqrt(d),
        undefined,
        undefined,
      )
      xs = xs.map((x, pos) => {
        const o = conv1d(
          this.t(`${p}attn.c_proj.weight`),
          att[pos]!,
          this.t(`${p}attn.c_proj.bias`),
        )
        const x1 = add(x, o)
        const f = conv1d(
          this.t(`${p}mlp.c_fc.weight`),
          ln(x1, `${p}ln_2`),
          this.t(`${p}mlp.c_fc.bias`),
        )
        const a = f.map(geluTanh)
        if (pos === xs.length - 1) acts.push(a)
        return add(x1, conv1d(this.t(`${p}mlp.c_proj.weight`), a, this.t(`${p}mlp.c_proj.bias`)))
      })
    }
    const last = ln(xs[xs.length - 1]!, `${pre}ln_f`)
    return { logits: linear(wte, last), acts }
  }
}

/** Softmax probabilities, and the k most probable ids (ties: lower id). */
export function topProbabilities(logits: Vec, k: number): { id: number; probability: number }[] {
  const m = Math.max(...logits)
  const z = logits.reduce((a, v) => a + Math.exp(v - m), 0)
  return Array.from(logits, (v, id) => ({ id, probability: Math.exp(v - m) / z, v }))
    .sort((a, b) => b.v - a.v || a.id - b.id)
    .slice(0, k)
    .map(({ id, probability }) => ({ id, probability }))
}
