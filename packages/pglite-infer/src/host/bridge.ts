import {
  ComputeClient,
  ComputeError,
  type ComputeClientOptions,
  type ForwardTensor,
  type GateLayer,
} from '@pglite-infer/compute'
import type { AdapterSummary } from '@pglite-infer/compute/webgpu'
import { ModelHost } from './models.js'
import {
  encodeAnswer,
  RemoteCaller,
  sharedRemoteCaller,
  type RemoteCancel,
  type RemoteRequest,
} from './remote-call.js'
import { larqlCall } from './larql.js'
import { TokenizerCache } from './tokenizers.js'
import {
  HostError,
  computeChoice,
  type HostOptions,
  type InferHost,
  type WasmModule,
} from './types.js'

const decoder = new TextDecoder('utf-8', { fatal: false })

/** The WebGPU adapter 'auto' found, once per process (null: none). */
let probedAdapter: AdapterSummary | null | undefined
const encoder = new TextEncoder()

/**
 * The JavaScript half of the host hooks in extension/src/host.c, installed
 * as Module.pgInferHost. Each hook reads its arguments out of the WASM heap,
 * calls the typed InferHost, and keeps the result (or the error) until C has
 * allocated memory for it and asks for it with take() / takeError().
 *
 * Nothing may throw across this boundary: an exception inside PGlite's
 * WebAssembly call would abort the backend, so every hook catches and
 * returns -1, and C raises the kept error as an SQL ERROR.
 */
export class HostBridge {
  private pending: Uint8Array | null = null
  private error: Uint8Array = new Uint8Array(0)

  private fs: WasmModule['FS']
  private computeClient: ComputeClient | undefined
  private webgpuClient: ComputeClient | undefined
  /** infer.compute = 'auto': the client batches go to (null: none, wasm serves them). */
  private autoClient: ComputeClient | null | undefined
  /** Gate layers of a load in progress, by model key. */
  private readonly gateLoads = new Map<string, GateLayer[]>()
  /** Forward weights of a load in progress, by model key. */
  private readonly forwardLoads = new Map<string, Record<string, ForwardTensor>>()
  /** A tensor of a backend-owned model arriving in chunks (computeStageChunk). */
  private staging:
    | {
        model: string
        role: string
        rows: number
        cols: number
        dtype: number
        buf: Uint8Array
        filled: number
      }
    | undefined
  /** Shapes of the forward steps' answers, by model key: [hidden, vocab, layers, intermediate]. */
  private readonly forwardShapes = new Map<string, [number, number, number, number]>()
  private readonly computeOptions: ComputeClientOptions | undefined
  private remoteCaller: RemoteCaller | undefined
  private remoteCancel: RemoteCancel | undefined
  /** Models by name, with their tokenizers (host/models.ts). */
  readonly models: ModelHost

  constructor(
    private readonly host: InferHost,
    options: HostOptions = {},
  ) {
    this.models = new ModelHost(() => this.fs, options)
    this.computeOptions = computeChoice(options.compute).options
    this.remoteCancel = options.remoteCancel
  }

  tokenize(
    mod: WasmModule,
    jsonPtr: number,
    jsonLen: number,
    textPtr: number,
    textLen: number,
    special: number,
  ): number {
    return this.run(() => {
      const json = readUtf8(mod, jsonPtr, jsonLen)
      const text = readUtf8(mod, textPtr, textLen)
      const ids = Int32Array.from(this.host.tokenize(json, text, special !== 0))
      return new Uint8Array(ids.buffer)
    })
  }

  modelOpen(
    mod: WasmModule,
    name: number,
    source: number,
    level: number,
    dataDirectory: number,
    flags: number,
  ): number {
    this.fs = mod.FS
    // flags (host.c): bit 0 infer.auto_download, bit 1 infer.verify_checksums
    this.models.autoDownload = (flags & 1) !== 0
    this.models.verifyChecksums = (flags & 2) !== 0
    return this.run(() =>
      this.models.open(
        readCString(mod, name),
        readCString(mod, source),
        readCString(mod, level),
        readCString(mod, dataDirectory),
      ),
    )
  }

