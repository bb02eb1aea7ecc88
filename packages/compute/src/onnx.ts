/**
 * The ONNX Runtime backend (onnxruntime-node, CPU execution provider). Each
 * model's gate pass is one graph built here with onnx-proto, one session per
 * model: per layer Gemm(q, G^T) -> scores [nq, rows], then TopK (on Abs for
 * the |score| rank, with the signed scores gathered back), every layer in
 * the same graph, so a batch of queries is one session.run.
 *
 * ONNX TopK keeps the lower index first among equal values, and hits are
 * merged across layers in C's order (topk.ts), so the sets equal the
 * built-in kernel's; scores may differ in the last bits (summation order).
 */
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Ort from 'onnxruntime-node'
import type { onnx as OnnxTypes } from 'onnx-proto'
import { onnxProto } from './onnx-proto.js'
import {
  buildForwardModel,
  parseSpec,
  pastK,
  pastV,
  positionFeeds,
  presentK,
  presentV,
  type ForwardArch,
} from './forward.js'
import { checkStep, lostRun } from './forward-spec.js'
import { halfToFloat, mergeTopK, type Hit } from './topk.js'
import {
  ComputeError,
  type ComputeBackend,
  type ForwardStepRequest,
  type ForwardStepResult,
  type ForwardStepsRequest,
  type ForwardTensor,
  type ForwardWeights,
  type GateLayer,
  type GateTopKRequest,
  type GateTopKResult,
} from './types.js'

export interface OnnxBackendOptions {
  /** Intra-op threads (default: PGLITE_INFER_ONNX_THREADS, else 2). */
  threads?: number
  /**
   * The ONNX Runtime module (default: onnxruntime-node). Browsers pass
   * onnxruntime-web's, whose sessions run on its 'wasm' execution provider.
   */
  ort?: OrtModule
  /**
   * Default: PGLITE_INFER_ONNX_PROVIDERS when set, else ['cuda', 'cpu']
   * where onnxruntime-node has its CUDA library (the CPU if CUDA cannot
   * start), else ['cpu']; ['wasm'] for onnxruntime-web.
   */
  executionProviders?: string[]
  /** Tests: how onnxruntime-node is loaded (its absence simulated). */
  loadNative?: () => Promise<OrtModule>
  /** Tests: whether onnxruntime-node's CUDA library is installed (default: cudaInstalled()). */
  cudaInstalled?: () => boolean
}

/**
 * The execution providers PGLITE_INFER_ONNX_PROVIDERS lists
 * (comma-separated, in preference order, e.g. `dml,cpu`; `cpu` when empty).
 * ONNX Runtime runs each operator on the first of them that supports it. A
 * name that is not a plain word is 22023 naming the variable.
 */
export function onnxProviders(env: string | undefined): string[] {
  if (env === undefined || env.trim() === '') return ['cpu']
  const names = env.split(',').map((p) => p.trim())
  for (const p of names)
    if (!/^[a-z][a-z0-9_]*$/i.test(p))
      throw new ComputeError(
        `PGLITE_INFER_ONNX_PROVIDERS: ${JSON.stringify(p)} is not an execution provider name ` +
          `(comma-separated names such as cuda,cpu)`,
        '22023',
      )
  return names
}

/**
 * Whether onnxruntime-node was installed with its CUDA provider library
 * (its install script downloads it unless ONNXRUNTIME_NODE_INSTALL=skip):
 * then `cuda` is worth asking for first. `exists` and `where` are for tests.
 */
export function cudaInstalled(
  exists: (path: string) => boolean = existsSync,
  where: { platform: string; arch: string; packageDir?: string } = {
    platform: process.platform,
    arch: process.arch,
  },
): boolean {
  if (where.platform !== 'linux' && where.platform !== 'win32') return false
  let dir = where.packageDir
  try {
    // the package's main module is dist/index.js
    dir ??= join(
      dirname(fileURLToPath(import.meta.resolve(['onnxruntime', 'node'].join('-')))),
      '..',
    )
  } catch {
    return false
  }
  const lib =
    where.platform === 'win32'
      ? 'onnxruntime_providers_cuda.dll'
      : 'libonnxruntime_providers_cuda.so'
  return exists(join(dir, 'bin', 'napi-v6', where.platform, where.arch, lib))
}

