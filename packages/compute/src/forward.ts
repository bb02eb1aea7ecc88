/**
 * The forward step as one ONNX graph per model, built here with onnx-proto
 * from the weights C hands over (compute.c host_forward_load): every family
 * extension/src/forward.c runs, switched by the same architecture words.
 *
 * One step takes n token ids (a prefill, or 1 for a decode) and the KV cache
 * of the positions before (per layer, [kv_heads, past, head_dim]) and gives
 * the cache with the new positions appended, the residual stream and logits
 * at the last position, and the FFN activations (down_proj's input) and
 * residuals of every layer at the last position. Several runs' steps pack
 * into one (onnx.ts forwardSteps): their tokens one run's after another's,
 * their caches likewise, masks that keep each run to itself, and `rows`
 * naming each run's last token. What depends on positions
 * (RoPE cos/sin, the causal and sliding-window masks, GPT-2's position ids)
 * is computed per step in JavaScript and fed in, so the graph has no
 * position logic of its own: RoPE angles in float32 as forward.c (and
 * transformers) compute them, from the inv_freq tables C computed.
 *
 * Weights travel in their storage dtype; f16 ones are Cast to float32 in the
 * graph, which ONNX Runtime folds into float32 initializers at session
 * creation, so every matmul is float32 like the C pass and the serialized
 * graph stays half as large.
 */
import type { onnx as OnnxTypes } from 'onnx-proto'
import { onnxProto } from './onnx-proto.js'
import {
  ACT_GELU_TANH,
  ACT_SILU,
  forwardTensor,
  halvesWithFixups,
  type ForwardArch,
} from './forward-spec.js'
import { ComputeError, type ForwardTensor } from './types.js'

export {
  FORWARD_SPEC_VERSION,
  FS,
  parseSpec,
  positionFeeds,
  ropeTables,
  type ForwardArch,
} from './forward-spec.js'

/** The graph's input and output names. */
export const pastK = (l: number) => `past_k_${l}`
export const pastV = (l: number) => `past_v_${l}`
export const presentK = (l: number) => `present_k_${l}`
export const presentV = (l: number) => `present_v_${l}`

/**
 * The forward step of one model as a serialized ONNX model. Inputs: ids
 * int64 [n]; rows int64 [r] (the positions among the n whose state is
 * answered); pos_ids int64 [n] (learned positions); cos_g, sin_g, cos_l,
 * sin_l [n, 1, head_dim] (RoPE); mask_g, mask_l [group * n, past + n]
 * (additive: 0 or -inf, rows repeated per query head of a kv head);
 * past_k_l, past_v_l [kv_heads, past, head_dim]. Outputs: last [r, hidden],
 * logits [r, vocab], acts [layers * r, intermediate] and resids [layers * r,
 * hidden] (layer-major), present_k_l, present_v_l [kv_heads, past + n,
 * head_dim].
 */
export function buildForwardGraph(
  a: ForwardArch,
  tensors: Record<string, ForwardTensor>,
): Uint8Array {
  return onnxProto().onnx.ModelProto.encode(buildForwardModel(a, tensors)).finish()
}