  /** Copies a model part straight into C's buffer (no pending result). */
  modelRead(
    mod: WasmModule,
    name: number,
    part: number,
    layer: number,
    dst: number,
    nbytes: number,
  ): number {
    return this.run(() => {
      const bytes = this.models.read(readCString(mod, name), readCString(mod, part), layer, nbytes)
      mod.HEAPU8.set(bytes, dst)
      return new Uint8Array(0)
    })
  }

  modelFile(mod: WasmModule, name: number, file: number): number {
    return this.run(() => this.models.file(readCString(mod, name), readCString(mod, file)))
  }

  modelAdopt(
    mod: WasmModule,
    name: number,
    json: number,
    jsonLen: number,
    config: number,
    configLen: number,
  ): number {
    return this.run(() => {
      this.models.adopt(
        readCString(mod, name),
        mod.HEAPU8.slice(json, json + jsonLen),
        mod.HEAPU8.slice(config, config + configLen),
      )
      return new Uint8Array(0)
    })
  }

  modelRelease(mod: WasmModule, name: number, forgetTokenizer: number): number {
    return this.run(() => {
      this.models.release(readCString(mod, name), forgetTokenizer !== 0)
      return new Uint8Array(0)
    })
  }

  /** Transaction end: C keeps the models named (NUL-separated); the rest goes. */
  modelSync(mod: WasmModule, names: number, len: number): number {
    return this.run(() => {
      const kept = readUtf8(mod, names, len).split('\0').filter(Boolean)
      this.models.sync(new Set(kept))
      return new Uint8Array(0)
    })
  }

  modelTokenize(
    mod: WasmModule,
    name: number,
    text: number,
    textLen: number,
    special: number,
  ): number {
    return this.run(() => {
      const ids = this.models.tokenize(
        readCString(mod, name),
        readUtf8(mod, text, textLen),
        special !== 0,
      )
      return new Uint8Array(Int32Array.from(ids).buffer)
    })
  }

  modelDecode(mod: WasmModule, name: number, ids: number, n: number): number {
    return this.run(() => {
      const view = new Int32Array(mod.HEAPU8.buffer, ids, n).slice()
      return this.models.decode(readCString(mod, name), view)
    })
  }

  normalize(mod: WasmModule, text: number, textLen: number): number {
    return this.run(() => encoder.encode(readUtf8(mod, text, textLen).trim().toLowerCase()))
  }

  /**
   * The compute backend's client (packages/compute), started on first use:
   * its worker runs the gate passes of infer.compute = 'onnx'.
   */
  get compute(): ComputeClient {
    this.computeClient ??= new ComputeClient(this.computeOptions)
    return this.computeClient
  }

  /**
   * The WebGPU backend's client (packages/compute/src/webgpu), started on
   * first use: its worker runs the gate passes of infer.compute = 'webgpu'.
   */
  get webgpu(): ComputeClient {
    this.webgpuClient ??= new ComputeClient({ ...this.computeOptions, backend: 'webgpu' })
    return this.webgpuClient
  }

  /** The client of a host backend as C names it (compute.h ComputeBackendKind). */
  private client(backend: number): ComputeClient | null {
    if (backend === 2) return this.compute
    if (backend === 3) return this.webgpu
    if (backend === 0) return this.auto()
    throw new HostError(`compute backend ${backend} is not a host backend`, '22023')
  }

  /**
   * What 'auto' offers batches to: the webgpu backend when its adapter is a
   * GPU, not a CPU emulation such as lavapipe (unless the options allow
   * software adapters, for tests), else none. The adapter is probed once per
   * process; the choice is made once per database (and dropped on failure).
   */
  private auto(): ComputeClient | null {
    if (this.autoClient !== undefined) return this.autoClient
    this.autoClient = null
    const opts = this.computeOptions?.webgpu
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
      ?.env
    if (opts?.auto === false || env?.PGLITE_INFER_WEBGPU_AUTO === '0') return null
    if (probedAdapter === undefined) {
      try {
        probedAdapter = this.webgpu.probe()
      } catch (e) {
        // a browser's worker not started yet (db.infer.webgpu.start()): ask again later
        if ((e as ComputeError).sqlstate === '55000') return (this.autoClient = undefined) ?? null
        probedAdapter = null // no package, no driver, no adapter: wasm serves 'auto'
      }
    }
    if (probedAdapter && (!probedAdapter.software || opts?.allowSoftwareForAuto))
      this.autoClient = this.webgpu
    if (!this.autoClient) void this.webgpuClient?.terminate().catch(() => undefined)
    return this.autoClient
  }