/**
 * The execution providers sessions ask for, and how a session that cannot
 * start on them is handled. Asked for (the caller's list, else
 * PGLITE_INFER_ONNX_PROVIDERS): kept as they are, and a GPU provider that
 * cannot start is 58000 saying what to do. Chosen (nothing asked: CUDA
 * first where its library is installed): a CUDA that cannot start (no
 * driver, no device) leaves this and later sessions on the CPU, no error.
 */
export class ExecutionProviders {
  private constructor(
    private current: string[],
    private chosen: boolean,
  ) {}

  /** Exactly these (onnxruntime-web's ['wasm'], a caller's list). */
  static of(list: string[]): ExecutionProviders {
    return new ExecutionProviders(list, false)
  }

  /**
   * What sessions ask for: `asked`, else PGLITE_INFER_ONNX_PROVIDERS (22023
   * when malformed), else CUDA first where `cuda()` finds its library (for
   * onnxruntime-node), else the CPU.
   */
  static resolve(
    asked: string[] | undefined,
    cuda: () => boolean = cudaInstalled,
  ): ExecutionProviders {
    const listed = (globalThis as { process?: { env?: Record<string, string | undefined> } })
      .process?.env?.PGLITE_INFER_ONNX_PROVIDERS
    const list = asked ?? (listed?.trim() ? onnxProviders(listed) : undefined)
    if (list) return ExecutionProviders.of(list)
    return cuda() ? new ExecutionProviders(['cuda', 'cpu'], true) : ExecutionProviders.of(['cpu'])
  }

  get list(): readonly string[] {
    return this.current
  }

  /** A session on these providers (see the class comment for one that cannot start). */
  async session(
    ort: OrtModule,
    model: Uint8Array | string,
    options: Omit<Ort.InferenceSession.SessionOptions, 'executionProviders'>,
  ): Promise<Ort.InferenceSession> {
    try {
      return await ort.InferenceSession.create(model as Uint8Array, {
        ...options,
        executionProviders: this.current,
      })
    } catch (e) {
      if (this.current.length === 1 && ['cpu', 'wasm'].includes(this.current[0]!)) throw e
      if (this.chosen) {
        this.current = ['cpu']
        this.chosen = false
        return this.session(ort, model, options)
      }
      throw new ComputeError(
        `ONNX Runtime could not create a session on execution providers ` +
          `${this.current.join(',')} (PGLITE_INFER_ONNX_PROVIDERS): ${(e as Error).message}. ` +
          `Install onnxruntime-node with that provider's libraries, or unset the variable ` +
          `to run on the CPU.`,
        '58000',
      )
    }
  }
}

/** The install command a missing onnxruntime-node is reported with. */
export const ONNX_INSTALL_HINT = 'ONNXRUNTIME_NODE_INSTALL=skip npm i onnxruntime-node'

type OrtModule = typeof Ort

/** Loads onnxruntime-node, or fails with the package name and the install command. */
export async function loadOrt(): Promise<OrtModule> {
  try {
    // a computed name: bundlers for the browser must not follow a Node-only
    // import (they fold a constant one); browsers pass onnxruntime-web instead
    const name = ['onnxruntime', 'node'].join('-')
    const mod = (await import(/* @vite-ignore */ name)) as OrtModule & { default?: OrtModule }
    return mod.InferenceSession ? mod : mod.default!
  } catch (e) {
    throw new ComputeError(
      `infer.compute = 'onnx' needs the npm package onnxruntime-node, which cannot be loaded ` +
        `(${(e as Error).message.split('\n')[0]}); install it with: ${ONNX_INSTALL_HINT}`,
      '58000',
    )
  }
}

/** onnxruntime-web, whose WebAssembly execution provider runs in Node and in browsers. */
async function loadOrtWeb(): Promise<OrtModule> {
  const name = ['onnxruntime', 'web'].join('-')
  const mod = (await import(/* @vite-ignore */ name)) as OrtModule & { default?: OrtModule }
  return mod.InferenceSession ? mod : mod.default!
}

