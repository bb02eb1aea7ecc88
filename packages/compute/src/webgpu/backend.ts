/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend of the compute seam (docs/webgpu.md): the batched gate
 * pass with top-k on a GPU. Environment-agnostic: it takes a `GPU` object
 * (`navigator.gpu` in a browser's Web Worker, the npm package `webgpu` in
 * Node: ./node.ts) and uses no global of either.
 *
 * Weights: each layer's gate rows live in GPU storage buffers in their
 * storage dtype (f16 read with `shader-f16` when the device has it, else
 * decoded in the shader with unpack2x16float; f32 as is), split into parts
 * of whole rows that fit maxStorageBufferBindingSize and maxBufferSize. The
 * f16 subnormal fix-ups C moved out of its rows travel as a per-part sparse
 * list the matmul adds back, so scores are exact f32 dot products (summation
 * order aside).
 *
 * A pass: per batch of queries one command buffer (per layer and part a
 * tiled matmul into a scores buffer, then a per-chunk top-k into a
 * candidates buffer), one readback of the candidates; the host merges them
 * in C's order (topk.ts), so the sets equal the built-in kernel's.
 */
import { compareHits, mergeTopK, type Hit } from '../topk.js'
import { GpuForward } from './forward.js'
import {
  ComputeError,
  type ComputeBackend,
  type ForwardStepRequest,
  type ForwardStepResult,
  type ForwardWeights,
  type GateLayer,
  type GateTopKRequest,
  type GateTopKResult,
} from '../types.js'
import {
  MATMUL_PARAMS,
  NONE,
  TILE_Q,
  TILE_R,
  TOPK_CHUNK,
  TOPK_PARAMS,
  TOPK_TARGET_GROUPS,
  TOPK_SHADER,
  UNIFORM_STRIDE,
  matmulShader,
  type GateKind,
} from './kernels.js'

// GPUBufferUsage / GPUMapMode values (no globals: they differ by environment)
const MAP_READ = 0x1
const COPY_SRC = 0x4
const COPY_DST = 0x8
const UNIFORM = 0x40
const STORAGE = 0x80

export interface WebGpuBackendOptions {
  /**
   * Caps on the device's limits, below what the adapter offers: tests use
   * them to force splitting or to see the error of a matrix that cannot be
   * split; a host may use them to leave room for other work.
   */
  maxStorageBufferBindingSize?: number
  maxBufferSize?: number
  /** Read f16 weights with `shader-f16` when the device has it (default true). */
  shaderF16?: boolean
  powerPreference?: GPUPowerPreference
}

/** What the backend says about its adapter (gpu-check, infer.compute = 'auto'). */
export interface AdapterSummary {
  name: string
  vendor: string
  architecture: string
  /** A CPU emulation (lavapipe/llvmpipe, SwiftShader, WARP) or isFallbackAdapter. */
  software: boolean
  /** f16 weights read natively (`shader-f16`), else decoded in the shader. */
  shaderF16: boolean
  maxStorageBufferBindingSize: number
  maxBufferSize: number
}