  /**
   * compute.c's batched gate pass. Returns the result size, -1 for an error,
   * -3 when the backend does not hold the model (C loads it and asks again),
   * or -4 under 'auto' when no host backend takes it (C computes it in wasm;
   * also when the chosen backend failed: the session keeps working on wasm).
   */
  computeGateTopK(
    mod: WasmModule,
    backend: number,
    key: number,
    queries: number,
    nq: number,
    hidden: number,
    useLayer: number,
    layers: number,
    perLayerK: number,
    k: number,
    rank: number,
    positiveOnly: number,
    deadlineMs: number,
  ): number {
    const model = readCString(mod, key)
    let client: ComputeClient | null = null
    if (this.run(() => ((client = this.client(backend)), new Uint8Array(0))) < 0) return -1
    if (!client) return -4
    const c: ComputeClient = client
    if (!c.hasModel(model)) return -3
    const rc = this.run(() =>
      c.gateTopK(
        {
          model,
          queries: new Float32Array(mod.HEAPU8.buffer, queries, nq * hidden).slice(),
          nq,
          layers: useLayer ? mod.HEAPU8.slice(useLayer, useLayer + layers) : undefined,
          perLayerK,
          k,
          rank: rank === 0 ? 'abs' : 'signed',
          positiveOnly: positiveOnly !== 0,
        },
        deadlineMs >= 0 ? deadlineMs : undefined,
      ),
    )
    // 'auto' falls back: this pass and the session's next ones run in wasm
    return this.declineAuto(backend, rc) ? -4 : rc
  }

  /** One layer of a model's gate rows from C's heap; the last one completes the load. */
  computeLoadGate(
    mod: WasmModule,
    backend: number,
    key: number,
    layer: number,
    layers: number,
    data: number,
    rows: number,
    hidden: number,
    dtype: number,
    fix: number,
    nfix: number,
  ): number {
    return this.run(() => {
      const client = this.client(backend)
      if (!client)
        throw new HostError('no host compute backend serves infer.compute = auto', '55000')
      const model = readCString(mod, key)
      if (layer === 0) this.gateLoads.set(model, [])
      const pending = this.gateLoads.get(model)
      if (!pending || pending.length !== layer)
        throw new HostError(`compute_load_gate: layer ${layer} of "${model}" out of order`, '22023')
      const n = rows * hidden
      const heap = mod.HEAPU8.buffer
      const gate: GateLayer =
        dtype === 1
          ? { rows, hidden, dtype: 'f16', data: new Uint16Array(heap, data, n).slice() }
          : { rows, hidden, dtype: 'f32', data: new Float32Array(heap, data, n).slice() }
      if (nfix > 0) gate.fixups = readFixups(heap, fix, nfix)
      pending.push(gate)
      if (layer === layers - 1) {
        this.gateLoads.delete(model)
        try {
          client.loadGate(model, pending)
        } catch (e) {
          if (backend !== 0) throw e
          // 'auto' falls back to wasm (the next gate_topk call declines)
          this.autoClient = null
        }
      }
      return new Uint8Array(0)
    })
  }

  /** The client serving forward steps on a backend C names (onnx or webgpu). */
  private forwardClient(backend: number): ComputeClient | null {
    if (backend === 0) return this.auto()
    checkForwardBackend(backend)
    return backend === 3 ? this.webgpu : this.compute
  }

  /**
   * A call under 'auto' failed (not a cancel): 'auto' stops offering the GPU
   * for this database, C runs this pass or step and the next ones in wasm,
   * and no error reaches SQL. true when it declined.
   */
  private declineAuto(backend: number, rc: number): boolean {
    if (rc >= 0 || backend !== 0 || decoder.decode(this.error.subarray(0, 5)) === '57014')
      return false
    this.autoClient = null
    this.error = new Uint8Array(0)
    return true
  }