interface ModelSession {
  session: Ort.InferenceSession
  rows: number[]
  hidden: number
}

interface ForwardSession {
  session: Ort.InferenceSession
  arch: ForwardArch
  invFreq?: Float32Array
  invFreqLocal?: Float32Array
}

/** A run's KV cache: per layer [kv_heads, positions, head_dim], as the graph returned it. */
interface Run {
  model: string
  n: number
  k: Ort.Tensor[]
  v: Ort.Tensor[]
}

export class OnnxBackend implements ComputeBackend {
  readonly name = 'onnx'
  private readonly models = new Map<string, ModelSession>()
  private readonly forwards = new Map<string, ForwardSession>()
  private readonly runs = new Map<number, Run>()
  /** Backend-owned models' own lm_head: the logit lens's argmax (lens). */
  private readonly lenses = new Map<string, { session: Ort.InferenceSession; hidden: number }>()
  private readonly threads: number

  private constructor(
    private readonly ort: OrtModule,
    options: OnnxBackendOptions,
    private readonly providers: ExecutionProviders,
  ) {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
    const env = Number(proc?.env?.PGLITE_INFER_ONNX_THREADS)
    this.threads = Math.max(1, Math.min(64, options.threads ?? (env > 0 ? env : 2)))
  }

  /**
   * onnxruntime-node's CPU execution provider; where that package cannot be
   * loaded (not installed, no binary for the platform), onnxruntime-web's
   * WebAssembly one, which runs anywhere (slower); an error naming both when
   * neither loads. `options.ort` chooses the module instead.
   */
  static async create(options: OnnxBackendOptions = {}): Promise<OnnxBackend> {
    if (options.ort)
      return new OnnxBackend(
        options.ort,
        options,
        ExecutionProviders.resolve(options.executionProviders, () => false),
      )
    // a bad PGLITE_INFER_ONNX_PROVIDERS is reported, not taken for a missing package
    const providers = ExecutionProviders.resolve(options.executionProviders, options.cudaInstalled)
    let native: unknown
    try {
      return new OnnxBackend(await (options.loadNative ?? loadOrt)(), options, providers)
    } catch (e) {
      native = e
    }
    const web = await loadOrtWeb().catch(() => undefined)
    if (!web) throw native
    return new OnnxBackend(web, options, ExecutionProviders.of(['wasm']))
  }

  /**
   * Where sessions run: 'cpu', 'cuda,cpu' (onnxruntime-node with its CUDA
   * library; 'cpu' again once CUDA could not start), what
   * PGLITE_INFER_ONNX_PROVIDERS asked for, or 'wasm' (onnxruntime-web).
   */
  get executionProvider(): string {
    return this.providers.list.join(',')
  }

  hasModel(model: string): boolean {
    return this.models.has(model)
  }

  async loadGate(model: string, layers: GateLayer[]): Promise<void> {
    this.dropGate(model)
    if (layers.length === 0) throw new ComputeError(`model "${model}" has no layers`, '22023')
    const hidden = layers[0]!.hidden
    // float32 rows over the threshold go to external data one layer at a time,
    // so the whole model's float32 rows are never in this worker's memory twice
    const rowBytes = layers.reduce((n, l) => n + l.rows * l.hidden * 4, 0)
    const session =
      rowBytes > externalDataThreshold()
        ? await this.withExternalData((place) => buildGateModel(layers, place))
        : await this.createSession(
            onnxProto().onnx.ModelProto.encode(buildGateModel(layers)).finish(),
          )
    this.models.set(model, { session, rows: layers.map((l) => l.rows), hidden })
  }

  dropModel(model: string): void {
    this.dropGate(model)
    this.dropForward(model)
  }

  private dropGate(model: string): void {
    const m = this.models.get(model)
    if (m) {
      this.models.delete(model)
      void m.session.release().catch(() => undefined)
    }
  }

