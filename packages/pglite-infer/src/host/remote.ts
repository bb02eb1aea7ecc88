/**
 * Remote model sources, fetched synchronously. Host hooks run inside a SQL
 * call and cannot await, so the download (and, for hf://, the extraction)
 * runs on a worker thread (./remote-worker.ts) while the calling thread
 * blocks in Atomics.wait on a SharedArrayBuffer until the worker reports.
 * The result is a vindex directory in a local cache, written under a
 * temporary name and renamed into place, so a later open of the same source
 * needs no network.
 *
 * This module is loaded in browsers too: it imports no Node module
 * statically, and refuses remote sources where Node is missing.
 */
import type { ExtractLevel } from '@pglite-infer/vindex'
import { HostFiles, loadNodeFs, type SyncFiles } from './sources.js'
import { HostError } from './types.js'
import {
  RESULT_ERROR,
  RESULT_OK,
  RESULT_PENDING,
  SIGNAL_BYTES,
  type RemoteJob,
  type RemoteResult,
} from './remote-protocol.js'

export interface RemoteOptions {
  /** infer.auto_download: may hf:// sources be downloaded and extracted? */
  autoDownload: boolean
  /** Extract level for hf:// sources (default browse). */
  level?: ExtractLevel
  /**
   * Total time for one download and extraction, in milliseconds (default:
   * PGLITE_INFER_DOWNLOAD_TIMEOUT seconds, else 10 minutes).
   */
  timeoutMs?: number
  /**
   * Longest silence of a server within one request, in milliseconds (default:
   * PGLITE_INFER_IDLE_TIMEOUT seconds, else 30 s): a server that accepts and
   * never answers is given up long before the total timeout.
   */
  idleTimeoutMs?: number
  /** Retries of a failed request (network error, HTTP 5xx or 429); default 2. */
  retries?: number
  /** Cache root (default: PGLITE_INFER_CACHE, else $XDG_CACHE_HOME or ~/.cache, /pglite-infer). */
  cacheDir?: string
}

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000
/** A server that sends nothing for this long is given up (and retried). */
const DEFAULT_IDLE_MS = 30 * 1000
const DEFAULT_RETRIES = 2
const DEFAULT_HF_ENDPOINT = 'https://huggingface.co'
const LEVELS: readonly ExtractLevel[] = ['browse', 'attention', 'inference', 'all']
/** Extra time the calling thread gives the worker to report its own timeout. */
const GRACE_MS = 5000
/** Kept in a variable so that bundlers do not try to follow a Node-only worker. */
const WORKER_MODULE = './remote-worker.js'

type NodeFs = typeof import('node:fs')
type Builtins = {
  fs: NodeFs
  workers: typeof import('node:worker_threads')
  crypto: typeof import('node:crypto')
  os: typeof import('node:os')
  path: typeof import('node:path')
  url: typeof import('node:url')
}

/** A parsed source: where it is fetched from and which cache entries may hold it. */
export interface RemoteSource {
  kind: 'vindex' | 'hf'
  /** The source as the user wrote it, for messages. */
  source: string
  /** http(s) vindex: its base URL (no trailing slash). */
  url?: string
  /** hf: repository id ("org/model"), revision, hub endpoint. */
  repo?: string
  revision?: string
  endpoint?: string
  level: ExtractLevel
}

/**
 * The files of a remote model source, fetched synchronously (host hooks run
 * inside a SQL call and cannot await):
 *   - http(s)://host/path/x.vindex : a vindex served over HTTP
 *   - hf://org/model[@revision]    : a HuggingFace checkpoint, extracted to a vindex
 */
