/**
 * The forward step on WebGPU: every family extension/src/forward.c runs,
 * switched by the same architecture words as the ONNX graph (forward.ts),
 * as a sequence of dispatches in one command buffer per step
 * (forward-kernels.ts): gather, norm, q/k/v projections, RoPE, KV append,
 * attention, o projection, MLP, final norm, lm_head. Weights stay on the GPU
 * in their storage dtype (f16 halves, decoded in the shader); a matrix
 * larger than the device's binding limit is split by rows. The KV cache of
 * each run lives in GPU buffers [kv_heads, capacity, head_dim] per layer,
 * grown by doubling. One readback per step: the residual and logits at the
 * last position, and the captured activations and residuals when asked.
 */
import {
  checkStep,
  forwardTensor,
  halvesWithFixups,
  lostRun,
  parseSpec,
  ropeTables,
  type ForwardArch,
} from '../forward-spec.js'
import { halfToFloat } from '../topk.js'
import {
  ComputeError,
  type ForwardStepRequest,
  type ForwardStepResult,
  type ForwardTensor,
  type ForwardWeights,
} from '../types.js'
import {
  ATTENTION,
  ELEMENTWISE,
  FWD_PARAMS,
  GATHER,
  KV_APPEND,
  LINEAR,
  NORM,
  ROPE,
} from './forward-kernels.js'

const MAP_READ = 0x1
const COPY_SRC = 0x4
const COPY_DST = 0x8
const UNIFORM = 0x40
const STORAGE = 0x80
const UNIFORM_STRIDE = 256
const MAX_GROUPS = 65535

interface MatrixPart {
  rows: number
  rowBase: number
  buffer: GPUBuffer
}

interface GpuMatrix {
  rows: number
  cols: number
  f16: boolean
  parts: MatrixPart[]
}

interface GpuForwardModel {
  arch: ForwardArch
  matrices: Map<string, GpuMatrix>
  vectors: Map<string, GPUBuffer>
  invFreq?: Float32Array
  invFreqLocal?: Float32Array
  bytes: number
}

interface GpuRun {
  model: string
  n: number
  cap: number
  k: GPUBuffer[]
  v: GPUBuffer[]
}

type Kernel = 'linear' | 'gather' | 'norm' | 'rope' | 'kv' | 'attention' | 'elementwise'
const SOURCES: Record<Kernel, string> = {
  linear: LINEAR,
  gather: GATHER,
  norm: NORM,
  rope: ROPE,
  kv: KV_APPEND,
  attention: ATTENTION,
  elementwise: ELEMENTWISE,
}

/** One dispatch of a step: its kernel, uniforms (u32, then f32 from word 12), bindings after the uniform block, and groups. */
interface Dispatch {
  kernel: Kernel
  u: number[]
  f: number[]
  buffers: GPUBuffer[]
  groups: [number, number]
}

/** A copy between dispatches (the captures of the last position). */
interface Copy {
  kernel: 'copy'
  src: GPUBuffer
  srcAt: number
  dst: GPUBuffer
  dstAt: number
  bytes: number
}

function pad4(n: number): number {
  return Math.ceil(n / 4) * 4
}

function groups1d(count: number, per: number): [number, number] {
  const g = Math.max(1, Math.ceil(count / per))
  return g <= MAX_GROUPS ? [g, 1] : [MAX_GROUPS, Math.ceil(g / MAX_GROUPS)]
}