  async loadLens(model: string, lmHead: ForwardTensor): Promise<void> {
    this.dropLens(model)
    const rows = layerRowsF32({
      rows: lmHead.rows,
      hidden: lmHead.cols,
      dtype: lmHead.dtype,
      data: lmHead.data,
    })
    const session =
      rows.byteLength > externalDataThreshold()
        ? await this.withExternalData((place) =>
            buildLensModel(rows, lmHead.rows, lmHead.cols, place),
          )
        : await this.createSession(
            onnxProto()
              .onnx.ModelProto.encode(buildLensModel(rows, lmHead.rows, lmHead.cols))
              .finish(),
          )
    this.lenses.set(model, { session, hidden: lmHead.cols })
  }

  async lens(model: string, x: Float32Array, n: number): Promise<Int32Array> {
    const l = this.lenses.get(model)
    if (!l) throw new ComputeError(`model "${model}" has no lm_head in the onnx backend`, '55000')
    if (x.length !== n * l.hidden)
      throw new ComputeError(`lens: ${x.length} values for ${n} x ${l.hidden}`, '22023')
    const out = await l.session.run({ x: new this.ort.Tensor('float32', x, [n, l.hidden]) })
    return Int32Array.from(out.token!.data as BigInt64Array, (v) => Number(v))
  }

  private dropLens(model: string): void {
    const l = this.lenses.get(model)
    if (l) {
      this.lenses.delete(model)
      void l.session.release().catch(() => undefined)
    }
  }

  private dropForward(model: string): void {
    this.dropLens(model)
    const f = this.forwards.get(model)
    if (f) {
      this.forwards.delete(model)
      for (const [id, run] of this.runs) if (run.model === model) this.runs.delete(id)
      void f.session.release().catch(() => undefined)
    }
  }

  hasForward(model: string): boolean {
    return this.forwards.has(model)
  }

  async loadForward(model: string, weights: ForwardWeights): Promise<void> {
    this.dropForward(model)
    const arch = parseSpec(weights.spec)
    const proto = buildForwardModel(arch, weights.tensors)
    // one protobuf holds at most 2 GB: larger weights go to an external data file
    const session =
      initializerBytes(proto) > externalDataThreshold()
        ? await this.withExternalData((place) => {
            for (const init of proto.graph?.initializer ?? []) place(init, init.rawData)
            return proto
          })
        : await this.createSession(onnxProto().onnx.ModelProto.encode(proto).finish())
    const f32 = (name: string) => {
      const t = weights.tensors[name]
      return t
        ? t.dtype === 'f32'
          ? (t.data as Float32Array)
          : halfToFloat(t.data as Uint16Array)
        : undefined
    }
    this.forwards.set(model, {
      session,
      arch,
      invFreq: f32('inv_freq'),
      invFreqLocal: f32('inv_freq_local'),
    })
  }

  async forwardStep(r: ForwardStepRequest): Promise<ForwardStepResult> {
    const [one] = await this.forwardSteps({
      model: r.model,
      runs: Int32Array.of(r.run),
      pos: Int32Array.of(r.pos),
      counts: Int32Array.of(r.ids.length),
      ids: r.ids,
      wantAct: r.wantAct,
      wantResid: r.wantResid,
    })
    return one!
  }