  /**
   * compute.c's question at a run's start under 'auto': 3 (webgpu) when the
   * host offers a GPU that is not a CPU emulation for its forward steps, else
   * 0 (wasm). Never fails.
   */
  computeAutoForward(_mod: WasmModule, _unused: number): number {
    try {
      return this.auto() ? 3 : 0
    } catch {
      return 0
    }
  }

  /** One tensor of a model's forward weights from C's heap (compute.c host_forward_load). */
  computeLoadTensor(
    mod: WasmModule,
    backend: number,
    key: number,
    name: number,
    data: number,
    rows: number,
    cols: number,
    dtype: number,
    fix: number,
    nfix: number,
  ): number {
    return this.run(() => {
      this.forwardClient(backend)
      const model = readCString(mod, key)
      const role = readCString(mod, name)
      // compute.c sends l0.q first: a load cut short (an error, a timeout) leaves nothing behind
      let pending = role === 'l0.q' ? undefined : this.forwardLoads.get(model)
      if (!pending) this.forwardLoads.set(model, (pending = {}))
      const n = rows * cols
      const heap = mod.HEAPU8.buffer
      const t: ForwardTensor =
        dtype === 1
          ? { rows, cols, dtype: 'f16', data: new Uint16Array(heap, data, n).slice() }
          : { rows, cols, dtype: 'f32', data: new Float32Array(heap, data, n).slice() }
      if (nfix > 0) t.fixups = readFixups(heap, fix, nfix)
      pending[role] = t
      return new Uint8Array(0)
    })
  }

  /** The architecture: completes a forward load (the worker builds its graph). */
  computeLoadForward(
    mod: WasmModule,
    backend: number,
    key: number,
    spec: number,
    nwords: number,
    deadlineMs: number,
  ): number {
    const rc = this.run(() => {
      const client = this.forwardClient(backend)
      const model = readCString(mod, key)
      const tensors = this.forwardLoads.get(model) ?? {}
      this.forwardLoads.delete(model)
      const words = new Float64Array(mod.HEAPU8.buffer, spec, nwords).slice()
      // compute.h ForwardSpecWord: FS_LAYERS 1, FS_HIDDEN 2, FS_VOCAB 3, FS_INTERMEDIATE 7
      this.forwardShapes.set(model, [words[2]!, words[3]!, words[1]!, words[7]!])
      if (!client) return new Uint8Array(0) // 'auto' has no GPU: the step declines
      client.loadForward(model, { spec: words, tensors }, deadlineMs >= 0 ? deadlineMs : undefined)
      return new Uint8Array(0)
    })
    // under 'auto' a load that failed declines: the step that follows runs in wasm
    return this.declineAuto(backend, rc) ? 0 : rc
  }

  /**
   * One forward step of a run. Returns the answer's size, -1 for an error, or
   * -3 when the backend does not hold the model's forward weights.
   */
  computeForwardStep(
    mod: WasmModule,
    backend: number,
    key: number,
    run: number,
    pos: number,
    ids: number,
    n: number,
    want: number,
    deadlineMs: number,
  ): number {
    const t = this.stepTarget(mod, backend, key, want)
    if (typeof t === 'number') return t
    const { c, model, wantAct, wantResid, floats } = t
    const rc = this.run(() =>
      c.forwardStep(
        {
          model,
          run,
          pos,
          ids: new Int32Array(mod.HEAPU8.buffer, ids, n).slice(),
          wantAct,
          wantResid,
        },
        floats,
        deadlineMs >= 0 ? deadlineMs : undefined,
      ),
    )
    return this.declineAuto(backend, rc) ? -4 : rc
  }

  /**
   * Several runs of one model stepped at once (compute.c
   * compute_forward_steps): `runs`, `pos`, `counts` point at `count` int32
   * each, `ids` at their tokens one run's after another's. Returns the
   * answer's size (each run's as computeForwardStep's, one after another),
   * -1 for an error, -3 when the backend does not hold the model's forward
   * weights. C sends a batch only to onnx or webgpu, never under 'auto''s
   * first step.
   */
  computeForwardSteps(
    mod: WasmModule,
    backend: number,
    key: number,
    count: number,
    runs: number,
    pos: number,
    counts: number,
    ids: number,
    want: number,
    deadlineMs: number,
  ): number {
    const t = this.stepTarget(mod, backend, key, want)
    if (typeof t === 'number') return t
    const { c, model, wantAct, wantResid, floats } = t
    const int32s = (at: number, n: number) => new Int32Array(mod.HEAPU8.buffer, at, n).slice()
    const runCounts = int32s(counts, count)
    const total = runCounts.reduce((a, b) => a + b, 0)
    const rc = this.run(() =>
      c.forwardSteps(
        {
          model,
          runs: int32s(runs, count),
          pos: int32s(pos, count),
          counts: runCounts,
          ids: int32s(ids, total),
          wantAct,
          wantResid,
        },
        count * floats,
        deadlineMs >= 0 ? deadlineMs : undefined,
      ),
    )
    return this.declineAuto(backend, rc) ? -4 : rc
  }