export class GpuForward {
  private readonly models = new Map<string, GpuForwardModel>()
  private readonly runs = new Map<number, GpuRun>()
  private readonly pipelines = new Map<Kernel, GPUComputePipeline>()
  private readonly scratch = new Map<string, GPUBuffer>()
  private dummy: GPUBuffer | undefined

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBinding: number,
    private readonly bindingLimit: string,
  ) {}

  has(model: string): boolean {
    return this.models.has(model)
  }

  bytes(model: string): number {
    return this.models.get(model)?.bytes ?? 0
  }

  async load(model: string, weights: ForwardWeights): Promise<void> {
    this.drop(model)
    const arch = parseSpec(weights.spec)
    const m: GpuForwardModel = { arch, matrices: new Map(), vectors: new Map(), bytes: 0 }
    this.device.pushErrorScope('out-of-memory')
    this.device.pushErrorScope('validation')
    let thrown: unknown
    try {
      this.upload(m, weights.tensors)
    } catch (e) {
      thrown = e
    }
    const validation = await this.device.popErrorScope()
    const oom = await this.device.popErrorScope()
    if (thrown || oom || validation) {
      destroy(m)
      if (thrown) throw thrown
      throw new ComputeError(
        oom
          ? `the GPU has no memory left for the forward weights of model "${model}" (${m.bytes} bytes): ${oom.message}`
          : `WebGPU refused the forward weights of model "${model}": ${validation!.message}`,
        oom ? '53200' : '58000',
      )
    }
    this.models.set(model, m)
  }

  private upload(m: GpuForwardModel, tensors: Record<string, ForwardTensor>): void {
    const a = m.arch
    const { hidden: H, intermediate: I, headDim: hd, heads, kvHeads } = a
    const qdim = heads * hd
    const kvdim = kvHeads * hd
    const need = (name: string, rows: number, cols: number) =>
      forwardTensor(tensors, name, rows, cols)
    const matrix = (name: string, rows: number, cols: number) =>
      m.matrices.set(name, this.uploadMatrix(name, need(name, rows, cols), m))
    const vector = (name: string, n: number, offset = 0, optional = false) => {
      const t = tensors[name]
      if (!t && optional) return
      need(name, 1, n)
      const v = t!.dtype === 'f32' ? (t!.data as Float32Array) : halfToFloat(t!.data as Uint16Array)
      const data = offset !== 0 ? Float32Array.from(v, (x) => Math.fround(offset + x)) : v
      m.vectors.set(name, this.storage(`${name}`, data, m))
    }
    const normVectors = (w: string, b?: string) => {
      vector(w, H, a.layernorm ? 0 : a.normOffset)
      if (b) vector(b, H, 0, true)
    }
    for (let l = 0; l < a.layers; l++) {
      const p = `l${l}.`
      matrix(`${p}q`, qdim, H)
      matrix(`${p}k`, kvdim, H)
      matrix(`${p}v`, kvdim, H)
      matrix(`${p}o`, H, qdim)
      matrix(`${p}gate`, I, H)
      if (!a.plainFfn) matrix(`${p}up`, I, H)
      matrix(`${p}down`, H, I)
      for (const [b, n] of [
        ['q_bias', qdim],
        ['k_bias', kvdim],
        ['v_bias', kvdim],
        ['o_bias', H],
        ['gate_bias', I],
        ['up_bias', I],
        ['down_bias', H],
      ] as const)
        vector(`${p}${b}`, n, 0, true)
      if (a.qkNorm) {
        vector(`${p}q_norm`, hd, a.normOffset)
        vector(`${p}k_norm`, hd, a.normOffset)
      }
      normVectors(`${p}attn_norm`, `${p}attn_norm_bias`)
      normVectors(`${p}ffn_norm`, `${p}ffn_norm_bias`)
      if (a.sandwich) {
        normVectors(`${p}post_attn_norm`)
        normVectors(`${p}post_ffn_norm`)
      }
    }
    matrix('embed', a.vocab, H)
    if (!a.tied) matrix('lm_head', a.vocab, H)
    if (a.learnedPositions) {
      const rows = tensors.positions?.rows ?? 0
      matrix('positions', rows, H)
    }
    normVectors('final_norm', 'final_norm_bias')
    const f32 = (name: string) => {
      const t = tensors[name]
      return t
        ? t.dtype === 'f32'
          ? (t.data as Float32Array)
          : halfToFloat(t.data as Uint16Array)
        : undefined
    }
    m.invFreq = f32('inv_freq')
    m.invFreqLocal = f32('inv_freq_local')
    if (!a.learnedPositions && !m.invFreq)
      throw new ComputeError('forward weights: "inv_freq" is missing', '22023')
  }

  /** A matrix in parts of whole rows that fit a binding; f16 fix-ups put back into the halves. */
  private uploadMatrix(name: string, t: ForwardTensor, m: GpuForwardModel): GpuMatrix {
    const f16 = t.dtype === 'f16'
    const data = f16 ? halvesWithFixups(t) : t.data
    const rowBytes = t.cols * (f16 ? 2 : 4)
    let perPart = Math.floor(this.maxBinding / rowBytes)
    // f16 parts start on a whole u32: an odd row count needs an even-width row
    if (f16 && t.cols % 2 === 1 && perPart > 1) perPart -= perPart % 2
    if (perPart < 1)
      throw new ComputeError(
        `forward weights: one row of "${name}" (${rowBytes} bytes) does not fit the WebGPU ` +
          `device's ${this.bindingLimit}, so the matrix cannot be split to fit`,
        '54000',
      )
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    const parts: MatrixPart[] = []
    for (let r0 = 0; r0 < t.rows; r0 += perPart) {
      const rows = Math.min(perPart, t.rows - r0)
      const buffer = this.device.createBuffer({
        label: `${name}.${parts.length}`,
        size: Math.max(16, pad4(rows * rowBytes)),
        usage: STORAGE,
        mappedAtCreation: true,
      })
      new Uint8Array(buffer.getMappedRange()).set(
        bytes.subarray(r0 * rowBytes, (r0 + rows) * rowBytes),
      )
      buffer.unmap()
      m.bytes += buffer.size
      parts.push({ rows, rowBase: r0, buffer })
    }
    return { rows: t.rows, cols: t.cols, f16, parts }
  }

  private storage(label: string, data: Float32Array, m?: GpuForwardModel): GPUBuffer {
    if (data.byteLength > this.maxBinding)
      throw new ComputeError(
        `forward weights: "${label}" (${data.byteLength} bytes) does not fit the WebGPU device's ${this.bindingLimit}`,
        '54000',
      )
    const buffer = this.device.createBuffer({
      label,
      size: Math.max(16, pad4(data.byteLength)),
      usage: STORAGE,
      mappedAtCreation: true,
    })
    new Float32Array(buffer.getMappedRange(), 0, data.length).set(data)
    buffer.unmap()
    if (m) m.bytes += buffer.size
    return buffer
  }

  drop(model: string): void {
    const m = this.models.get(model)
    if (!m) return
    this.models.delete(model)
    for (const [id, run] of this.runs) if (run.model === model) this.endRun(id)
    destroy(m)
  }

  endRun(id: number): void {
    const run = this.runs.get(id)
    if (!run) return
    this.runs.delete(id)
    for (const b of [...run.k, ...run.v]) b.destroy()
  }

  openRuns(): number {
    return this.runs.size
  }

  dispose(): void {
    for (const id of [...this.runs.keys()]) this.endRun(id)
    for (const model of [...this.models.keys()]) this.drop(model)
    for (const b of this.scratch.values()) b.destroy()
    this.scratch.clear()
    this.dummy?.destroy()
  }

  async step(r: ForwardStepRequest): Promise<ForwardStepResult> {
    const m = checkStep('webgpu', this.models.get(r.model), r.model, r.ids, (x) => x.arch.vocab)
    const a = m.arch
    const n = r.ids.length
    let run = this.runs.get(r.run)
    if (r.pos === 0) {
      if (run) this.endRun(r.run)
      run = { model: r.model, n: 0, cap: 0, k: [], v: [] }
      this.runs.set(r.run, run)
    } else if (!run || run.model !== r.model || run.n !== r.pos)
      throw lostRun('webgpu', r.run, r.pos)
    this.ensureCache(run, a, r.pos + n)
    const out = await this.encodeStep(m, run, r, n)
    run.n += n
    return out
  }

  /** Grows a run's caches (doubling) so they hold `total` positions. */
  private ensureCache(run: GpuRun, a: ForwardArch, total: number): void {
    if (total <= run.cap) return
    const cap = Math.max(64, run.cap * 2, total)
    const rowBytes = a.kvHeads * a.headDim * 4
    if (cap * rowBytes > this.maxBinding && total * rowBytes <= this.maxBinding)
      return this.growTo(run, a, Math.floor(this.maxBinding / rowBytes))
    if (total * rowBytes > this.maxBinding)
      throw new ComputeError(
        `a KV cache of ${total} positions (${total * rowBytes} bytes per layer) does not fit ` +
          `the WebGPU device's ${this.bindingLimit}`,
        '54000',
      )
    this.growTo(run, a, cap)
  }

  private growTo(run: GpuRun, a: ForwardArch, cap: number): void {
    const hd = a.headDim
    const make = (old: GPUBuffer | undefined, l: number, kind: string) => {
      const b = this.device.createBuffer({
        label: `kv ${kind} ${l}`,
        size: a.kvHeads * cap * hd * 4,
        usage: STORAGE | COPY_SRC | COPY_DST,
      })
      if (old && run.n > 0) {
        const enc = this.device.createCommandEncoder()
        for (let h = 0; h < a.kvHeads; h++)
          enc.copyBufferToBuffer(old, h * run.cap * hd * 4, b, h * cap * hd * 4, run.n * hd * 4)
        this.device.queue.submit([enc.finish()])
      }
      old?.destroy()
      return b
    }
    for (let l = 0; l < a.layers; l++) {
      run.k[l] = make(run.k[l], l, 'k')
      run.v[l] = make(run.v[l], l, 'v')
    }
    run.cap = cap
  }

  /** A scratch buffer of at least `bytes`, reused from step to step. */
  private buffer(key: string, bytes: number, usage = STORAGE | COPY_SRC | COPY_DST): GPUBuffer {
    const have = this.scratch.get(key)
    if (have && have.size >= bytes) return have
    have?.destroy()
    if (bytes > this.maxBinding && (usage & STORAGE) !== 0)
      throw new ComputeError(
        `a forward step needs a ${key} buffer of ${bytes} bytes, more than the WebGPU ` +
          `device's ${this.bindingLimit}; use a shorter prompt`,
        '54000',
      )
    const b = this.device.createBuffer({
      label: key,
      // room to grow, but a storage buffer is bound whole: never past the limit
      size: Math.max(
        256,
        pad4(
          (usage & STORAGE) !== 0
            ? Math.max(bytes, Math.min(Math.ceil(bytes * 1.25), this.maxBinding))
            : Math.ceil(bytes * 1.25),
        ),
      ),
      usage,
    })
    this.scratch.set(key, b)
    return b
  }

  private pipeline(kernel: Kernel): GPUComputePipeline {
    let p = this.pipelines.get(kernel)
    if (!p) {
      p = this.device.createComputePipeline({
        label: kernel,
        layout: 'auto',
        compute: {
          module: this.device.createShaderModule({ code: SOURCES[kernel] }),
          entryPoint: 'main',
        },
      })
      this.pipelines.set(kernel, p)
    }
    return p
  }

  private dummyBuffer(): GPUBuffer {
    this.dummy ??= this.device.createBuffer({ size: 16, usage: STORAGE })
    return this.dummy
  }

  private async encodeStep(
    m: GpuForwardModel,
    run: GpuRun,
    r: ForwardStepRequest,
    n: number,
  ): Promise<ForwardStepResult> {
    const a = m.arch
    const { hidden: H, intermediate: I, headDim: hd, heads, kvHeads, layers: L } = a
    const qdim = heads * hd
    const kvdim = kvHeads * hd
    const total = r.pos + n
    const F = 4
    const x = this.buffer('x', n * H * F)
    const h = this.buffer('h', n * H * F)
    const q = this.buffer('q', n * qdim * F)
    const q2 = this.buffer('q2', n * qdim * F)
    const k = this.buffer('k', n * kvdim * F)
    const k2 = this.buffer('k2', n * kvdim * F)
    const v = this.buffer('v', n * kvdim * F)
    const att = this.buffer('att', n * qdim * F)
    const o = this.buffer('o', n * H * F)
    const g = this.buffer('g', n * I * F)
    const u = this.buffer('u', n * I * F)
    const sc = this.buffer('scores', n * heads * total * F)
    const fin = this.buffer('final', H * F)
    const logitsOut = this.buffer('logits', a.vocab * F)
    const capture = this.buffer('capture', Math.max(1, L * (I + H)) * F)
    const ids = this.buffer('ids', n * 4)
    this.device.queue.writeBuffer(ids, 0, new Uint32Array(r.ids))
    const rope = !a.learnedPositions
    let cosG: GPUBuffer | undefined
    let sinG: GPUBuffer | undefined
    let cosL: GPUBuffer | undefined
    let sinL: GPUBuffer | undefined
    if (rope) {
      const [cg, sg] = ropeTables(m.invFreq!, hd, r.pos, n)
      cosG = this.uploadScratch('cos_g', cg)
      sinG = this.uploadScratch('sin_g', sg)
      if (m.invFreqLocal && m.invFreqLocal !== m.invFreq) {
        const [cl, sl] = ropeTables(m.invFreqLocal, hd, r.pos, n)
        cosL = this.uploadScratch('cos_l', cl)
        sinL = this.uploadScratch('sin_l', sl)
      } else {
        cosL = cosG
        sinL = sinG
      }
    }
    const dummy = this.dummyBuffer()
    const list: (Dispatch | Copy)[] = []
    const ew = (
      mode: number,
      count: number,
      target: GPUBuffer,
      other: GPUBuffer,
      extra: number[] = [],
      f: number[] = [],
      aOff = 0,
    ) =>
      list.push({
        kernel: 'elementwise',
        u: [count, mode, ...(extra.length ? extra : [0, 0]), aOff],
        f,
        buffers: [other, target],
        groups: groups1d(count, 64),
      })
    const linear = (
      xb: GPUBuffer,
      rows: number,
      name: string,
      yb: GPUBuffer,
      biasName?: string,
      xOff = 0,
      nTok = n,
    ) => {
      const w = m.matrices.get(name)!
      const bias = biasName ? m.vectors.get(biasName) : undefined
      for (const part of w.parts) {
        const gr = groups1d(part.rows, 1)
        list.push({
          kernel: 'linear',
          u: [
            nTok,
            part.rows,
            w.cols,
            part.rowBase,
            rows,
            xOff,
            0,
            bias ? 1 : 0,
            w.f16 ? 1 : 0,
            gr[0],
          ],
          f: [],
          buffers: [xb, part.buffer, bias ?? dummy, yb],
          groups: gr,
        })
      }
    }
    const norm = (
      xb: GPUBuffer,
      yb: GPUBuffer,
      rows: number,
      width: number,
      w: string,
      b?: string,
      inOff = 0,
      layernorm = a.layernorm,
    ) => {
      const bias = b ? m.vectors.get(b) : undefined
      list.push({
        kernel: 'norm',
        u: [rows, width, inOff, 0, layernorm ? 1 : 0, 0, 0, bias ? 1 : 0],
        f: [a.normEps],
        buffers: [xb, m.vectors.get(w)!, bias ?? dummy, yb],
        groups: [rows, 1],
      })
    }
    // embeddings
    const embed = m.matrices.get('embed')!
    for (const part of embed.parts)
      list.push({
        kernel: 'gather',
        u: [n, part.rows, H, part.rowBase, 0, 0, 0, 0, embed.f16 ? 1 : 0],
        f: [a.embedScale],
        buffers: [ids, part.buffer, x],
        groups: [n, 1],
      })
    if (a.learnedPositions) {
      const pos = m.matrices.get('positions')!
      if (total > pos.rows)
        throw new ComputeError(
          `position ${total - 1} is beyond the model's ${pos.rows} learned positions`,
          '54000',
        )
      const posIds = this.buffer('pos_ids', n * 4)
      this.device.queue.writeBuffer(
        posIds,
        0,
        Uint32Array.from({ length: n }, (_, t) => r.pos + t),
      )
      for (const part of pos.parts)
        list.push({
          kernel: 'gather',
          u: [n, part.rows, H, part.rowBase, 1, 0, 0, 0, pos.f16 ? 1 : 0],
          f: [1],
          buffers: [posIds, part.buffer, x],
          groups: [n, 1],
        })
    }
    for (let l = 0; l < L; l++) {
      const p = `l${l}.`
      const local = a.sliding[l]!
      const window = local && a.slidingWindow > 0 ? a.slidingWindow : 0
      norm(x, h, n, H, `${p}attn_norm`, `${p}attn_norm_bias`)
      linear(h, qdim, `${p}q`, q, `${p}q_bias`)
      linear(h, kvdim, `${p}k`, k, `${p}k_bias`)
      linear(h, kvdim, `${p}v`, v, `${p}v_bias`)
      let qb = q
      let kb = k
      if (a.qkNorm) {
        norm(q, q2, n * heads, hd, `${p}q_norm`, undefined, 0, false)
        norm(k, k2, n * kvHeads, hd, `${p}k_norm`, undefined, 0, false)
        qb = q2
        kb = k2
      }
      if (rope) {
        const [cs, sn] = local ? [cosL!, sinL!] : [cosG!, sinG!]
        list.push({
          kernel: 'rope',
          u: [n, heads, hd],
          f: [],
          buffers: [cs, sn, qb],
          groups: groups1d((n * heads * hd) / 2, 64),
        })
        list.push({
          kernel: 'rope',
          u: [n, kvHeads, hd],
          f: [],
          buffers: [cs, sn, kb],
          groups: groups1d((n * kvHeads * hd) / 2, 64),
        })
      }
      for (const [src, cache] of [
        [kb, run.k[l]!],
        [v, run.v[l]!],
      ] as const)
        list.push({
          kernel: 'kv',
          u: [n, kvHeads, hd, r.pos, run.cap, 0],
          f: [],
          buffers: [src, cache],
          groups: groups1d(n * kvdim, 64),
        })
      list.push({
        kernel: 'attention',
        u: [n, heads, kvHeads, hd, r.pos, run.cap, window, total],
        f: [a.attnScale, a.attnSoftcap],
        buffers: [qb, run.k[l]!, run.v[l]!, sc, att],
        groups: [n * heads, 1],
      })
      linear(att, H, `${p}o`, o, `${p}o_bias`)
      if (a.sandwich) {
        norm(o, h, n, H, `${p}post_attn_norm`)
        ew(0, n * H, x, h)
      } else ew(0, n * H, x, o)
      // MLP
      norm(x, h, n, H, `${p}ffn_norm`, `${p}ffn_norm_bias`)
      linear(h, I, `${p}gate`, g, `${p}gate_bias`)
      if (!a.plainFfn) linear(h, I, `${p}up`, u, `${p}up_bias`)
      ew(1, n * I, g, a.plainFfn ? dummy : u, [a.activation, a.plainFfn ? 1 : 0])
      list.push({
        kernel: 'copy',
        src: g,
        srcAt: (n - 1) * I * F,
        dst: capture,
        dstAt: l * I * F,
        bytes: I * F,
      })
      linear(g, H, `${p}down`, o, `${p}down_bias`)
      if (a.sandwich) {
        norm(o, h, n, H, `${p}post_ffn_norm`)
        ew(0, n * H, x, h)
      } else ew(0, n * H, x, o)
      list.push({
        kernel: 'copy',
        src: x,
        srcAt: (n - 1) * H * F,
        dst: capture,
        dstAt: (L * I + l * H) * F,
        bytes: H * F,
      })
    }
    // the last position: final norm, lm_head, soft-capping
    norm(x, fin, 1, H, 'final_norm', 'final_norm_bias', (n - 1) * H)
    linear(fin, a.vocab, a.tied ? 'embed' : 'lm_head', logitsOut, undefined, 0, 1)
    if (a.finalSoftcap > 0) ew(2, a.vocab, logitsOut, dummy, [0, 0], [a.finalSoftcap])
    return this.submit(list, x, (n - 1) * H * F, logitsOut, capture, a, r)
  }

  private uploadScratch(key: string, data: Float32Array<ArrayBuffer>): GPUBuffer {
    const b = this.buffer(key, data.byteLength)
    this.device.queue.writeBuffer(b, 0, data)
    return b
  }

  private async submit(
    list: (Dispatch | Copy)[],
    x: GPUBuffer,
    lastAt: number,
    logits: GPUBuffer,
    capture: GPUBuffer,
    a: ForwardArch,
    r: ForwardStepRequest,
  ): Promise<ForwardStepResult> {
    const F = 4
    const computes = list.filter((d): d is Dispatch => d.kernel !== 'copy')
    const uni = this.buffer(
      'uniform',
      Math.max(1, computes.length) * UNIFORM_STRIDE,
      UNIFORM | COPY_DST,
    )
    const words = new ArrayBuffer(computes.length * UNIFORM_STRIDE)
    computes.forEach((d, i) => {
      const u32 = new Uint32Array(words, i * UNIFORM_STRIDE, FWD_PARAMS)
      const f32 = new Float32Array(words, i * UNIFORM_STRIDE, FWD_PARAMS)
      d.u.forEach((val, j) => (u32[j] = val))
      d.f.forEach((val, j) => (f32[12 + j] = val))
    })
    this.device.queue.writeBuffer(uni, 0, words)
    const { layers: L, intermediate: I, hidden: H } = a
    const readBytes = (H + a.vocab + L * (I + H)) * F
    const read = this.buffer('read', readBytes, MAP_READ | COPY_DST)
    const enc = this.device.createCommandEncoder()
    // one compute pass between copies: each dispatch is its own usage
    // scope, so a dispatch sees what the one before it wrote
    let pass: GPUComputePassEncoder | undefined
    let i = 0
    for (const d of list) {
      if (d.kernel === 'copy') {
        pass?.end()
        pass = undefined
        enc.copyBufferToBuffer(d.src, d.srcAt, d.dst, d.dstAt, d.bytes)
        continue
      }
      const pipe = this.pipeline(d.kernel)
      const bind = this.device.createBindGroup({
        layout: pipe.getBindGroupLayout(0),
        entries: [
          {
            binding: 0,
            resource: { buffer: uni, offset: i * UNIFORM_STRIDE, size: FWD_PARAMS * 4 },
          },
          ...d.buffers.map((buffer, j) => ({ binding: j + 1, resource: { buffer } })),
        ],
      })
      pass ??= enc.beginComputePass()
      pass.setPipeline(pipe)
      pass.setBindGroup(0, bind)
      pass.dispatchWorkgroups(d.groups[0], d.groups[1])
      i++
    }
    pass?.end()
    enc.copyBufferToBuffer(x, lastAt, read, 0, H * F)
    enc.copyBufferToBuffer(logits, 0, read, H * F, a.vocab * F)
    if (L * (I + H) > 0)
      enc.copyBufferToBuffer(capture, 0, read, (H + a.vocab) * F, L * (I + H) * F)
    this.device.queue.submit([enc.finish()])
    await read.mapAsync(1)
    const all = new Float32Array(read.getMappedRange(0, readBytes).slice(0))
    read.unmap()
    return {
      last: all.slice(0, H),
      logits: all.slice(H, H + a.vocab),
      acts: r.wantAct ? all.slice(H + a.vocab, H + a.vocab + L * I) : undefined,
      resids: r.wantResid ? all.slice(H + a.vocab + L * I) : undefined,
    }
  }
}

function destroy(m: GpuForwardModel): void {
  for (const mat of m.matrices.values()) for (const p of mat.parts) p.buffer.destroy()
  for (const v of m.vectors.values()) v.destroy()
}