  /**
   * Every run's step in one session.run: the runs' new tokens packed into
   * one sequence, their KV caches one after another, and masks that let
   * each token see only its own run (positionFeeds). The matmuls then read
   * the weights once for the whole batch instead of once per run.
   */
  async forwardSteps(r: ForwardStepsRequest): Promise<ForwardStepResult[]> {
    const f = checkStep('onnx', this.forwards.get(r.model), r.model, r.ids, (x) => x.arch.vocab)
    const a = f.arch
    const count = r.runs.length
    if (
      count === 0 ||
      r.pos.length !== count ||
      r.counts.length !== count ||
      r.counts.some((n) => n <= 0) ||
      r.counts.reduce((x, y) => x + y, 0) !== r.ids.length ||
      new Set(r.runs).size !== count
    )
      throw new ComputeError(
        'forwardSteps: each run once, with at least one token, and as many ids as counted',
        '22023',
      )
    const runs = Array.from(r.runs, (id, i) => this.runAt(r.model, id, r.pos[i]!, a))
    const segments = Array.from(r.pos, (pos, i) => ({ pos, n: r.counts[i]! }))
    const T = this.ort.Tensor
    const p = positionFeeds(a, f.invFreq, f.invFreqLocal, segments)
    const group = a.heads / a.kvHeads
    const feeds: Record<string, Ort.Tensor> = {
      ids: new T(
        'int64',
        BigInt64Array.from(r.ids, (v) => BigInt(v)),
        [p.T],
      ),
      rows: new T('int64', p.rows, [count]),
      mask_g: new T('float32', p.maskG, [group * p.T, p.P + p.T]),
      mask_l: new T('float32', p.maskL, [group * p.T, p.P + p.T]),
    }
    if (p.cos && p.sin) {
      feeds.cos_g = new T('float32', p.cos[0], [p.T, 1, a.headDim])
      feeds.sin_g = new T('float32', p.sin[0], [p.T, 1, a.headDim])
      feeds.cos_l = new T('float32', p.cos[1], [p.T, 1, a.headDim])
      feeds.sin_l = new T('float32', p.sin[1], [p.T, 1, a.headDim])
    }
    if (p.posIds) feeds.pos_ids = new T('int64', p.posIds, [p.T])
    const fetches = ['last', 'logits']
    if (r.wantAct) fetches.push('acts')
    if (r.wantResid) fetches.push('resids')
    for (let l = 0; l < a.layers; l++) {
      feeds[pastK(l)] = this.packCache(
        runs.map((run) => run.k[l]!),
        p.P,
        a,
      )
      feeds[pastV(l)] = this.packCache(
        runs.map((run) => run.v[l]!),
        p.P,
        a,
      )
      fetches.push(presentK(l), presentV(l))
    }
    const out = await f.session.run(feeds, fetches)
    // where each run's cached and new positions sit in the packed present
    let past = 0
    let fresh = p.P
    const placed = segments.map((s) => {
      const at = { ...s, pastAt: past, newAt: fresh }
      past += s.pos
      fresh += s.n
      return at
    })
    for (let l = 0; l < a.layers; l++) {
      const k = out[presentK(l)]!
      const v = out[presentV(l)]!
      runs.forEach((run, i) => {
        run.k[l] = count === 1 ? k : this.unpackCache(k, placed[i]!, a)
        run.v[l] = count === 1 ? v : this.unpackCache(v, placed[i]!, a)
      })
    }
    runs.forEach((run, i) => (run.n += segments[i]!.n))
    const slice = (name: string, width: number, i: number) =>
      (out[name]!.data as Float32Array).subarray(i * width, (i + 1) * width)
    // acts and resids are layer-major: [layers * count, width]
    const perLayer = (name: string, width: number, i: number) => {
      const all = out[name]!.data as Float32Array
      if (count === 1) return all
      const mine = new Float32Array(a.layers * width)
      for (let l = 0; l < a.layers; l++)
        mine.set(all.subarray((l * count + i) * width, (l * count + i + 1) * width), l * width)
      return mine
    }
    return runs.map((_, i) => ({
      last: slice('last', a.hidden, i),
      logits: slice('logits', a.vocab, i),
      acts: r.wantAct ? perLayer('acts', a.intermediate, i) : undefined,
      resids: r.wantResid ? perLayer('resids', a.hidden, i) : undefined,
    }))
  }

  /** A run at `pos`: a new one at 0, else the one this backend holds there (58000 if not). */
  private runAt(model: string, id: number, pos: number, a: ForwardArch): Run {
    let run = this.runs.get(id)
    if (pos === 0) {
      const empty = () =>
        new this.ort.Tensor('float32', new Float32Array(0), [a.kvHeads, 0, a.headDim])
      run = {
        model,
        n: 0,
        k: Array.from({ length: a.layers }, empty),
        v: Array.from({ length: a.layers }, empty),
      }
      this.runs.set(id, run)
    } else if (!run || run.model !== model || run.n !== pos) throw lostRun('onnx', id, pos)
    return run
  }

