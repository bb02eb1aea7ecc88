/**
 * The forward step's architecture words (compute.h ForwardSpecWord) and what
 * every backend computes per step from positions: RoPE tables and attention
 * masks. No Node or ONNX imports: the WebGPU backend uses it in browsers too.
 */
import { ComputeError, type ForwardTensor } from './types.js'

/** Keep in step with extension/src/compute.h (ForwardSpecWord). */
export const FORWARD_SPEC_VERSION = 1
export const FS = {
  VERSION: 0,
  LAYERS: 1,
  HIDDEN: 2,
  VOCAB: 3,
  HEADS: 4,
  KV_HEADS: 5,
  HEAD_DIM: 6,
  INTERMEDIATE: 7,
  LAYERNORM: 8,
  NORM_OFFSET: 9,
  NORM_EPS: 10,
  LEARNED_POSITIONS: 11,
  ACTIVATION: 12,
  PLAIN_FFN: 13,
  TIED: 14,
  QK_NORM: 15,
  SANDWICH: 16,
  SLIDING_WINDOW: 17,
  ATTN_SCALE: 18,
  ATTN_SOFTCAP: 19,
  FINAL_SOFTCAP: 20,
  EMBED_SCALE: 21,
  FIXED_WORDS: 22,
} as const

/** forward.h Activation */
export const ACT_SILU = 0
export const ACT_GELU_TANH = 1
export const ACT_GELU = 2

export interface ForwardArch {
  layers: number
  hidden: number
  vocab: number
  heads: number
  kvHeads: number
  headDim: number
  intermediate: number
  layernorm: boolean
  normOffset: number
  normEps: number
  learnedPositions: boolean
  activation: number
  plainFfn: boolean
  tied: boolean
  qkNorm: boolean
  sandwich: boolean
  slidingWindow: number
  attnScale: number
  attnSoftcap: number
  finalSoftcap: number
  embedScale: number
  sliding: boolean[]
}

export function parseSpec(spec: Float64Array): ForwardArch {
  const w = (i: number) => spec[i]!
  if (spec.length < FS.FIXED_WORDS || w(FS.VERSION) !== FORWARD_SPEC_VERSION)
    throw new ComputeError(
      `forward spec version ${w(FS.VERSION)}, expected ${FORWARD_SPEC_VERSION}`,
      '22023',
    )
  const layers = w(FS.LAYERS)
  if (spec.length !== FS.FIXED_WORDS + layers)
    throw new ComputeError(`forward spec has ${spec.length} words for ${layers} layers`, '22023')
  const a: ForwardArch = {
    layers,
    hidden: w(FS.HIDDEN),
    vocab: w(FS.VOCAB),
    heads: w(FS.HEADS),
    kvHeads: w(FS.KV_HEADS),
    headDim: w(FS.HEAD_DIM),
    intermediate: w(FS.INTERMEDIATE),
    layernorm: w(FS.LAYERNORM) !== 0,
    normOffset: w(FS.NORM_OFFSET),
    normEps: w(FS.NORM_EPS),
    learnedPositions: w(FS.LEARNED_POSITIONS) !== 0,
    activation: w(FS.ACTIVATION),
    plainFfn: w(FS.PLAIN_FFN) !== 0,
    tied: w(FS.TIED) !== 0,
    qkNorm: w(FS.QK_NORM) !== 0,
    sandwich: w(FS.SANDWICH) !== 0,
    slidingWindow: w(FS.SLIDING_WINDOW),
    attnScale: w(FS.ATTN_SCALE),
    attnSoftcap: w(FS.ATTN_SOFTCAP),
    finalSoftcap: w(FS.FINAL_SOFTCAP),
    embedScale: w(FS.EMBED_SCALE),
    sliding: Array.from(spec.subarray(FS.FIXED_WORDS), (v) => v !== 0),
  }
  const ints = [a.layers, a.hidden, a.vocab, a.heads, a.kvHeads, a.headDim, a.intermediate]
  if (
    ints.some((v) => !Number.isInteger(v) || v <= 0) ||
    a.heads % a.kvHeads !== 0 ||
    a.headDim % 2 !== 0 ||
    ![ACT_SILU, ACT_GELU_TANH, ACT_GELU].includes(a.activation)
  )
    throw new ComputeError('forward spec: an invalid shape or activation', '22023')
  return a
}

/** One run's part of a step: the positions it has done and its new tokens' count. */
export interface StepSegment {
  pos: number
  n: number
}

/**
 * What a step feeds besides the ids and the KV cache, for one run or several
 * packed into one step. The runs' new tokens come one run's after another's
 * (T in all) and their cached positions likewise (P in all, the keys before
 * the new ones): each token attends to its own run's cached positions and
 * to its own run's new tokens up to itself, as if its run stepped alone.
 * RoPE cos/sin per token at its run's position (angles in float32, as
 * forward.c rope()); the additive masks [group * T, P + T] (causal; sliding
 * layers see the last `window` positions of the run); GPT-2's position ids;
 * `rows`: each run's last token, whose state the step answers.
 */
