import { ComputeClient, ComputeError, type GateLayer } from '@pglite-infer/compute'
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
import { HostError, type HostOptions, type InferHost, type WasmModule } from './types.js'

const decoder = new TextDecoder('utf-8', { fatal: false })
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
  /** Gate layers of a load in progress, by model key. */
  private readonly gateLoads = new Map<string, GateLayer[]>()
  private readonly computeOptions: HostOptions['compute']
  private remoteCaller: RemoteCaller | undefined
  private remoteCancel: RemoteCancel | undefined
  /** Models by name, with their tokenizers (host/models.ts). */
  readonly models: ModelHost

  constructor(
    private readonly host: InferHost,
    options: HostOptions = {},
  ) {
    this.models = new ModelHost(() => this.fs, options)
    this.computeOptions = options.compute
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
   * compute.c's batched gate pass. Returns the result size, -1 for an error,
   * or -3 when the backend does not hold the model (C loads it and asks again).
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
    if (this.run(() => checkBackend(backend)) < 0) return -1
    if (!this.compute.hasModel(model)) return -3
    return this.run(() =>
      this.compute.gateTopK(
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
      checkBackend(backend)
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
      if (nfix > 0) {
        // GateFixup (gate_knn.h): int32 row, int32 col, float value
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
        gate.fixups = f
      }
      pending.push(gate)
      if (layer === layers - 1) {
        this.gateLoads.delete(model)
        this.compute.loadGate(model, pending)
      }
      return new Uint8Array(0)
    })
  }

  /** A model C freed: the backend forgets it. Never fails. */
  computeDrop(mod: WasmModule, key: number): number {
    try {
      const model = readCString(mod, key)
      this.gateLoads.delete(model)
      this.computeClient?.dropModel(model)
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

/** infer.compute as C passes it (compute.h ComputeBackendKind): only 'onnx' (2) is a host backend. */
function checkBackend(backend: number): Uint8Array {
  if (backend !== 2)
    throw new HostError(`compute backend ${backend} is not a host backend`, '22023')
  return new Uint8Array(0)
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