  /** The runs' caches [kv_heads, pos_i, head_dim] one after another: [kv_heads, P, head_dim]. */
  private packCache(caches: Ort.Tensor[], P: number, a: ForwardArch): Ort.Tensor {
    if (caches.length === 1) return caches[0]!
    const hd = a.headDim
    const out = new Float32Array(a.kvHeads * P * hd)
    for (let h = 0; h < a.kvHeads; h++) {
      let at = h * P * hd
      for (const c of caches) {
        const len = c.dims[1]! * hd
        out.set((c.data as Float32Array).subarray(h * len, (h + 1) * len), at)
        at += len
      }
    }
    return new this.ort.Tensor('float32', out, [a.kvHeads, P, hd])
  }

  /**
   * A run's cache from a packed step's present [kv_heads, P + T, head_dim]:
   * its `pos` cached positions (at `pastAt`), then its `n` new ones (at `newAt`).
   */
  private unpackCache(
    present: Ort.Tensor,
    at: { pos: number; n: number; pastAt: number; newAt: number },
    a: ForwardArch,
  ): Ort.Tensor {
    const hd = a.headDim
    const all = present.data as Float32Array
    const width = present.dims[1]!
    const { pos, n, pastAt, newAt } = at
    const out = new Float32Array(a.kvHeads * (pos + n) * hd)
    for (let h = 0; h < a.kvHeads; h++) {
      const src = h * width * hd
      const dst = h * (pos + n) * hd
      out.set(all.subarray(src + pastAt * hd, src + (pastAt + pos) * hd), dst)
      out.set(all.subarray(src + newAt * hd, src + (newAt + n) * hd), dst + pos * hd)
    }
    return new this.ort.Tensor('float32', out, [a.kvHeads, pos + n, hd])
  }

  endRun(run: number): void {
    this.runs.delete(run)
  }

  openRuns(): number {
    return this.runs.size
  }