  /**
   * Where a forward step goes and what one run's answer holds: the client,
   * the model, the captures asked for (want: bit 0 activations, bit 1
   * residuals) and the answer's floats; or the code to return: -1 an error,
   * -3 the backend lacks the model's forward weights, -4 'auto' has no GPU
   * (any more) and C steps in wasm.
   */
  private stepTarget(
    mod: WasmModule,
    backend: number,
    key: number,
    want: number,
  ):
    | number
    | { c: ComputeClient; model: string; wantAct: boolean; wantResid: boolean; floats: number } {
    const model = readCString(mod, key)
    let client: ComputeClient | null = null
    if (this.run(() => ((client = this.forwardClient(backend)), new Uint8Array(0))) < 0) return -1
    if (!client) return -4
    const c: ComputeClient = client
    const shape = this.forwardShapes.get(model)
    if (!shape || !c.hasForward(model)) return -3
    const [hidden, vocab, layers, intermediate] = shape
    const wantAct = (want & 1) !== 0
    const wantResid = (want & 2) !== 0
    const floats =
      hidden + vocab + (wantAct ? layers * intermediate : 0) + (wantResid ? layers * hidden : 0)
    return { c, model, wantAct, wantResid, floats }
  }

  /**
   * A part of a backend-owned model straight from the vindex the host opened
   * (compute.c compute_owned_load): never through C's heap.
   */
  computeStagePart(
    mod: WasmModule,
    backend: number,
    key: number,
    role: number,
    name: number,
    part: number,
    layer: number,
    rows: number,
    cols: number,
    dtype: number,
    nbytes: number,
  ): number {
    return this.run(() => {
      checkOwningBackend(backend)
      const bytes = this.models.read(readCString(mod, name), readCString(mod, part), layer, nbytes)
      // a copy: the vindex's file buffers stay the host's until it releases them
      this.stage(readCString(mod, key), readCString(mod, role), rows, cols, dtype, bytes.slice())
      return new Uint8Array(0)
    })
  }

  /** A chunk of a backend-owned model's tensor from C (index pages, about 256 KB at a time). */
  computeStageChunk(
    mod: WasmModule,
    backend: number,
    key: number,
    role: number,
    rows: number,
    cols: number,
    dtype: number,
    offset: number,
    data: number,
    n: number,
    total: number,
  ): number {
    return this.run(() => {
      checkOwningBackend(backend)
      const model = readCString(mod, key)
      const r = readCString(mod, role)
      if (offset === 0)
        this.staging = { model, role: r, rows, cols, dtype, buf: new Uint8Array(total), filled: 0 }
      const st = this.staging
      if (!st || st.model !== model || st.role !== r || st.filled !== offset)
        throw new HostError(`compute_stage_chunk: ${r} of "${model}" out of order`, '22023')
      if (offset + n > st.buf.length)
        throw new HostError(`compute_stage_chunk: ${r} of "${model}" overflows`, '22023')
      st.buf.set(mod.HEAPU8.subarray(data, data + n), offset)
      st.filled += n
      if (st.filled === st.buf.length) {
        this.staging = undefined
        this.stage(model, r, rows, cols, dtype, st.buf)
      }
      return new Uint8Array(0)
    })
  }

