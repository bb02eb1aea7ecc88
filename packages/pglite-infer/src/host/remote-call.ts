/**
 * Synchronous HTTP to a model server (remote models, docs/remote-models.md).
 * A SQL call cannot await, so requests run on one long-lived worker thread
 * (./remote-call-worker.ts) while the calling thread blocks in Atomics.wait;
 * the worker answers on a MessagePort that the caller drains with
 * receiveMessageOnPort, so an answer of any size needs no shared buffer.
 *
 * The wait ends at the statement's deadline (statement_timeout, passed by C):
 * the caller then tells the worker to abort the request, which closes the
 * connection so the server drops the work, and raises 57014 at once.
 *
 * This module is loaded in browsers too: it imports no Node module statically
 * and refuses remote models where Node is missing.
 */
import { HostError } from './types.js'
import { loadNodeFs } from './sources.js'
import type { CallMessage, CallReply } from './remote-call-protocol.js'

type Workers = typeof import('node:worker_threads')

/** What C asks for: one request, its limits, and how to shape the answer. */
export interface RemoteRequest {
  url: string
  method: 'GET' | 'POST'
  path: string
  body?: string
  /** Per attempt (infer.remote_timeout_ms). */
  timeoutMs: number
  /** Further attempts after a connection failure or a 503 (infer.remote_retries). */
  retries: number
  /** What the statement has left before statement_timeout; -1: no deadline. */
  deadlineMs: number
}

/** Kept in a variable so that bundlers do not try to follow a Node-only worker. */
const WORKER_MODULE = './remote-call-worker.js'
/** A worker that does not report this long after its own timeouts is given up. */
const GRACE_MS = 2000

/*
 * The shared Int32 cells of a RemoteCaller: [0] bumped by the worker on each
 * answer and by RemoteCancel.cancel() (the caller waits on it); [1] cancel
 * requested; [2] a call is in flight.
 */
const ANSWERS = 0
const CANCEL = 1
const IN_FLIGHT = 2

/**
 * An application-level cancel of the remote call in flight (PostgreSQL's
 * "canceling statement due to user request", 57014). The thread that runs
 * PGlite is blocked in Atomics.wait while a remote call is in flight, so the
 * cancel is made from another thread through shared memory:
 *
 *   // the page / main thread, PGlite in a worker
 *   const cancel = new RemoteCancel()
 *   new Worker(url, { workerData: { cancel: cancel.buffer } })
 *   cancel.follow(abortController.signal)        // or cancel.cancel()
 *
 *   // the worker
 *   createPgInfer({ remoteCancel: RemoteCancel.from(workerData.cancel) })
 */
export class RemoteCancel {
  readonly buffer: SharedArrayBuffer
  private readonly cells: Int32Array

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(12)) {
    if (buffer.byteLength < 12)
      throw new RangeError('RemoteCancel needs a 12-byte SharedArrayBuffer')
    this.buffer = buffer
    this.cells = new Int32Array(buffer, 0, 3)
  }

  /** The same cancel in another thread (its `buffer` sent there). */
  static from(buffer: SharedArrayBuffer): RemoteCancel {
    return new RemoteCancel(buffer)
  }

  /** Whether a remote call is waiting for its server now. */
  get inFlight(): boolean {
    return Atomics.load(this.cells, IN_FLIGHT) !== 0
  }

  /**
   * Ends the remote call in flight (it raises 57014 at once, and its
   * connection is closed so the server drops the work); false when none is.
   */
  cancel(): boolean {
    if (!this.inFlight) return false
    Atomics.store(this.cells, CANCEL, 1)
    Atomics.add(this.cells, ANSWERS, 1)
    Atomics.notify(this.cells, ANSWERS)
    return true
  }

  /** cancel() when `signal` aborts; returns the function that stops following it. */
  follow(signal: AbortSignal): () => void {
    const onAbort = () => void this.cancel()
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort)
    return () => signal.removeEventListener('abort', onAbort)
  }
}

export class RemoteCaller {
  constructor(private readonly cancel?: RemoteCancel) {}

  private worker: import('node:worker_threads').Worker | undefined
  private port: import('node:worker_threads').MessagePort | undefined
  private flag: Int32Array | undefined
  private nextId = 1
  private workers: Workers | undefined

  /** Per server URL (without #model): a pglite-infer serve, or another larql-server. */
  private kinds = new Map<string, 'pglite' | 'larql'>()