  /**
   * A session whose large initializers are ONNX external data: `build`
   * places each one (`place(init, bytes)`: written at once to a weights file
   * in a temporary directory, page-aligned, and the initializer made to
   * point there), the graph goes next to it, and onnxruntime-node loads both
   * from that path (it takes external data from files beside the model).
   * The directory is removed once the session holds the weights.
   */
  private async withExternalData(
    build: (place: PlaceInitializer) => OnnxTypes.ModelProto,
  ): Promise<Ort.InferenceSession> {
    const { onnx } = onnxProto()
    const dir = mkdtempSync(join(tmpdir(), 'pglite-infer-onnx-'))
    try {
      const fd = openSync(join(dir, EXTERNAL_DATA_FILE), 'w')
      let proto: OnnxTypes.ModelProto
      try {
        let offset = 0
        proto = build((init, raw) => {
          if (!raw || raw.length < EXTERNAL_MIN_BYTES) {
            if (raw) init.rawData = raw
            return
          }
          const pad = (4096 - (offset % 4096)) % 4096
          if (pad) writeSync(fd, new Uint8Array(pad))
          offset += pad
          for (let at = 0; at < raw.length;)
            at += writeSync(fd, raw, at, Math.min(raw.length - at, 1 << 30))
          init.externalData = [
            { key: 'location', value: EXTERNAL_DATA_FILE },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(raw.length) },
          ]
          init.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL
          init.rawData = new Uint8Array(0)
          offset += raw.length
        })
      } finally {
        closeSync(fd)
      }
      const path = join(dir, 'model.onnx')
      writeFileSync(path, onnx.ModelProto.encode(proto).finish())
      return await this.createSession(path)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  /** A session on this backend's execution providers (ExecutionProviders.session). */
  private createSession(model: Uint8Array | string): Promise<Ort.InferenceSession> {
    return this.providers.session(this.ort, model, {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    })
  }

  async gateTopK(r: GateTopKRequest): Promise<GateTopKResult> {
    const m = this.models.get(r.model)
    if (!m) throw new ComputeError(`model "${r.model}" is not loaded in the onnx backend`, '55000')
    if (r.queries.length !== r.nq * m.hidden)
      throw new ComputeError(
        `gateTopK: ${r.queries.length} query values for ${r.nq} x ${m.hidden}`,
        '22023',
      )
    const candidates: Hit[][] = Array.from({ length: r.nq }, () => [])
    // positive_only keeps scores > 0, where |score| and score rank alike
    const signed = r.rank === 'signed' || r.positiveOnly
    const feeds: Record<string, Ort.Tensor> = {
      q: new this.ort.Tensor('float32', r.queries, [r.nq, m.hidden]),
    }
    const fetches: string[] = []
    const kOf: number[] = []
    for (let l = 0; l < m.rows.length; l++) {
      const want = r.perLayerK > 0 ? Math.min(r.perLayerK, r.k) : r.k
      const k = Math.min(want, m.rows[l]!)
      const used = (!r.layers || r.layers[l] !== 0) && k > 0
      kOf.push(used ? k : 0)
      feeds[`k_${l}`] = new this.ort.Tensor('int64', BigInt64Array.of(BigInt(used ? k : 1)), [1])
      if (used)
        fetches.push(
          `${signed ? 'signed' : 'abs'}_score_${l}`,
          `${signed ? 'signed' : 'abs'}_index_${l}`,
        )
    }
    if (r.nq > 0 && fetches.length > 0) {
      const out = await m.session.run(feeds, fetches)
      for (let l = 0; l < m.rows.length; l++) {
        const k = kOf[l]!
        if (k === 0) continue
        const scores = out[`${signed ? 'signed' : 'abs'}_score_${l}`]!.data as Float32Array
        const index = out[`${signed ? 'signed' : 'abs'}_index_${l}`]!.data as BigInt64Array
        for (let i = 0; i < r.nq; i++)
          for (let j = 0; j < k; j++)
            candidates[i]!.push({
              layer: l,
              feature: Number(index[i * k + j]!),
              score: scores[i * k + j]!,
            })
      }
    }
    return mergeTopK(candidates, r.k, r.rank, r.positiveOnly)
  }

  async dispose(): Promise<void> {
    for (const model of [...this.models.keys(), ...this.forwards.keys()]) this.dropModel(model)
  }
}

const EXTERNAL_DATA_FILE = 'weights.bin'
/** Initializers smaller than this stay inside the graph. */
const EXTERNAL_MIN_BYTES = 1024

/**
 * Initializer bytes above which the forward graph's weights go to ONNX
 * external data: PGLITE_INFER_ONNX_EXTERNAL_BYTES (tests set it low), else
 * 1.5 GB, under protobuf's 2 GB limit with room for the graph itself.
 */
function externalDataThreshold(): number {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
  const env = Number(proc?.env?.PGLITE_INFER_ONNX_EXTERNAL_BYTES)
  return Number.isFinite(env) && env > 0 ? env : 1.5 * 1024 ** 3
}

function initializerBytes(model: OnnxTypes.ModelProto): number {
  let n = 0
  for (const init of model.graph?.initializer ?? []) n += init.rawData?.length ?? 0
  return n
}

/** f32 rows of a layer, exact: f16 widened, the subnormal fix-ups put back. */
export function layerRowsF32(layer: GateLayer): Float32Array {
  const n = layer.rows * layer.hidden
  if (layer.data.length !== n)
    throw new ComputeError(
      `gate layer has ${layer.data.length} values, expected ${layer.rows} x ${layer.hidden}`,
      '22023',
    )
  if (layer.dtype === 'f32') return layer.data as Float32Array
  const out = halfToFloat(layer.data as Uint16Array)
  const fix = layer.fixups
  if (fix)
    for (let j = 0; j < fix.values.length; j++)
      out[fix.rows[j]! * layer.hidden + fix.cols[j]!] = fix.values[j]!
  return out
}

/**
 * Puts an initializer's bytes somewhere: inside the graph (rawData) or in an
 * external data file (onnx.ts withExternalData).
 */
export type PlaceInitializer = (init: OnnxTypes.ITensorProto, raw?: Uint8Array | null) => void

/** argmax(x W^T) per row of x [n, hidden], W [vocab, hidden] float32: the logit lens's token. */
export function buildLensModel(
  w: Float32Array,
  vocab: number,
  hidden: number,
  place: PlaceInitializer = (init, raw) => {
    if (raw) init.rawData = raw
  },
): OnnxTypes.ModelProto {
  const { onnx } = onnxProto()
  const FLOAT = onnx.TensorProto.DataType.FLOAT
  const INT64 = onnx.TensorProto.DataType.INT64
  const int = (name: string, i: number): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INT,
    i,
  })
  const init: OnnxTypes.ITensorProto = { name: 'w', dims: [vocab, hidden], dataType: FLOAT }
  place(init, new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
  const type = (elem: number, dims: (number | string)[]): OnnxTypes.ITypeProto => ({
    tensorType: {
      elemType: elem,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  })
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'pglite-infer compute',
    graph: {
      name: 'lens',
      node: [
        { opType: 'Gemm', input: ['x', 'w'], output: ['logits'], attribute: [int('transB', 1)] },
        {
          opType: 'ArgMax',
          input: ['logits'],
          output: ['token'],
          attribute: [int('axis', 1), int('keepdims', 0), int('select_last_index', 0)],
        },
      ],
      initializer: [init],
      input: [{ name: 'x', type: type(FLOAT, ['n', hidden]) }],
      output: [{ name: 'token', type: type(INT64, ['n']) }],
    },
  })
}