  private stage(
    model: string,
    role: string,
    rows: number,
    cols: number,
    dtype: number,
    bytes: Uint8Array,
  ): void {
    const n = rows * cols
    if (bytes.byteLength !== n * (dtype === 1 ? 2 : 4))
      throw new HostError(
        `tensor ${role} of "${model}" has ${bytes.byteLength} bytes, expected ${rows} x ${cols}`,
        'XX001',
      )
    const first = role === 'l0.gate'
    if (first) {
      // a load cut short leaves nothing behind
      this.forwardLoads.delete(model)
      this.gateLoads.delete(model)
      this.forwardShapes.delete(model)
    }
    const t: ForwardTensor =
      dtype === 1
        ? { rows, cols, dtype: 'f16', data: new Uint16Array(bytes.buffer, bytes.byteOffset, n) }
        : { rows, cols, dtype: 'f32', data: new Float32Array(bytes.buffer, bytes.byteOffset, n) }
    this.compute.stage(model, role, t, first)
  }

  /** The staged gate rows of a backend-owned model become its gate pass. */
  computeCommitGate(
    mod: WasmModule,
    backend: number,
    key: number,
    layers: number,
    keep: number,
    deadlineMs: number,
  ): number {
    return this.run(() => {
      checkOwningBackend(backend)
      this.compute.commitGate(
        readCString(mod, key),
        layers,
        keep !== 0,
        deadlineMs >= 0 ? deadlineMs : undefined,
      )
      return new Uint8Array(0)
    })
  }

  /** Columns of a backend-owned model's W_down (write tokens); -3 when the worker lacks it. */
  computeColumns(
    mod: WasmModule,
    backend: number,
    key: number,
    layers: number,
    features: number,
    n: number,
    hidden: number,
  ): number {
    const model = readCString(mod, key)
    if (this.run(() => checkOwningBackend(backend)) < 0) return -1
    if (!this.compute.hasForward(model)) return -3
    return this.run(() =>
      this.compute.columns(
        model,
        new Int32Array(mod.HEAPU8.buffer, layers, n).slice(),
        new Int32Array(mod.HEAPU8.buffer, features, n).slice(),
        hidden,
      ),
    )
  }

  /**
   * The logit lens's argmax over a backend-owned model's own lm_head, for n
   * normed vectors (int32 tokens); -3 when the worker lacks the model.
   */
  computeLens(
    mod: WasmModule,
    backend: number,
    key: number,
    x: number,
    n: number,
    hidden: number,
  ): number {
    const model = readCString(mod, key)
    if (this.run(() => checkOwningBackend(backend)) < 0) return -1
    if (!this.compute.hasForward(model)) return -3
    return this.run(() =>
      this.compute.lens(model, new Float32Array(mod.HEAPU8.buffer, x, n * hidden).slice(), n),
    )
  }

  /** A run's memory went (run end, transaction end, error): its KV cache goes too. Never fails. */
  computeForwardEnd(_mod: WasmModule, run: number): number {
    try {
      this.computeClient?.endRun(run)
      this.webgpuClient?.endRun(run)
    } catch {
      // nothing to report from a memory context callback
    }
    return 0
  }

  /** A model C freed: the backend forgets it. Never fails. */
  computeDrop(mod: WasmModule, key: number): number {
    try {
      const model = readCString(mod, key)
      this.gateLoads.delete(model)
      this.forwardLoads.delete(model)
      this.forwardShapes.delete(model)
      this.computeClient?.dropModel(model)
      this.webgpuClient?.dropModel(model)
    } catch {
      // nothing to report at transaction end
    }
    return 0
  }