export function fetchRemoteSync(source: string, options: RemoteOptions): SyncFiles {
  const node = nodeBuiltins()
  if (!node)
    throw new HostError(
      `cannot load "${source}" from SQL here: remote sources load through the TypeScript API in ` +
        'browsers (fetch the vindex with urlFileSet from @pglite-infer/vindex and register its files)',
      '0A000',
    )
  const env = process.env
  const spec = parseRemoteSource(source, {
    level: options.level ?? 'browse',
    endpoint: env.HF_ENDPOINT,
  })
  const cacheRoot = options.cacheDir ?? defaultCacheRoot(node)
  const modelsDir = node.path.join(cacheRoot, 'models')

  // Any cache entry that holds this source at the level asked for, or above.
  const candidates = cacheKeys(spec).map((k) => node.path.join(modelsDir, k))
  for (const dir of candidates) {
    if (isComplete(node.fs, dir)) return new HostFiles(node.fs, dir, 'any')
  }

  if (spec.kind === 'hf' && !options.autoDownload)
    throw new HostError(
      `"${source}" is not in the model cache (${modelsDir}) and infer.auto_download is off; ` +
        'SET infer.auto_download = on to download and extract it',
      '55000',
    )

  const timeoutMs = options.timeoutMs ?? envTimeoutMs(env.PGLITE_INFER_DOWNLOAD_TIMEOUT)
  const idleTimeoutMs = Math.min(
    timeoutMs,
    options.idleTimeoutMs ??
      envTimeoutMs(env.PGLITE_INFER_IDLE_TIMEOUT, 'PGLITE_INFER_IDLE_TIMEOUT', DEFAULT_IDLE_MS),
  )
  const finalDir = candidates[0]!
  const job: RemoteJob = {
    spec,
    finalDir,
    tmpDir: node.path.join(
      modelsDir,
      `.tmp-${node.path.basename(finalDir)}-${process.pid}-${node.crypto.randomBytes(4).toString('hex')}`,
    ),
    timeoutMs,
    idleTimeoutMs,
    retries: Math.max(0, Math.min(options.retries ?? DEFAULT_RETRIES, 10)),
    hfToken: spec.kind === 'hf' ? env.HF_TOKEN || undefined : undefined,
  }
  const result = runWorkerSync(node, job)
  if (result.status === RESULT_ERROR) throw new HostError(result.message, result.sqlstate)
  if (!isComplete(node.fs, finalDir))
    throw new HostError(`${source}: the download finished but ${finalDir} is not a vindex`, '58000')
  return new HostFiles(node.fs, finalDir, 'any')
}