/** The same model before serialization (onnx.ts moves large ones' weights to external data). */
export function buildForwardModel(
  a: ForwardArch,
  tensors: Record<string, ForwardTensor>,
): OnnxTypes.ModelProto {
  const { onnx } = onnxProto()
  const FLOAT = onnx.TensorProto.DataType.FLOAT
  const FLOAT16 = onnx.TensorProto.DataType.FLOAT16
  const INT64 = onnx.TensorProto.DataType.INT64
  const nodes: OnnxTypes.INodeProto[] = []
  const inits: OnnxTypes.ITensorProto[] = []
  const inputs: OnnxTypes.IValueInfoProto[] = []
  const outputs: OnnxTypes.IValueInfoProto[] = []
  let counter = 0
  const fresh = (p: string) => `${p}_${counter++}`
  const int = (name: string, i: number): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INT,
    i,
  })
  const ints = (name: string, v: number[]): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INTS,
    ints: v,
  })
  const float = (name: string, f: number): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.FLOAT,
    f,
  })
  const op = (type: string, input: string[], attribute: OnnxTypes.IAttributeProto[] = []) => {
    const out = fresh(type.toLowerCase())
    nodes.push({ opType: type, input, output: [out], attribute })
    return out
  }
  const output = (name: string, from: string, elem: number, dims: (number | string)[]) => {
    nodes.push({ opType: 'Identity', input: [from], output: [name] })
    outputs.push({ name, type: tensorType(elem, dims) })
  }
  const tensorType = (elem: number, dims: (number | string)[]): OnnxTypes.ITypeProto => ({
    tensorType: {
      elemType: elem,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  })
  const input = (name: string, elem: number, dims: (number | string)[]) => {
    inputs.push({ name, type: tensorType(elem, dims) })
    return name
  }
  const i64 = (v: number[]) => {
    const name = fresh('i64')
    const data = BigInt64Array.from(v.map(BigInt))
    inits.push({ name, dims: [v.length], dataType: INT64, rawData: new Uint8Array(data.buffer) })
    return name
  }
  const scalar = (v: number) => {
    const name = fresh('c')
    const data = Float32Array.of(v)
    inits.push({ name, dims: [], dataType: FLOAT, rawData: new Uint8Array(data.buffer) })
    return name
  }
  const f32Init = (data: Float32Array, dims: number[]) => {
    const name = fresh('w')
    inits.push({
      name,
      dims,
      dataType: FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    })
    return name
  }

  const has = (name: string) => tensors[name] !== undefined
  const get = (name: string, rows: number, cols: number) => forwardTensor(tensors, name, rows, cols)
  /** A float32 vector (C widened every vector at load). */
  const vector = (name: string, n: number, map?: (v: number) => number): string => {
    const t = get(name, 1, n)
    const v =
      t.dtype === 'f32' ? (t.data as Float32Array) : Float32Array.from(t.data as Uint16Array)
    return f32Init(map ? Float32Array.from(v, map) : v, [n])
  }
  const matrices = new Map<string, string>()
  /** A matrix [rows, cols] as float32 (f16: a Cast that session creation folds). */
  const matrix = (name: string, rows: number, cols: number): string => {
    const done = matrices.get(name)
    if (done) return done
    const t = get(name, rows, cols)
    let out: string
    if (t.dtype === 'f32') out = f32Init(t.data as Float32Array, [rows, cols])
    else {
      const half = halvesWithFixups(t)
      const w = fresh('h')
      inits.push({
        name: w,
        dims: [rows, cols],
        dataType: FLOAT16,
        rawData: new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
      })
      out = op('Cast', [w], [int('to', FLOAT)])
    }
    matrices.set(name, out)
    return out
  }
  /** y = x W^T (+ b): x [n, cols], W [rows, cols] */
  const linear = (x: string, w: string, rows: number, cols: number, bias?: string): string => {
    const wm = matrix(w, rows, cols)
    const b = bias && has(bias) ? [vector(bias, rows)] : []
    return op('Gemm', [x, wm, ...b], [int('transB', 1)])
  }
  /** norm over the last axis: RMSNorm x / rms(x) * (offset + w), or LayerNorm (+ b) */
  const norm = (x: string, w: string, n: number, bias?: string): string => {
    if (a.layernorm) {
      const b = bias && has(bias) ? vector(bias, n) : f32Init(new Float32Array(n), [n])
      return op(
        'LayerNormalization',
        [x, vector(w, n), b],
        [int('axis', -1), float('epsilon', a.normEps)],
      )
    }
    const ms = op('ReduceMean', [op('Mul', [x, x])], [ints('axes', [-1]), int('keepdims', 1)])
    const r = op('Reciprocal', [op('Sqrt', [op('Add', [ms, scalar(a.normEps)])])])
    const offset = a.normOffset
    return op('Mul', [op('Mul', [x, r]), vector(w, n, (v) => Math.fround(offset + v))])
  }
  const activate = (x: string): string => {
    if (a.activation === ACT_SILU) return op('Mul', [x, op('Sigmoid', [x])])
    if (a.activation === ACT_GELU_TANH) {
      const cube = op('Mul', [op('Mul', [x, x]), x])
      const inner = op('Mul', [
        op('Add', [x, op('Mul', [cube, scalar(0.044715)])]),
        scalar(0.7978845608028654),
      ])
      return op('Mul', [op('Mul', [x, scalar(0.5)]), op('Add', [op('Tanh', [inner]), scalar(1)])])
    }
    const e = op('Erf', [op('Mul', [x, scalar(Math.SQRT1_2)])])
    return op('Mul', [op('Mul', [x, scalar(0.5)]), op('Add', [e, scalar(1)])])
  }
  const softcap = (x: string, cap: number): string =>
    cap > 0 ? op('Mul', [op('Tanh', [op('Div', [x, scalar(cap)])]), scalar(cap)]) : x

  const { hidden: H, intermediate: I, headDim: hd, heads, kvHeads } = a
  const group = heads / kvHeads
  const qdim = heads * hd
  const kvdim = kvHeads * hd
  const rope = !a.learnedPositions

  const ids = input('ids', INT64, ['n'])
  // the positions whose state the step answers: each run's last token
  const rows = input('rows', INT64, ['r'])
  const pick = (t: string) => op('Gather', [t, rows], [int('axis', 0)])
  let x = op('Gather', [matrix('embed', a.vocab, H), ids])
  if (a.embedScale !== 1) x = op('Mul', [x, scalar(a.embedScale)])
  if (a.learnedPositions) {
    const pos = input('pos_ids', INT64, ['n'])
    x = op('Add', [x, op('Gather', [matrix('positions', tensors.positions?.rows ?? 0, H), pos])])
  }
  const cosG = rope ? input('cos_g', FLOAT, ['n', 1, hd]) : ''
  const sinG = rope ? input('sin_g', FLOAT, ['n', 1, hd]) : ''
  const cosL = rope ? input('cos_l', FLOAT, ['n', 1, hd]) : ''
  const sinL = rope ? input('sin_l', FLOAT, ['n', 1, hd]) : ''
  const maskG = input('mask_g', FLOAT, ['gn', 'total'])
  const maskL = input('mask_l', FLOAT, ['gn', 'total'])
  const rotate = (t: string, cos: string, sin: string): string => {
    const x1 = op('Slice', [t, i64([0]), i64([hd / 2]), i64([2])])
    const x2 = op('Slice', [t, i64([hd / 2]), i64([hd]), i64([2])])
    const rot = op('Concat', [op('Neg', [x2]), x1], [int('axis', 2)])
    return op('Add', [op('Mul', [t, cos]), op('Mul', [rot, sin])])
  }
  const headNorm = (t: string, w: string): string => {
    const ms = op('ReduceMean', [op('Mul', [t, t])], [ints('axes', [-1]), int('keepdims', 1)])
    const r = op('Reciprocal', [op('Sqrt', [op('Add', [ms, scalar(a.normEps)])])])
    return op('Mul', [op('Mul', [t, r]), vector(w, hd, (v) => Math.fround(a.normOffset + v))])
  }

  const acts: string[] = []
  const resids: string[] = []
  for (let l = 0; l < a.layers; l++) {
    const p = `l${l}.`
    const sliding = a.sliding[l]! && a.slidingWindow > 0
    // attention
    const h = norm(x, `${p}attn_norm`, H, `${p}attn_norm_bias`)
    let q = op('Reshape', [linear(h, `${p}q`, qdim, H, `${p}q_bias`), i64([-1, heads, hd])])
    let k = op('Reshape', [linear(h, `${p}k`, kvdim, H, `${p}k_bias`), i64([-1, kvHeads, hd])])
    const v = op('Reshape', [linear(h, `${p}v`, kvdim, H, `${p}v_bias`), i64([-1, kvHeads, hd])])
    if (a.qkNorm) {
      q = headNorm(q, `${p}q_norm`)
      k = headNorm(k, `${p}k_norm`)
    }
    if (rope) {
      const local = a.sliding[l]!
      q = rotate(q, local ? cosL : cosG, local ? sinL : sinG)
      k = rotate(k, local ? cosL : cosG, local ? sinL : sinG)
    }
    const kAll = op(
      'Concat',
      [
        input(pastK(l), FLOAT, [kvHeads, 'past', hd]),
        op('Transpose', [k], [ints('perm', [1, 0, 2])]),
      ],
      [int('axis', 1)],
    )
    const vAll = op(
      'Concat',
      [
        input(pastV(l), FLOAT, [kvHeads, 'past', hd]),
        op('Transpose', [v], [ints('perm', [1, 0, 2])]),
      ],
      [int('axis', 1)],
    )
    output(presentK(l), kAll, FLOAT, [kvHeads, 'total', hd])
    output(presentV(l), vAll, FLOAT, [kvHeads, 'total', hd])
    // query head h reads kv head h / group: [kv_heads, group * n, hd]
    const qg = op('Reshape', [
      op(
        'Transpose',
        [op('Reshape', [q, i64([-1, kvHeads, group, hd])])],
        [ints('perm', [1, 2, 0, 3])],
      ),
      i64([kvHeads, -1, hd]),
    ])
    let s = op('Mul', [
      op('MatMul', [qg, op('Transpose', [kAll], [ints('perm', [0, 2, 1])])]),
      scalar(a.attnScale),
    ])
    s = softcap(s, a.attnSoftcap)
    const probs = op('Softmax', [op('Add', [s, sliding ? maskL : maskG])], [int('axis', -1)])
    const att = op('Reshape', [
      op(
        'Transpose',
        [op('Reshape', [op('MatMul', [probs, vAll]), i64([kvHeads, group, -1, hd])])],
        [ints('perm', [2, 0, 1, 3])],
      ),
      i64([-1, qdim]),
    ])
    let o = linear(att, `${p}o`, H, qdim, `${p}o_bias`)
    if (a.sandwich) o = norm(o, `${p}post_attn_norm`, H)
    x = op('Add', [x, o])
    // MLP
    const h2 = norm(x, `${p}ffn_norm`, H, `${p}ffn_norm_bias`)
    let g = activate(linear(h2, `${p}gate`, I, H, `${p}gate_bias`))
    if (!a.plainFfn) g = op('Mul', [g, linear(h2, `${p}up`, I, H, `${p}up_bias`)])
    acts.push(pick(g))
    let d = linear(g, `${p}down`, H, I, `${p}down_bias`)
    if (a.sandwich) d = norm(d, `${p}post_ffn_norm`, H)
    x = op('Add', [x, d])
    resids.push(pick(x))
  }
  const last = pick(x)
  output('last', last, FLOAT, ['r', H])
  const head = a.tied ? 'embed' : 'lm_head'
  let logits = op(
    'Gemm',
    [norm(last, 'final_norm', H, 'final_norm_bias'), matrix(head, a.vocab, H)],
    [int('transB', 1)],
  )
  logits = softcap(logits, a.finalSoftcap)
  output('logits', logits, FLOAT, ['r', a.vocab])
  // layer-major: [layers * r, ...]
  output('acts', op('Concat', acts, [int('axis', 0)]), FLOAT, ['lr', I])
  output('resids', op('Concat', resids, [int('axis', 0)]), FLOAT, ['lr', H])

  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'pglite-infer compute',
    graph: {
      name: 'forward_step',
      node: nodes,
      initializer: inits,
      input: inputs,
      output: outputs,
    },
  })
  return model
}