  /**
   * One request to a model server (remote models, extension/src/remote.c),
   * synchronous. mode 0: only success matters (a probe); 1: the answer is a
   * table {columns, rows}; 2: a JSON object, as (key, value) rows. The answer
   * travels to C in remote-call.ts's flat layout.
   */
  remoteRequest(
    mod: WasmModule,
    url: number,
    method: number,
    path: number,
    body: number,
    bodyLen: number,
    timeoutMs: number,
    retries: number,
    deadlineMs: number,
    mode: number,
  ): number {
    return this.run(() => {
      const server = readCString(mod, url)
      // one worker thread for every database of this thread (they cannot wait
      // at the same time: the thread blocks), unless this one has its own cancel
      const caller = (this.remoteCaller ??= this.remoteCancel
        ? new RemoteCaller(this.remoteCancel)
        : sharedRemoteCaller())
      const req: RemoteRequest = {
        url: server,
        method: method === 1 ? 'POST' : 'GET',
        path: readCString(mod, path),
        body: method === 1 ? readUtf8(mod, body, bodyLen) : undefined,
        timeoutMs,
        retries,
        deadlineMs,
      }
      // a real larql-server has no /v1/pglite/call: map the call onto its endpoints
      if (req.path === '/v1/pglite/call' && caller.serverKind(req) === 'larql') {
        const started = Date.now()
        const table = larqlCall(server, req.body!, (m, p, b) => {
          const left = deadlineMs > 0 ? Math.max(0, deadlineMs - (Date.now() - started)) : -1
          return caller.request({ ...req, method: m, path: p, body: b, deadlineMs: left }).body
        })
        return encodeAnswer(server, table, mode)
      }
      const r = caller.request(req)
      return mode === 0 ? new Uint8Array(0) : encodeAnswer(server, r.body, mode)
    })
  }

  /** Copies the pending result into C's buffer at dst. */
  take(mod: WasmModule, dst: number, len: number): void {
    const result = this.pending ?? new Uint8Array(0)
    mod.HEAPU8.set(result.subarray(0, len), dst)
    this.pending = null
  }

  /** Bytes C must allocate for takeError(): SQLSTATE + message + NUL. */
  errorLength(): number {
    return this.error.length + 1
  }

  takeError(mod: WasmModule, dst: number, len: number): void {
    const n = Math.min(this.error.length, len - 1)
    mod.HEAPU8.set(this.error.subarray(0, n), dst)
    mod.HEAPU8[dst + n] = 0
    this.error = new Uint8Array(0)
  }

  private run(hook: () => Uint8Array): number {
    try {
      this.pending = hook()
      return this.pending.length
    } catch (e) {
      this.pending = null
      const sqlstate = e instanceof HostError || e instanceof ComputeError ? e.sqlstate : '38000'
      const message = e instanceof Error ? e.message : String(e)
      // PostgreSQL messages are C strings: no NUL inside.
      this.error = encoder.encode(sqlstate + message.replaceAll('\0', ' '))
      return -1
    }
  }
}

/** Backend-owned models live in the onnx backend only (compute.h ComputeBackendKind 2). */
function checkOwningBackend(backend: number): Uint8Array {
  if (backend !== 2) throw new HostError(`compute backend ${backend} does not own models`, '22023')
  return new Uint8Array(0)
}

/** The forward step's backends as C passes them (compute.h ComputeBackendKind: onnx 2, webgpu 3). */
function checkForwardBackend(backend: number): void {
  if (backend !== 2 && backend !== 3)
    throw new HostError(`compute backend ${backend} is not a host backend`, '22023')
}

/** GateFixup triples (gate_knn.h): int32 row, int32 col, float value. */
function readFixups(
  heap: ArrayBufferLike,
  fix: number,
  nfix: number,
): NonNullable<GateLayer['fixups']> {
  const words = new Int32Array(heap, fix, nfix * 3)
  const values = new Float32Array(heap, fix, nfix * 3)
  const f = {
    rows: new Int32Array(nfix),
    cols: new Int32Array(nfix),
    values: new Float32Array(nfix),
  }
  for (let j = 0; j < nfix; j++) {
    f.rows[j] = words[3 * j]!
    f.cols[j] = words[3 * j + 1]!
    f.values[j] = values[3 * j + 2]!
  }
  return f
}

function readUtf8(mod: WasmModule, ptr: number, len: number): string {
  // HEAPU8 is re-created when memory grows: read it at each call.
  return decoder.decode(mod.HEAPU8.subarray(ptr, ptr + len))
}

function readCString(mod: WasmModule, ptr: number): string {
  const heap = mod.HEAPU8
  let end = ptr
  while (heap[end] !== 0) end++
  return decoder.decode(heap.subarray(ptr, end))
}

/** The host that ships with pglite-infer: @huggingface/tokenizers, ... */
export function defaultHost(): InferHost {
  const tokenizers = new TokenizerCache()
  return {
    tokenize(tokenizerJson, text, addSpecialTokens) {
      return tokenizers.get(tokenizerJson).encode(text, { add_special_tokens: addSpecialTokens })
        .ids
    },
  }
}