/** Parses `http(s)://…` and `hf://org/model[@revision]`. Exported for tests. */
export function parseRemoteSource(
  source: string,
  opts: { level?: ExtractLevel; endpoint?: string } = {},
): RemoteSource {
  const level = opts.level ?? 'browse'
  if (!LEVELS.includes(level))
    throw new HostError(`unknown extract level "${String(level)}"`, '22023')
  if (/^https?:\/\//i.test(source)) {
    let url: URL
    try {
      url = new URL(source)
    } catch {
      throw new HostError(`"${source}" is not a valid URL`, '22023')
    }
    if (url.search || url.hash)
      throw new HostError(`"${source}": a vindex URL takes no query string or fragment`, '22023')
    return { kind: 'vindex', source, url: url.href.replace(/\/+$/, ''), level }
  }
  const m = /^hf:\/\/([^@\s]+?)\/*(?:@([^\s]+))?$/.exec(source)
  if (!m) throw new HostError(`"${source}" is not a model source`, '22023')
  const repo = m[1]!
  const revision = m[2] ?? 'main'
  const segment = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
  const parts = repo.split('/')
  if (parts.length > 2 || !parts.every((p) => segment.test(p) && !p.includes('..')))
    throw new HostError(
      `"${source}": a HuggingFace source is hf://org/model[@revision] (letters, digits, "-", "_", ".")`,
      '22023',
    )
  if (!/^[A-Za-z0-9._/-]+$/.test(revision) || revision.split('/').some((p) => p === '..' || !p))
    throw new HostError(`"${source}": "${revision}" is not a valid revision`, '22023')
  let endpoint = (opts.endpoint || DEFAULT_HF_ENDPOINT).replace(/\/+$/, '')
  try {
    endpoint = new URL(endpoint).href.replace(/\/+$/, '')
  } catch {
    throw new HostError(`HF_ENDPOINT "${opts.endpoint}" is not a valid URL`, '22023')
  }
  return { kind: 'hf', source, repo, revision, endpoint, level }
}

/**
 * Cache directory names that can serve `spec`, best first: the sha256 of the
 * normalised source (for hf:// also the endpoint and the extract level; the
 * entries of higher levels serve lower ones too).
 */
export function cacheKeys(spec: RemoteSource): string[] {
  const node = nodeBuiltins()
  if (!node) return []
  const hash = (s: string) => node.crypto.createHash('sha256').update(s).digest('hex')
  if (spec.kind === 'vindex') return [hash(`vindex ${spec.url}`)]
  const from = LEVELS.indexOf(spec.level)
  return LEVELS.slice(from).map((level) =>
    hash(`hf ${spec.endpoint} ${spec.repo}@${spec.revision} ${level}`),
  )
}

function isComplete(fs: NodeFs, dir: string): boolean {
  try {
    return fs.statSync(`${dir}/index.json`).isFile()
  } catch {
    return false
  }
}

function defaultCacheRoot(node: Builtins): string {
  const env = process.env
  if (env.PGLITE_INFER_CACHE) return node.path.resolve(env.PGLITE_INFER_CACHE)
  const base = env.XDG_CACHE_HOME || node.path.join(node.os.homedir(), '.cache')
  return node.path.join(node.path.resolve(base), 'pglite-infer')
}

function envTimeoutMs(
  value: string | undefined,
  variable = 'PGLITE_INFER_DOWNLOAD_TIMEOUT',
  fallback = DEFAULT_TIMEOUT_MS,
): number {
  if (value === undefined || value === '') return fallback
  const s = Number(value)
  if (!Number.isFinite(s) || s <= 0)
    throw new HostError(`${variable} must be a positive number of seconds, not "${value}"`, '22023')
  return s * 1000
}

/**
 * Runs the job on a fresh worker thread and blocks until it reports through
 * the shared buffer (or the deadline plus a grace period passes).
 */
function runWorkerSync(node: Builtins, job: RemoteJob): RemoteResult {
  const workerUrl = new URL(WORKER_MODULE, import.meta.url)
  if (!node.fs.existsSync(node.url.fileURLToPath(workerUrl)))
    throw new HostError(
      `the remote-source worker ${workerUrl.href} is missing; rebuild pglite-infer`,
      '58000',
    )
  const signal = new SharedArrayBuffer(SIGNAL_BYTES)
  const state = new Int32Array(signal, 0, 2)
  let worker: import('node:worker_threads').Worker
  try {
    worker = new node.workers.Worker(workerUrl, {
      // Everything the worker needs (HF_ENDPOINT, HF_TOKEN, the cache) was
      // read here, at call time, and travels in the job.
      workerData: { job, signal },
    })
  } catch (e) {
    throw new HostError(
      `${job.spec.source}: cannot start the download worker: ${(e as Error).message}`,
      '58000',
    )
  }
  worker.unref()
  const deadline = Date.now() + job.timeoutMs + GRACE_MS
  for (;;) {
    const left = deadline - Date.now()
    if (Atomics.load(state, 0) !== RESULT_PENDING || left <= 0) break
    Atomics.wait(state, 0, RESULT_PENDING, left)
  }
  const status = Atomics.load(state, 0)
  if (status === RESULT_PENDING) {
    // The worker did not even report its own timeout: stop it, clean up later.
    const tmp = job.tmpDir
    void worker
      .terminate()
      .then(() => node.fs.promises.rm(tmp, { recursive: true, force: true }))
      .catch(() => undefined)
    return {
      status: RESULT_ERROR,
      sqlstate: '08006',
      message: `${job.spec.source}: timed out after ${Math.round(job.timeoutMs / 1000)} s`,
    }
  }
  void worker.terminate().catch(() => undefined)
  const length = Atomics.load(state, 1)
  const text = new TextDecoder().decode(new Uint8Array(signal, 8, length).slice())
  if (status === RESULT_OK) return { status: RESULT_OK, sqlstate: '00000', message: '' }
  try {
    const r = JSON.parse(text) as { sqlstate: string; message: string }
    return { status: RESULT_ERROR, sqlstate: r.sqlstate, message: r.message }
  } catch {
    return { status: RESULT_ERROR, sqlstate: '58000', message: `${job.spec.source}: ${text}` }
  }
}

let builtins: Builtins | null | undefined

function nodeBuiltins(): Builtins | null {
  if (builtins !== undefined) return builtins
  builtins = null
  const fs = loadNodeFs()
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  const get = proc?.getBuiltinModule
  if (fs && get) {
    const workers = get('node:worker_threads') as Builtins['workers'] | undefined
    const crypto = get('node:crypto') as Builtins['crypto'] | undefined
    const os = get('node:os') as Builtins['os'] | undefined
    const path = get('node:path') as Builtins['path'] | undefined
    const url = get('node:url') as Builtins['url'] | undefined
    if (workers && crypto && os && path && url) builtins = { fs, workers, crypto, os, path, url }
  }
  return builtins
}