/** A device that is lost (destroyed, driver reset, adapter gone): the worker restarts. */
export class GpuDeviceLostError extends ComputeError {
  /** The worker reports this as fatal and exits; the next call starts a new one. */
  readonly restart = true
  constructor(message: string) {
    super(message, '58000')
  }
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render|\bwarp\b/i

/** Whether an adapter is a CPU emulation: `auto` never picks it. */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }
  const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter
  if (info.isFallbackAdapter === true || legacy === true) return true
  return SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`)
}

/** What an adapter offers, read without creating a device. */
export function summarizeAdapter(adapter: GPUAdapter, shaderF16: boolean): AdapterSummary {
  const info = adapter.info
  return {
    name: info.description || info.device || info.vendor || 'unknown adapter',
    vendor: info.vendor,
    architecture: info.architecture,
    software: isSoftwareAdapter(adapter),
    shaderF16,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  }
}

interface Part {
  rows: number
  rowBase: number
  g: GPUBuffer
  /** Fix-ups of this part (rowStart, cols, values), or undefined. */
  fix?: { buffer: GPUBuffer; colsAt: number; valsAt: number }
}

interface GpuLayer {
  rows: number
  kind: GateKind
  parts: Part[]
}

interface GpuModel {
  hidden: number
  layers: GpuLayer[]
  bytes: number
}

/** One matmul + top-k of one part of one layer in a pass. */
interface Step {
  layer: number
  part: Part
  kind: GateKind
  /** Rows per top-k chunk, and chunks of the part. */
  chunk: number
  chunks: number
  kk: number
  /** Candidate pairs before this step's, per query batch. */
  outAt: number
}

/** Scratch buffers reused from call to call, grown as needed. */
interface Scratch {
  buffer: GPUBuffer
  size: number
}

export class WebGpuBackend implements ComputeBackend {
  readonly name = 'webgpu'
  private readonly models = new Map<string, GpuModel>()
  private readonly pipelines = new Map<string, GPUComputePipeline>()
  private readonly scratch = new Map<string, Scratch>()
  private dummy: GPUBuffer | undefined
  private lostReason: string | undefined
  /** The binding limit weights, scores and candidates are split by, and its name. */
  readonly maxBinding: number
  readonly bindingLimit: string
  /** The forward step's weights, KV caches and kernels (forward.ts). */
  private readonly forward: GpuForward

  private constructor(
    /**
     * Kept: Dawn for Node frees its instance with the GPU object, and a
     * device whose instance is gone crashes the process on its next event.
     */
    readonly gpu: GPU,
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    options: WebGpuBackendOptions,
  ) {
    const binding = Math.min(
      device.limits.maxStorageBufferBindingSize,
      options.maxStorageBufferBindingSize ?? Infinity,
    )
    const buffer = Math.min(device.limits.maxBufferSize, options.maxBufferSize ?? Infinity)
    this.maxBinding = Math.min(binding, buffer)
    this.bindingLimit =
      buffer < binding
        ? `maxBufferSize (${buffer} bytes)`
        : `maxStorageBufferBindingSize (${binding} bytes)`
    adapter.maxStorageBufferBindingSize = binding
    adapter.maxBufferSize = buffer
    this.forward = new GpuForward(device, this.maxBinding, this.bindingLimit)
    void device.lost.then((info) => {
      this.lostReason = `${info.reason}${info.message ? `: ${info.message}` : ''}`
    })
  }

  /**
   * Requests an adapter and a device from `gpu`. No adapter is a 58000 error
   * (`hint` says what to install: ./node.ts passes one for Node).
   */
  static async create(
    gpu: GPU,
    options: WebGpuBackendOptions = {},
    hint = 'this environment offers WebGPU but no adapter (no usable GPU or driver)',
  ): Promise<WebGpuBackend> {
    let adapter: GPUAdapter | null
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference })
    } catch (e) {
      throw new ComputeError(
        `no WebGPU adapter: ${(e as Error).message.split('\n')[0]}; ${hint}`,
        '58000',
      )
    }
    if (!adapter) throw new ComputeError(`no WebGPU adapter: ${hint}`, '58000')
    const f16 = options.shaderF16 !== false && adapter.features.has('shader-f16')
    let device: GPUDevice
    try {
      device = await adapter.requestDevice({
        requiredFeatures: f16 ? ['shader-f16'] : [],
        requiredLimits: {
          maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
          maxBufferSize: adapter.limits.maxBufferSize,
        },
      })
    } catch (e) {
      throw new ComputeError(`the WebGPU adapter gave no device: ${(e as Error).message}`, '58000')
    }
    const summary = summarizeAdapter(adapter, f16)
    summary.maxStorageBufferBindingSize = device.limits.maxStorageBufferBindingSize
    summary.maxBufferSize = device.limits.maxBufferSize
    return new WebGpuBackend(gpu, device, summary, options)
  }

  hasModel(model: string): boolean {
    return this.models.has(model)
  }

  async loadForward(model: string, weights: ForwardWeights): Promise<void> {
    this.checkDevice('loadForward')
    await this.forward.load(model, weights)
    this.checkDevice('loadForward')
  }

  hasForward(model: string): boolean {
    return this.forward.has(model)
  }

  async forwardStep(request: ForwardStepRequest): Promise<ForwardStepResult> {
    this.checkDevice('forwardStep')
    try {
      return await this.forward.step(request)
    } catch (e) {
      if (this.lostReason !== undefined) throw this.lostError('forwardStep', e)
      throw e
    }
  }

  endRun(run: number): void {
    this.forward.endRun(run)
  }

  openRuns(): number {
    return this.forward.openRuns()
  }

  /** Bytes of weights the GPU holds for a model. */
  modelBytes(model: string): number {
    return (this.models.get(model)?.bytes ?? 0) + this.forward.bytes(model)
  }

  async loadGate(model: string, layers: GateLayer[]): Promise<void> {
    this.checkDevice('loadGate')
    this.dropGate(model)
    if (layers.length === 0) throw new ComputeError(`model "${model}" has no layers`, '22023')
    const hidden = layers[0]!.hidden
    if (hidden * 4 > this.maxBinding)
      throw new ComputeError(
        `model "${model}": one query vector (${hidden * 4} bytes) does not fit the WebGPU ` +
          `device's ${this.bindingLimit}`,
        '54000',
      )
    const out: GpuLayer[] = []
    const m: GpuModel = { hidden, layers: out, bytes: 0 }
    this.device.pushErrorScope('out-of-memory')
    this.device.pushErrorScope('validation')
    let thrown: unknown
    try {
      layers.forEach((layer, l) => out.push(this.uploadLayer(model, l, layer, hidden, m)))
    } catch (e) {
      thrown = e
    }
    const validation = await this.device.popErrorScope()
    const oom = await this.device.popErrorScope()
    if (thrown || oom || validation) {
      destroyModel(m)
      if (thrown) throw thrown
      throw new ComputeError(
        oom
          ? `the GPU has no memory left for model "${model}" (${m.bytes} bytes of gate rows): ${oom.message}`
          : `WebGPU refused model "${model}": ${validation!.message}`,
        oom ? '53200' : '58000',
      )
    }
    this.checkDevice('loadGate')
    this.models.set(model, m)
  }

  private uploadLayer(
    model: string,
    l: number,
    layer: GateLayer,
    hidden: number,
    m: GpuModel,
  ): GpuLayer {
    if (layer.hidden !== hidden)
      throw new ComputeError(`layer ${l} has hidden ${layer.hidden}, layer 0 ${hidden}`, '22023')
    if (layer.data.length !== layer.rows * hidden)
      throw new ComputeError(
        `gate layer ${l} has ${layer.data.length} values, expected ${layer.rows} x ${hidden}`,
        '22023',
      )
    const f16 = layer.dtype === 'f16'
    const kind: GateKind = !f16 ? 'f32' : this.adapter.shaderF16 ? 'f16' : 'f16-packed'
    const rowBytes = hidden * (f16 ? 2 : 4)
    // whole rows per part; a part's scores (rows x 4 bytes per query) must fit too
    let perPart = Math.min(Math.floor(this.maxBinding / rowBytes), Math.floor(this.maxBinding / 4))
    while (perPart > 0 && pad4(perPart * rowBytes) > this.maxBinding) perPart--
    if (perPart < 1)
      throw new ComputeError(
        `model "${model}" layer ${l}: one gate row (${rowBytes} bytes) does not fit the WebGPU ` +
          `device's ${this.bindingLimit}, so the matrix cannot be split to fit`,
        '54000',
      )
    const bytes = new Uint8Array(layer.data.buffer, layer.data.byteOffset, layer.data.byteLength)
    const parts: Part[] = []
    for (let r0 = 0; r0 < layer.rows; r0 += perPart) {
      const rows = Math.min(perPart, layer.rows - r0)
      const g = this.device.createBuffer({
        label: `${model} gate ${l}.${parts.length}`,
        size: pad4(rows * rowBytes),
        usage: STORAGE | COPY_DST,
        mappedAtCreation: true,
      })
      new Uint8Array(g.getMappedRange()).set(bytes.subarray(r0 * rowBytes, (r0 + rows) * rowBytes))
      g.unmap()
      m.bytes += g.size
      const part: Part = { rows, rowBase: r0, g }
      parts.push(part)
      if (f16 && layer.fixups && layer.fixups.values.length > 0)
        part.fix = this.uploadFixups(layer, r0, rows, m)
    }
    return { rows: layer.rows, kind, parts }
  }

  /** A part's fix-ups as rowStart[rows + 1], cols, value bits (u32 each). */
  private uploadFixups(layer: GateLayer, r0: number, rows: number, m: GpuModel): Part['fix'] {
    const fx = layer.fixups!
    const mine: number[] = []
    for (let j = 0; j < fx.rows.length; j++)
      if (fx.rows[j]! >= r0 && fx.rows[j]! < r0 + rows) mine.push(j)
    if (mine.length === 0) return undefined
    mine.sort((a, b) => fx.rows[a]! - fx.rows[b]! || fx.cols[a]! - fx.cols[b]!)
    const n = mine.length
    const words = new Uint32Array(rows + 1 + 2 * n)
    const vals = new Float32Array(words.buffer)
    for (const j of mine) words[fx.rows[j]! - r0 + 1]!++
    for (let r = 0; r < rows; r++) words[r + 1] = words[r + 1]! + words[r]!
    mine.forEach((j, e) => {
      words[rows + 1 + e] = fx.cols[j]!
      vals[rows + 1 + n + e] = fx.values[j]!
    })
    if (words.byteLength > this.maxBinding)
      throw new ComputeError(
        `a gate layer has ${n} f16 subnormal fix-ups, more than the WebGPU device's ` +
          `${this.bindingLimit} holds`,
        '54000',
      )
    const buffer = this.device.createBuffer({
      size: words.byteLength,
      usage: STORAGE | COPY_DST,
      mappedAtCreation: true,
    })
    new Uint32Array(buffer.getMappedRange()).set(words)
    buffer.unmap()
    m.bytes += buffer.size
    return { buffer, colsAt: rows + 1, valsAt: rows + 1 + n }
  }

  dropModel(model: string): void {
    this.forward.drop(model)
    this.dropGate(model)
  }

  /** Frees a model's gate rows (a new loadGate replaces them; its forward weights stay). */
  private dropGate(model: string): void {
    const m = this.models.get(model)
    if (!m) return
    this.models.delete(model)
    destroyModel(m)
  }

  async gateTopK(r: GateTopKRequest): Promise<GateTopKResult> {
    this.checkDevice('gateTopK')
    const m = this.models.get(r.model)
    if (!m)
      throw new ComputeError(`model "${r.model}" is not loaded in the webgpu backend`, '55000')
    if (r.queries.length !== r.nq * m.hidden)
      throw new ComputeError(
        `gateTopK: ${r.queries.length} query values for ${r.nq} x ${m.hidden}`,
        '22023',
      )
    const candidates: Hit[][] = Array.from({ length: r.nq }, () => [])
    const want = r.perLayerK > 0 ? Math.min(r.perLayerK, r.k) : r.k
    // steps in groups whose candidates (per query) fit a binding: one pass each
    const groups: { steps: Step[]; perQuery: number }[] = []
    const capacity = Math.floor(this.maxBinding / 8)
    let group: { steps: Step[]; perQuery: number } | undefined
    let maxRows = 0
    m.layers.forEach((layer, l) => {
      if ((r.layers && r.layers[l] === 0) || want <= 0) return
      for (const part of layer.parts) {
        // few queries: several chunks each (parallel workgroups); many: one per part
        const perQueryChunks = Math.max(
          1,
          Math.min(Math.ceil(TOPK_TARGET_GROUPS / r.nq), Math.ceil(part.rows / TOPK_CHUNK)),
        )
        const chunk = Math.ceil(part.rows / perQueryChunks)
        const chunks = Math.ceil(part.rows / chunk)
        const kk = Math.min(want, chunk)
        if (chunks * kk > capacity)
          throw new ComputeError(
            `the top-${want} candidates of one query in one layer part (${chunks * kk * 8} ` +
              `bytes) do not fit the WebGPU device's ${this.bindingLimit}`,
            '54000',
          )
        if (!group || group.perQuery + chunks * kk > capacity) {
          group = { steps: [], perQuery: 0 }
          groups.push(group)
        }
        group.steps.push({
          layer: l,
          part,
          kind: layer.kind,
          chunk,
          chunks,
          kk,
          outAt: group.perQuery,
        })
        group.perQuery += chunks * kk
        maxRows = Math.max(maxRows, part.rows)
      }
    })
    if (r.nq === 0 || groups.length === 0) return mergeTopK(candidates, r.k, r.rank, r.positiveOnly)
    const perQuery = Math.max(...groups.map((g) => g.perQuery))
    // queries per batch: the queries, their scores and their candidates must fit a binding
    const batch = Math.min(
      r.nq,
      65535,
      Math.floor(this.maxBinding / (m.hidden * 4)),
      Math.floor(this.maxBinding / (maxRows * 4)),
      Math.floor(this.maxBinding / (perQuery * 8)),
    )
    for (let q0 = 0; q0 < r.nq; q0 += batch) {
      const nb = Math.min(batch, r.nq - q0)
      const raw: Hit[][] = Array.from({ length: nb }, () => [])
      for (const g of groups) {
        const pairs = await this.pass(m, r, g.steps, q0, nb, g.perQuery, maxRows)
        collect(pairs, g.steps, nb, raw)
      }
      // per layer the best `want` (C's per-layer limit), then over all layers
      for (let i = 0; i < nb; i++) {
        const hits = raw[i]!.sort((a, b) => a.layer - b.layer || compareHits(a, b, r.rank))
        let from = 0
        while (from < hits.length) {
          let to = from
          while (to < hits.length && hits[to]!.layer === hits[from]!.layer) to++
          candidates[q0 + i]!.push(...hits.slice(from, Math.min(to, from + want)))
          from = to
        }
      }
    }
    return mergeTopK(candidates, r.k, r.rank, r.positiveOnly)
  }

  /** One command buffer for a batch of queries; the candidate pairs read back. */
  private async pass(
    m: GpuModel,
    r: GateTopKRequest,
    steps: Step[],
    q0: number,
    nb: number,
    perQuery: number,
    maxRows: number,
  ): Promise<Uint32Array> {
    const dev = this.device
    const qBytes = nb * m.hidden * 4
    const candBytes = nb * perQuery * 8
    const q = this.buffer('q', qBytes, STORAGE | COPY_DST)
    const s = this.buffer('s', nb * maxRows * 4, STORAGE)
    const cand = this.buffer('cand', candBytes, STORAGE | COPY_SRC)
    const read = this.buffer('read', candBytes, MAP_READ | COPY_DST)
    const uni = this.buffer('uniform', steps.length * 2 * UNIFORM_STRIDE, UNIFORM | COPY_DST)
    const params = new Uint32Array((steps.length * 2 * UNIFORM_STRIDE) / 4)
    dev.pushErrorScope('validation')
    const qs = r.queries.subarray(q0 * m.hidden, (q0 + nb) * m.hidden)
    dev.queue.writeBuffer(
      q,
      0,
      qs.buffer instanceof ArrayBuffer ? (qs as Float32Array<ArrayBuffer>) : new Float32Array(qs),
    )
    const enc = dev.createCommandEncoder()
    const cp = enc.beginComputePass()
    const topk = this.pipeline('topk', TOPK_SHADER)
    steps.forEach((st, i) => {
      const mm = (i * 2 * UNIFORM_STRIDE) / 4
      const fix = st.part.fix
      params.set([nb, st.part.rows, m.hidden, fix ? 1 : 0, fix?.colsAt ?? 0, fix?.valsAt ?? 0], mm)
      const tk = mm + UNIFORM_STRIDE / 4
      const rank = r.rank === 'signed' || r.positiveOnly ? 1 : 0
      params.set(
        [
          nb,
          st.part.rows,
          st.kk,
          st.chunks,
          rank,
          r.positiveOnly ? 1 : 0,
          nb * st.outAt,
          st.part.rowBase,
          st.chunk,
        ],
        tk,
      )
      const matmul = this.pipeline(st.kind, matmulShader(st.kind))
      cp.setPipeline(matmul)
      cp.setBindGroup(
        0,
        dev.createBindGroup({
          layout: matmul.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: uni, offset: mm * 4, size: MATMUL_PARAMS * 4 } },
            { binding: 1, resource: { buffer: q, size: qBytes } },
            { binding: 2, resource: { buffer: st.part.g } },
            { binding: 3, resource: { buffer: fix?.buffer ?? this.dummyBuffer() } },
            { binding: 4, resource: { buffer: s, size: nb * st.part.rows * 4 } },
          ],
        }),
      )
      cp.dispatchWorkgroups(Math.ceil(st.part.rows / TILE_R), Math.ceil(nb / TILE_Q))
      cp.setPipeline(topk)
      cp.setBindGroup(
        0,
        dev.createBindGroup({
          layout: topk.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: uni, offset: tk * 4, size: TOPK_PARAMS * 4 } },
            { binding: 1, resource: { buffer: s, size: nb * st.part.rows * 4 } },
            { binding: 2, resource: { buffer: cand, size: candBytes } },
          ],
        }),
      )
      cp.dispatchWorkgroups(st.chunks, nb)
    })
    cp.end()
    dev.queue.writeBuffer(uni, 0, params)
    enc.copyBufferToBuffer(cand, 0, read, 0, candBytes)
    dev.queue.submit([enc.finish()])
    const invalid = dev.popErrorScope()
    try {
      await read.mapAsync(1 /* GPUMapMode.READ */, 0, candBytes)
    } catch (e) {
      throw this.lostError('gateTopK', e)
    }
    const err = await invalid
    const pairs = new Uint32Array(read.getMappedRange(0, candBytes).slice(0))
    read.unmap()
    if (err) throw new ComputeError(`WebGPU refused the gate pass: ${err.message}`, '58000')
    this.checkDevice('gateTopK')
    return pairs
  }

  private pipeline(key: string, code: string): GPUComputePipeline {
    let p = this.pipelines.get(key)
    if (!p) {
      p = this.device.createComputePipeline({
        label: `pg_infer ${key}`,
        layout: 'auto',
        compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' },
      })
      this.pipelines.set(key, p)
    }
    return p
  }

  private buffer(key: string, size: number, usage: number): GPUBuffer {
    const need = Math.max(16, pad4(size))
    const have = this.scratch.get(key)
    if (have && have.size >= need) return have.buffer
    have?.buffer.destroy()
    // grow by half again, within the binding limit
    const grown = Math.min(Math.max(need, Math.floor((have?.size ?? 0) * 1.5)), this.maxBinding)
    const buffer = this.device.createBuffer({
      label: `pg_infer ${key}`,
      size: pad4(Math.max(need, grown)),
      usage,
    })
    this.scratch.set(key, { buffer, size: buffer.size })
    return buffer
  }

  private dummyBuffer(): GPUBuffer {
    this.dummy ??= this.device.createBuffer({ size: 16, usage: STORAGE })
    return this.dummy
  }

  private checkDevice(op: string): void {
    if (this.lostReason !== undefined)
      throw new GpuDeviceLostError(
        `the WebGPU device was lost (${this.lostReason}) during ${op}; the next call ` +
          `starts a new device and reloads the model`,
      )
  }

  private lostError(op: string, e: unknown): ComputeError {
    return new GpuDeviceLostError(
      `the WebGPU device was lost (${this.lostReason ?? (e as Error).message}) during ${op}; ` +
        `the next call starts a new device and reloads the model`,
    )
  }

  /** Test hook: destroys the device, as a driver reset or an unplugged GPU would. */
  loseDevice(): void {
    this.device.destroy()
  }

  async dispose(): Promise<void> {
    this.forward.dispose()
    for (const model of [...this.models.keys()]) this.dropModel(model)
    for (const s of this.scratch.values()) s.buffer.destroy()
    this.scratch.clear()
    this.dummy?.destroy()
    this.device.destroy()
  }
}

/** The candidate pairs of a pass, per query (any order). */
function collect(pairs: Uint32Array, steps: Step[], nb: number, raw: Hit[][]): void {
  const scores = new Float32Array(pairs.buffer, pairs.byteOffset, pairs.length)
  for (const st of steps)
    for (let i = 0; i < nb; i++) {
      const at = nb * st.outAt + i * st.chunks * st.kk
      for (let e = at; e < at + st.chunks * st.kk; e++) {
        const row = pairs[2 * e]!
        if (row !== NONE) raw[i]!.push({ layer: st.layer, feature: row, score: scores[2 * e + 1]! })
      }
    }
}

function destroyModel(m: GpuModel): void {
  for (const layer of m.layers)
    for (const part of layer.parts) {
      part.g.destroy()
      part.fix?.buffer.destroy()
    }
}

function pad4(n: number): number {
  return Math.ceil(n / 4) * 4
}