export function positionFeeds(
  a: ForwardArch,
  invFreq: Float32Array | undefined,
  invFreqLocal: Float32Array | undefined,
  segments: readonly StepSegment[],
): {
  cos?: [Float32Array, Float32Array]
  sin?: [Float32Array, Float32Array]
  maskG: Float32Array
  maskL: Float32Array
  posIds?: BigInt64Array
  rows: BigInt64Array
  /** new tokens in all */
  T: number
  /** cached positions in all */
  P: number
} {
  const hd = a.headDim
  const group = a.heads / a.kvHeads
  let T = 0
  let P = 0
  for (const s of segments) {
    T += s.n
    P += s.pos
  }
  const W = P + T
  const mask = (window: number) => {
    const m = new Float32Array(group * T * W).fill(-Infinity)
    let t = 0
    let pastAt = 0
    let newAt = P
    for (const s of segments) {
      for (let j = 0; j < s.n; j++, t++) {
        const p = s.pos + j
        const lo = window > 0 ? Math.max(0, p - window + 1) : 0
        const row = t * W
        for (let k = lo; k < s.pos; k++) m[row + pastAt + k] = 0
        for (let k = Math.max(lo, s.pos); k <= p; k++) m[row + newAt + k - s.pos] = 0
      }
      pastAt += s.pos
      newAt += s.n
    }
    for (let g = 1; g < group; g++) m.copyWithin(g * T * W, 0, T * W)
    return m
  }
  const rows = new BigInt64Array(segments.length)
  let at = 0
  segments.forEach((s, i) => {
    at += s.n
    rows[i] = BigInt(at - 1)
  })
  const out: ReturnType<typeof positionFeeds> = {
    maskG: mask(0),
    maskL: mask(a.slidingWindow),
    rows,
    T,
    P,
  }
  if (!a.learnedPositions) {
    if (!invFreq) throw new ComputeError('forward weights: "inv_freq" is missing', '22023')
    const tables = (f: Float32Array): [Float32Array, Float32Array] => {
      if (segments.length === 1) return [...ropeTables(f, hd, segments[0]!.pos, segments[0]!.n)]
      const cos = new Float32Array(T * hd)
      const sin = new Float32Array(T * hd)
      let t = 0
      for (const s of segments) {
        const [c, si] = ropeTables(f, hd, s.pos, s.n)
        cos.set(c, t * hd)
        sin.set(si, t * hd)
        t += s.n
      }
      return [cos, sin]
    }
    const g = tables(invFreq)
    const l = invFreqLocal && invFreqLocal !== invFreq ? tables(invFreqLocal) : g
    out.cos = [g[0], l[0]]
    out.sin = [g[1], l[1]]
  } else {
    const ids = new BigInt64Array(T)
    let t = 0
    for (const s of segments) for (let j = 0; j < s.n; j++) ids[t++] = BigInt(s.pos + j)
    out.posIds = ids
  }
  return out
}

/**
 * RoPE's cos and sin for positions pos..pos+n-1, [n, head_dim] each, both
 * halves of a row alike: angles in float32, as forward.c rope() and
 * transformers compute them, from the inv_freq table C computed.
 */
export function ropeTables(
  invFreq: Float32Array,
  hd: number,
  pos: number,
  n: number,
): readonly [Float32Array<ArrayBuffer>, Float32Array<ArrayBuffer>] {
  const half = hd / 2
  const cos = new Float32Array(n * hd)
  const sin = new Float32Array(n * hd)
  for (let t = 0; t < n; t++)
    for (let i = 0; i < half; i++) {
      const ang = Math.fround(invFreq[i]! * Math.fround(pos + t))
      cos[t * hd + i] = cos[t * hd + i + half] = Math.cos(ang)
      sin[t * hd + i] = sin[t * hd + i + half] = Math.sin(ang)
    }
  return [cos, sin]
}

/** A forward tensor by role name, checked to be rows x cols (22023 naming it otherwise). */
export function forwardTensor(
  tensors: Record<string, ForwardTensor>,
  name: string,
  rows: number,
  cols: number,
): ForwardTensor {
  const t = tensors[name]
  if (!t) throw new ComputeError(`forward weights: "${name}" is missing`, '22023')
  if (t.rows !== rows || t.cols !== cols || t.data.length !== rows * cols)
    throw new ComputeError(
      `forward weights: "${name}" is ${t.rows} x ${t.cols} (${t.data.length} values), expected ${rows} x ${cols}`,
      '22023',
    )
  return t
}

/**
 * An f16 matrix's halves with its subnormal fix-ups put back (C moved them
 * out of its rows, gate_split_subnormals): a copy when there are any.
 */
export function halvesWithFixups(t: ForwardTensor): Uint16Array {
  const half = t.data as Uint16Array
  const fix = t.fixups
  if (!fix || fix.values.length === 0) return half
  const out = half.slice()
  for (let j = 0; j < fix.values.length; j++) {
    const v = fix.values[j]!
    // an f16 subnormal is exactly representable: sign, then v * 2^24 as the mantissa
    out[fix.rows[j]! * t.cols + fix.cols[j]!] =
      (v < 0 || Object.is(v, -0) ? 0x8000 : 0) | Math.round(Math.abs(v) * 2 ** 24)
  }
  return out
}

/**
 * A forward step's checks, the same on every host backend: the model's
 * forward weights are there (55000), at least one token, every id in the
 * vocabulary (22023). Returns what the backend holds for the model.
 */
export function checkStep<T>(
  backend: string,
  held: T | undefined,
  model: string,
  ids: Int32Array,
  vocab: (t: T) => number,
): T {
  if (!held)
    throw new ComputeError(
      `model "${model}" has no forward weights in the ${backend} backend`,
      '55000',
    )
  if (ids.length <= 0) throw new ComputeError('forwardStep: no tokens', '22023')
  const v = vocab(held)
  for (const id of ids)
    if (id < 0 || id >= v)
      throw new ComputeError(`token id ${id} is outside the vocabulary (${v})`, '22023')
  return held
}

/** A step that continues a run the backend does not hold at that position (a restarted worker). */
export function lostRun(backend: string, run: number, pos: number): ComputeError {
  return new ComputeError(
    `the ${backend} backend has no KV cache for run ${run} at position ${pos} (its worker restarted?)`,
    '58000',
  )
}