/** The gate pass of every layer as one ONNX model (serialized). */
export function buildGateGraph(layers: GateLayer[]): Uint8Array {
  return onnxProto().onnx.ModelProto.encode(buildGateModel(layers)).finish()
}

/** The same model before serialization; `place` puts each layer's rows (default: in the graph). */
export function buildGateModel(
  layers: GateLayer[],
  place: PlaceInitializer = (init, raw) => {
    if (raw) init.rawData = raw
  },
): OnnxTypes.ModelProto {
  const { onnx } = onnxProto()
  const FLOAT = onnx.TensorProto.DataType.FLOAT
  const INT64 = onnx.TensorProto.DataType.INT64
  const hidden = layers[0]!.hidden
  const nodes: OnnxTypes.INodeProto[] = []
  const inits: OnnxTypes.ITensorProto[] = []
  const inputs: OnnxTypes.IValueInfoProto[] = []
  const outputs: OnnxTypes.IValueInfoProto[] = []
  const int = (name: string, i: number): OnnxTypes.IAttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INT,
    i,
  })
  const tensor = (elem: number, dims: (number | string)[]): OnnxTypes.ITypeProto => ({
    tensorType: {
      elemType: elem,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  })
  const node = (
    op: string,
    input: string[],
    output: string[],
    attribute: OnnxTypes.IAttributeProto[] = [],
  ) => nodes.push({ opType: op, input, output, attribute })

  inputs.push({ name: 'q', type: tensor(FLOAT, ['nq', hidden]) })
  layers.forEach((layer, l) => {
    if (layer.hidden !== hidden)
      throw new ComputeError(`layer ${l} has hidden ${layer.hidden}, layer 0 ${hidden}`, '22023')
    const rows = layerRowsF32(layer)
    const init: OnnxTypes.ITensorProto = {
      name: `g_${l}`,
      dims: [layer.rows, hidden],
      dataType: FLOAT,
    }
    place(init, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength))
    inits.push(init)
    inputs.push({ name: `k_${l}`, type: tensor(INT64, [1]) })
    node('Gemm', ['q', `g_${l}`], [`s_${l}`], [int('transB', 1)])
    node(
      'TopK',
      [`s_${l}`, `k_${l}`],
      [`signed_score_${l}`, `signed_index_${l}`],
      [int('axis', 1), int('largest', 1), int('sorted', 1)],
    )
    node('Abs', [`s_${l}`], [`a_${l}`])
    node(
      'TopK',
      [`a_${l}`, `k_${l}`],
      [`av_${l}`, `abs_index_${l}`],
      [int('axis', 1), int('largest', 1), int('sorted', 1)],
    )
    node('GatherElements', [`s_${l}`, `abs_index_${l}`], [`abs_score_${l}`], [int('axis', 1)])
    for (const kind of ['signed', 'abs']) {
      outputs.push({ name: `${kind}_score_${l}`, type: tensor(FLOAT, ['nq', `k${l}`]) })
      outputs.push({ name: `${kind}_index_${l}`, type: tensor(INT64, ['nq', `k${l}`]) })
    }
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'pglite-infer compute',
    graph: { name: 'gate_topk', node: nodes, initializer: inits, input: inputs, output: outputs },
  })
  return model
}