  /**
   * Whether the server at req.url is a pglite-infer serve (answers
   * /v1/pglite/call) or another larql-server: its /v1/stats says
   * `"server": "pglite-infer"` or not. Learnt from the registration's
   * /v1/stats answer, else asked once.
   */
  serverKind(req: RemoteRequest): 'pglite' | 'larql' {
    const key = req.url.replace(/#.*$/, '')
    let kind = this.kinds.get(key)
    if (!kind) {
      const r = this.request({ ...req, method: 'GET', path: '/v1/stats', body: undefined })
      kind = statsKind(r.body)
      this.kinds.set(key, kind)
    }
    return kind
  }

  /** The server's answer body (status 2xx), or a HostError with a SQLSTATE. */
  request(req: RemoteRequest): { status: number; body: string } {
    const answer = this.requestOnce(req)
    if (req.path.startsWith('/v1/stats'))
      this.kinds.set(req.url.replace(/#.*$/, ''), statsKind(answer.body))
    return answer
  }

  private requestOnce(req: RemoteRequest): { status: number; body: string } {
    if (req.deadlineMs === 0) throw cancelled()
    const target = parseServerUrl(req.url)
    this.start()
    const id = this.nextId++
    const message: CallMessage = {
      id,
      target,
      method: req.method,
      path: req.path,
      body: req.body,
      timeoutMs: req.timeoutMs,
      retries: req.retries,
    }
    this.worker!.postMessage(message)
    const started = Date.now()
    const cap = started + req.timeoutMs * (req.retries + 1) + 250 * req.retries + GRACE_MS
    const deadline = req.deadlineMs > 0 ? started + req.deadlineMs : Infinity
    const flag = this.flag!
    Atomics.store(flag, CANCEL, 0)
    Atomics.store(flag, IN_FLIGHT, 1)
    try {
      return this.wait(req, id, started, cap, deadline, flag)
    } finally {
      Atomics.store(flag, IN_FLIGHT, 0)
    }
  }

  private wait(
    req: RemoteRequest,
    id: number,
    started: number,
    cap: number,
    deadline: number,
    flag: Int32Array,
  ): { status: number; body: string } {
    for (;;) {
      // read the counter first: an answer posted after the drain changes it
      const seen = Atomics.load(flag, 0)
      const reply = this.drain(id)
      if (reply) {
        if (reply.error) throw new HostError(reply.error.message, reply.error.sqlstate)
        return { status: reply.status!, body: reply.body! }
      }
      const now = Date.now()
      if (Atomics.load(flag, CANCEL)) {
        // RemoteCancel.cancel() from another thread: the same as a deadline
        this.worker!.postMessage({ abort: id })
        throw new HostError('canceling statement due to user request', '57014')
      }
      if (now >= deadline) {
        // the worker closes the connection: the server drops the request
        this.worker!.postMessage({ abort: id })
        throw cancelled()
      }
      if (now >= cap) {
        // the worker did not even report its own timeout: start a new one next time
        this.stop()
        throw new HostError(
          `${req.url}: no answer from the model server after ${now - started} ms`,
          '08006',
        )
      }
      Atomics.wait(flag, 0, seen, Math.min(deadline, cap) - now)
    }
  }

  private pending = new Map<number, CallReply>()

  private drain(id: number): CallReply | undefined {
    this.drainAll()
    const r = this.pending.get(id)
    if (r) this.pending.delete(id)
    // answers of abandoned calls are dropped
    for (const k of this.pending.keys()) if (k < id) this.pending.delete(k)
    return r
  }

  private drainAll(): void {
    for (;;) {
      const m = this.workers!.receiveMessageOnPort(this.port!)
      if (!m) return
      const reply = m.message as CallReply
      this.pending.set(reply.id, reply)
    }
  }

  private start(): void {
    if (this.worker) return
    const workers = nodeWorkers()
    if (!workers)
      throw new HostError(
        'remote models need Node (worker_threads): a SQL call cannot wait for the network here',
        '0A000',
      )
    this.workers = workers
    const signal = this.cancel?.buffer ?? new SharedArrayBuffer(12)
    const { port1, port2 } = new workers.MessageChannel()
    const url = new URL(WORKER_MODULE, import.meta.url)
    let worker: import('node:worker_threads').Worker
    try {
      worker = new workers.Worker(url, {
        workerData: { signal, port: port2 },
        transferList: [port2],
      })
    } catch (e) {
      throw new HostError(`cannot start the remote-call worker: ${(e as Error).message}`, '58000')
    }
    worker.unref()
    port1.unref()
    worker.on('error', () => this.stop())
    worker.on('exit', () => {
      if (this.worker === worker) this.stop()
    })
    this.worker = worker
    this.port = port1
    this.flag = new Int32Array(signal)
  }

  /** Ends the worker (a later request starts a new one). */
  stop(): void {
    const w = this.worker
    this.worker = undefined
    this.port?.close()
    this.port = undefined
    this.pending.clear()
    void w?.terminate().catch(() => undefined)
  }
}

/** A pglite-infer serve says so in /v1/stats; anything else is taken for a larql-server. */
function statsKind(body: string): 'pglite' | 'larql' {
  try {
    return (JSON.parse(body) as { server?: unknown }).server === 'pglite-infer' ? 'pglite' : 'larql'
  } catch {
    return 'pglite' // not JSON: the call itself reports what is wrong
  }
}

let shared: RemoteCaller | undefined

/**
 * The RemoteCaller of every database of this thread that has no RemoteCancel
 * of its own: one worker thread (and one keep-alive connection pool) per
 * thread instead of one per database. Safe because a thread makes one remote
 * call at a time (it blocks until the answer).
 */
export function sharedRemoteCaller(): RemoteCaller {
  return (shared ??= new RemoteCaller())
}

function cancelled(): HostError {
  return new HostError('canceling statement due to statement timeout', '57014')
}

/** Where a server URL points: http(s) host and port, or a Unix socket. */
export interface ServerTarget {
  protocol: 'http:' | 'https:'
  host: string
  port: number
  /** A Unix socket path (unix:// and uds:// URLs). */
  socketPath?: string
  /** Path prefix of an http(s) URL, without a trailing slash. */
  base: string
}

/**
 * http://host[:port][/prefix], https://…, unix:///path/to.sock,
 * uds:///path/to.sock (also uds://localhost/path and uds:/path, as pg_infer's
 * client accepts). A "#model" fragment names the server's model and is not
 * part of the address.
 */
export function parseServerUrl(raw: string): ServerTarget {
  const url = raw.replace(/#.*$/, '')
  const uds = /^(?:uds|unix):(?:\/\/(?:localhost)?)?(\/.*)$/i.exec(url)
  if (uds) {
    const path = decodeURIComponent(uds[1]!)
    if (path === '/' || path.endsWith('/'))
      throw new HostError(`"${raw}": no socket path (use unix:///path/to.sock)`, '22023')
    return { protocol: 'http:', host: 'localhost', port: 80, socketPath: path, base: '' }
  }
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new HostError(
      `"${raw}" is not a model server URL (use http://host:port, https://…, unix:///path or uds:///path)`,
      '22023',
    )
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new HostError(
      `"${raw}": unsupported URL scheme "${u.protocol.replace(/:$/, '')}" (use http, https, unix or uds)`,
      '22023',
    )
  if (u.search || u.username || u.password)
    throw new HostError(
      `"${raw}": a model server URL takes no query string or credentials`,
      '22023',
    )
  return {
    protocol: u.protocol,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
    base: u.pathname.replace(/\/+$/, ''),
  }
}

let workersModule: Workers | null | undefined

function nodeWorkers(): Workers | null {
  if (workersModule !== undefined) return workersModule
  workersModule = null
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  if (loadNodeFs() && proc?.getBuiltinModule)
    workersModule = (proc.getBuiltinModule('node:worker_threads') as Workers | undefined) ?? null
  return workersModule
}

/**
 * The answer C reads: a table in a flat layout (int32 ncols, int32 nrows,
 * ncols NUL-ended column names, then per cell a flag byte, 1 present / 0
 * NULL, and for a present cell its NUL-ended text).
 *
 * mode 1: the body is {columns: [...], rows: [[...], ...]} (/v1/pglite/call);
 * mode 2: the body is a JSON object, one row (key, value) per member, a
 *         value that is not a string in JSON text (/v1/stats, /v1/health).
 */
export function encodeAnswer(url: string, body: string, mode: number): Uint8Array {
  let v: unknown
  try {
    v = JSON.parse(body)
  } catch {
    throw garbage(url, `not JSON: ${JSON.stringify(body.slice(0, 80))}`)
  }
  let columns: string[]
  let rows: unknown[][]
  if (mode === 2) {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw garbage(url, 'expected a JSON object')
    columns = ['key', 'value']
    rows = Object.entries(v).map(([k, x]) => [
      k,
      x === null ? null : typeof x === 'string' ? x : JSON.stringify(x),
    ])
  } else {
    const t = v as { columns?: unknown; rows?: unknown }
    if (
      typeof t !== 'object' ||
      t === null ||
      !Array.isArray(t.columns) ||
      !Array.isArray(t.rows) ||
      !t.columns.every((c) => typeof c === 'string')
    )
      throw garbage(url, 'expected {columns, rows}')
    columns = t.columns as string[]
    rows = t.rows as unknown[][]
  }
  const enc = new TextEncoder()
  const parts: Uint8Array[] = []
  let size = 8
  const push = (b: Uint8Array) => {
    parts.push(b)
    size += b.length
  }
  const text = (s: string) => {
    if (s.includes('\0')) throw garbage(url, 'a value holds a NUL character')
    push(enc.encode(`${s}\0`))
  }
  for (const c of columns) text(c)
  for (const row of rows) {
    if (!Array.isArray(row) || row.length !== columns.length)
      throw garbage(url, `a row does not have ${columns.length} values`)
    for (const cell of row) {
      if (cell === null) {
        push(Uint8Array.of(0))
        continue
      }
      if (typeof cell !== 'string' && typeof cell !== 'number' && typeof cell !== 'boolean')
        throw garbage(url, 'a value is neither text, a number nor null')
      push(Uint8Array.of(1))
      text(typeof cell === 'boolean' ? (cell ? 't' : 'f') : String(cell))
    }
  }
  const out = new Uint8Array(size)
  const head = new DataView(out.buffer)
  head.setInt32(0, columns.length, true)
  head.setInt32(4, rows.length, true)
  let at = 8
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function garbage(url: string, what: string): HostError {
  return new HostError(
    `the model server at ${url} sent an answer pg_infer cannot read (${what}); ` +
      'is it a pglite-infer serve of a matching version?',
    'XX001',
  )
}
