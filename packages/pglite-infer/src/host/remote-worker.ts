/**
 * The worker thread behind fetchRemoteSync (remote.ts): downloads a vindex
 * over HTTP, or a HuggingFace checkpoint that it extracts into a vindex,
 * into a private temporary directory, checks the result, renames it into the
 * cache, and reports through the shared buffer. The calling thread is blocked
 * meanwhile, so progress goes straight to file descriptor 2 (console output
 * of a worker is relayed by the blocked thread and would only appear at the
 * end).
 *
 * Only Node built-ins are imported statically; the vindex package is loaded
 * inside the reporting try block, so a failure to load it is reported too.
 */
import { writeSync } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { workerData } from 'node:worker_threads'
import { RESULT_ERROR, RESULT_OK, SIGNAL_BYTES, type RemoteJob } from './remote-protocol.js'

type VindexModule = typeof import('@pglite-infer/vindex')
type VindexNodeModule = typeof import('@pglite-infer/vindex/node')

/** An error with its SQLSTATE, as the calling thread will raise it. */
class Failure extends Error {
  constructor(
    message: string,
    readonly sqlstate: string,
  ) {
    super(message)
  }
}

/** A failure worth another try (network error, HTTP 5xx / 429 / 408). */
class Transient extends Failure {}

const { job, signal } = workerData as { job: RemoteJob; signal: SharedArrayBuffer }
const spec = job.spec
const deadline = AbortSignal.timeout(job.timeoutMs)
const started = Date.now()
let reported = false

/** Temporary directories older than this are left over from a crash. */
const STALE_MS = 24 * 60 * 60 * 1000
const LOG_EVERY_MS = 5000
/** File names a vindex or a checkpoint may name (no directories, no dot files). */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/

process.on('uncaughtException', (e) => report(failureOf(e)))
process.on('unhandledRejection', (e) => report(failureOf(e)))

void main().then(
  () => report(undefined),
  (e: unknown) => report(failureOf(e)),
)

async function main(): Promise<void> {
  try {
    const vindex = await import('@pglite-infer/vindex')
    const vnode = await import('@pglite-infer/vindex/node')
    await removeStale(dirname(job.tmpDir))
    await mkdir(job.tmpDir, { recursive: true })
    const dir = spec.kind === 'vindex' ? await fetchVindex(vindex) : await fetchHf(vindex, vnode)
    checkDeadline()
    await validate(vindex, vnode, dir)
    await install(dir)
    log(`ready in ${seconds()} s: ${job.finalDir}`)
  } finally {
    await rm(job.tmpDir, { recursive: true, force: true }).catch(() => undefined)
  }
}

/** A vindex directory served over HTTP: every file index.json implies. */
async function fetchVindex(v: VindexModule): Promise<string> {
  const { FILES } = v
  const dir = join(job.tmpDir, 'vindex')
  await mkdir(dir)
  const base = `${spec.url}/`
  const get = (name: string, required: boolean) =>
    fetchToFile(new URL(name, base).href, join(dir, name), required)
  log(`fetching the vindex at ${spec.url}`)
  await get(FILES.index, true)
  const index = v.parseIndex(await readFile(join(dir, FILES.index), 'utf8'))
  for (const name of [FILES.gateVectors, FILES.embeddings, FILES.downMeta, FILES.tokenizer])
    await get(name, true)
  for (const name of [FILES.tokenizerConfig, FILES.generationConfig]) await get(name, false)
  if (v.levelAtLeast(index.extract_level, 'attention')) {
    // weight_manifest.json lists the weight files; index.json may repeat the
    // list inline. The loader reads the manifest whenever it exists, so it is
    // fetched too (required when index.json has no list of its own).
    const manifest = await get(FILES.weightManifest, !index.weights)
    const entries: unknown[] = [
      ...(Array.isArray(index.weights) ? index.weights : []),
      ...(manifest !== undefined
        ? asArray(
            parseJson(v, await readFile(join(dir, FILES.weightManifest)), FILES.weightManifest),
          )
        : []),
    ]
    const files = [...new Set(entries.map((e) => String((e as { file?: unknown }).file)))]
    for (const file of files) {
      checkName(file, 'index.json weights')
      await get(file, true)
    }
  }
  return dir
}

function asArray(x: unknown): unknown[] {
  return Array.isArray(x) ? x : []
}

/** A HuggingFace checkpoint from the hub, extracted into a vindex. */
async function fetchHf(v: VindexModule, vnode: VindexNodeModule): Promise<string> {
  const ckpt = join(job.tmpDir, 'checkpoint')
  await mkdir(ckpt)
  const repoPath = spec.repo!.split('/').map(encodeURIComponent).join('/')
  const base = `${spec.endpoint}/${repoPath}/resolve/${encodeURIComponent(spec.revision!)}/`
  const get = (name: string, required: boolean) =>
    fetchToFile(base + name, join(ckpt, name), required)
  log(`fetching ${spec.repo} at revision ${spec.revision} from ${spec.endpoint}`)

  await get('config.json', true)
  // Checked before the weights are downloaded: an unsupported model costs one request.
  const config = parseJson(v, await readFile(join(ckpt, 'config.json')), 'config.json')
  if (!config || typeof config !== 'object' || Array.isArray(config))
    throw new v.VindexError('INVALID_INDEX', 'not a JSON object', { file: 'config.json' })
  v.parseModelConfig(config as Record<string, unknown>)
  await get('tokenizer.json', true)
  await get('tokenizer_config.json', false)
  await get('generation_config.json', false)

  const indexName = 'model.safetensors.index.json'
  if ((await get(indexName, false)) !== undefined) {
    const map = (
      parseJson(v, await readFile(join(ckpt, indexName)), indexName) as {
        weight_map?: unknown
      }
    )?.weight_map
    if (!map || typeof map !== 'object')
      throw new v.VindexError('BAD_JSON', 'missing "weight_map" object', { file: indexName })
    const shards = [...new Set(Object.values(map as Record<string, unknown>).map(String))].sort()
    for (const s of shards) checkName(s, indexName)
    for (const s of shards) await get(s, true)
  } else {
    if ((await get('model.safetensors', false)) === undefined)
      throw new Failure(
        `${base}model.safetensors: HTTP 404 (not found), and there is no ${indexName}: ` +
          'only safetensors checkpoints can be loaded',
        '58P01',
      )
  }

  checkDeadline()
  const out = join(job.tmpDir, 'vindex')
  log(`extracting a ${spec.level} vindex from ${spec.repo}`)
  let lastLog = 0
  let lastStage = ''
  const result = await vnode.extractVindexDir(ckpt, out, {
    level: spec.level,
    modelName: spec.repo,
    onProgress: (p) => {
      checkDeadline()
      const now = Date.now()
      if (p.stage !== lastStage || p.done === p.total || now - lastLog >= LOG_EVERY_MS) {
        log(`extracting ${p.stage} ${p.done}/${p.total}${p.detail ? ` (${p.detail})` : ''}`)
        lastLog = now
        lastStage = p.stage
      }
    },
  })
  const written = result.files.reduce((s, f) => s + f.size, 0)
  log(
    `extracted ${result.index.num_layers} layers, ${formatBytes(written)} in ${result.seconds.toFixed(1)} s`,
  )
  await rm(ckpt, { recursive: true, force: true })
  return out
}

/** Opens the result as the reader would, checksums and tokenizer included. */
async function validate(v: VindexModule, vnode: VindexNodeModule, dir: string): Promise<void> {
  await vnode.openVindexDir(dir, { verifyChecksums: true })
  const config = await readFile(join(dir, v.FILES.tokenizerConfig)).catch(() => undefined)
  v.loadTokenizer(await readFile(join(dir, v.FILES.tokenizer)), config)
}

/** Renames the finished vindex into the cache (another process may have won). */
async function install(dir: string): Promise<void> {
  await mkdir(dirname(job.finalDir), { recursive: true })
  try {
    await rename(dir, job.finalDir)
  } catch (e) {
    const done = await stat(join(job.finalDir, 'index.json')).catch(() => undefined)
    if (!done?.isFile()) throw e
  }
}

/**
 * GETs `url` into `dest` (through `dest`.partial), with bounded retries.
 * Returns the byte count, or undefined for a 404 of an optional file.
 */
async function fetchToFile(
  url: string,
  dest: string,
  required: boolean,
): Promise<number | undefined> {
  let last: Failure | undefined
  for (let attempt = 0; attempt <= job.retries; attempt++) {
    if (attempt > 0) {
      const wait = 500 * 3 ** (attempt - 1)
      log(`retrying in ${wait / 1000} s (${attempt}/${job.retries}) after: ${last!.message}`)
      await sleep(wait)
    }
    try {
      return await fetchOnce(url, dest, required)
    } catch (e) {
      if (!(e instanceof Transient)) throw e
      last = e
    }
  }
  throw last!
}

async function fetchOnce(
  url: string,
  dest: string,
  required: boolean,
): Promise<number | undefined> {
  checkDeadline()
  const headers: Record<string, string> = { 'user-agent': 'pglite-infer' }
  if (job.hfToken) headers.authorization = `Bearer ${job.hfToken}`
  const idle = idleGuard(url)
  try {
    return await fetchWith(url, dest, required, headers, idle)
  } finally {
    idle.stop()
  }
}

/** Aborts a request when the server sends nothing for job.idleTimeoutMs. */
function idleGuard(url: string) {
  const ctrl = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const arm = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => ctrl.abort(), job.idleTimeoutMs)
  }
  arm()
  return {
    signal: AbortSignal.any([deadline, ctrl.signal]),
    touch: arm,
    stop: () => clearTimeout(timer),
    /** The error to report for a failed read: silence, the deadline, or the network. */
    failure(e: unknown): Failure {
      if (ctrl.signal.aborted && !deadline.aborted)
        return new Transient(
          `${url}: the server sent nothing for ${+(job.idleTimeoutMs / 1000).toFixed(1)} s ` +
            '(PGLITE_INFER_IDLE_TIMEOUT sets the limit in seconds)',
          '08006',
        )
      return networkFailure(url, e)
    },
  }
}

async function fetchWith(
  url: string,
  dest: string,
  required: boolean,
  headers: Record<string, string>,
  idle: ReturnType<typeof idleGuard>,
): Promise<number | undefined> {
  let res: Response
  try {
    res = await fetch(url, { signal: idle.signal, headers, redirect: 'follow' })
  } catch (e) {
    throw idle.failure(e)
  }
  idle.touch()
  // The hub names what is missing in x-error-code (and answers 401 for a
  // repository that does not exist, as for a private one).
  const hubError = res.headers.get('x-error-code')
  if (
    res.status === 404 ||
    res.status === 410 ||
    (hubError !== null && /^(Repository|Revision|Entry)NotFound$/.test(hubError))
  ) {
    await res.body?.cancel().catch(() => undefined)
    if (!required) return undefined
    throw new Failure(`${url}: HTTP ${res.status} (${hubError ?? 'not found'})`, '58P01')
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined)
    const what = `${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`
    if (res.status >= 500 || res.status === 429 || res.status === 408)
      throw new Transient(what, '58000')
    if ((res.status === 401 || res.status === 403) && spec.kind === 'hf')
      throw new Failure(
        `${what}: the repository does not exist, or is private or gated ` +
          '(set HF_TOKEN to a token that may read it)',
        '58000',
      )
    throw new Failure(what, '58000')
  }
  const lengthHeader = res.headers.get('content-length')
  const expected =
    lengthHeader !== null && !res.headers.get('content-encoding') ? Number(lengthHeader) : undefined
  const name = url.slice(url.lastIndexOf('/') + 1)
  const big = (expected ?? 0) >= 16 * 1024 * 1024
  if (big) log(`downloading ${name} (${formatBytes(expected!)})`)
  const t0 = Date.now()
  const partial = `${dest}.partial`
  const fh = await open(partial, 'w')
  let got = 0
  try {
    const reader = res.body!.getReader()
    let lastLog = t0
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>
      try {
        chunk = await reader.read()
      } catch (e) {
        throw idle.failure(e)
      }
      idle.touch()
      if (chunk.done) break
      let off = 0
      while (off < chunk.value.byteLength) {
        const { bytesWritten } = await fh.write(chunk.value, off, chunk.value.byteLength - off)
        off += bytesWritten
      }
      got += chunk.value.byteLength
      const now = Date.now()
      if (big && now - lastLog >= LOG_EVERY_MS) {
        log(`  ${name}: ${formatBytes(got)} of ${formatBytes(expected!)} (${rate(got, now - t0)})`)
        lastLog = now
      }
    }
  } finally {
    await fh.close()
  }
  if (expected !== undefined && Number.isFinite(expected) && got !== expected)
    throw new Transient(`${url}: the connection closed after ${got} of ${expected} bytes`, '08006')
  await rename(partial, dest)
  log(
    `${big ? '  done ' : 'got '}${name}: ${formatBytes(got)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  )
  return got
}

function networkFailure(url: string, e: unknown): Failure {
  if (deadline.aborted) return timeoutFailure(url)
  const err = e as { message?: string; cause?: { code?: string; message?: string } }
  const why = err.cause?.code ?? err.cause?.message ?? err.message ?? String(e)
  return new Transient(`${url}: network error: ${why}`, '08006')
}

function timeoutFailure(url?: string): Failure {
  return new Failure(
    `${spec.source}: timed out after ${Math.round(job.timeoutMs / 1000)} s` +
      (url ? ` fetching ${url}` : '') +
      ' (PGLITE_INFER_DOWNLOAD_TIMEOUT sets the limit in seconds)',
    '08006',
  )
}

function checkDeadline(): void {
  if (deadline.aborted) throw timeoutFailure()
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (deadline.aborted) return reject(timeoutFailure())
    const t = setTimeout(() => {
      deadline.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(timeoutFailure())
    }
    deadline.addEventListener('abort', onAbort, { once: true })
  })
}

function parseJson(v: VindexModule, bytes: Uint8Array, file: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown
  } catch {
    throw new v.VindexError('BAD_JSON', 'not valid JSON', { file })
  }
}

function checkName(name: string, where: string): void {
  if (!SAFE_NAME.test(name))
    throw new Failure(
      `${spec.source}: ${where} names the file "${name}", which is not a plain file name`,
      'XX001',
    )
}

/** Removes temporary directories that crashed processes left behind. */
async function removeStale(modelsDir: string): Promise<void> {
  const names = await readdir(modelsDir).catch(() => [] as string[])
  for (const n of names) {
    if (!n.startsWith('.tmp-')) continue
    const p = join(modelsDir, n)
    const st = await stat(p).catch(() => undefined)
    if (st && Date.now() - st.mtimeMs > STALE_MS)
      await rm(p, { recursive: true, force: true }).catch(() => undefined)
  }
}

const SQLSTATE_OF: Partial<Record<string, string>> = {
  MISSING_FILE: '58P01',
  UNKNOWN_DTYPE: '0A000',
  UNSUPPORTED_VERSION: '0A000',
  UNSUPPORTED_ARCHITECTURE: '0A000',
  FETCH_FAILED: '58000',
  INVALID_ARGUMENT: '22023',
}

function failureOf(e: unknown): Failure {
  if (e instanceof Failure) return e
  const err = e as { name?: string; code?: string; message?: string; hint?: string }
  if (err?.name === 'VindexError' && typeof err.code === 'string')
    return new Failure(
      `${spec.source}: ${err.message}${err.hint ? ` (${err.hint})` : ''}`,
      SQLSTATE_OF[err.code] ?? 'XX001',
    )
  if (deadline.aborted) return timeoutFailure()
  return new Failure(`${spec.source}: ${err?.message ?? String(e)}`, '58000')
}

function report(failure: Failure | undefined): void {
  if (reported) return
  reported = true
  const state = new Int32Array(signal, 0, 2)
  if (failure) {
    log(`failed: ${failure.message}`)
    const room = SIGNAL_BYTES - 8
    let message = failure.message
    let bytes = new TextEncoder().encode(JSON.stringify({ sqlstate: failure.sqlstate, message }))
    while (bytes.byteLength > room) {
      message = `${message.slice(0, Math.floor(message.length / 2))}…`
      bytes = new TextEncoder().encode(JSON.stringify({ sqlstate: failure.sqlstate, message }))
    }
    new Uint8Array(signal, 8, bytes.byteLength).set(bytes)
    Atomics.store(state, 1, bytes.byteLength)
  }
  Atomics.store(state, 0, failure ? RESULT_ERROR : RESULT_OK)
  Atomics.notify(state, 0)
}

function log(line: string): void {
  try {
    writeSync(2, `pglite-infer: ${spec.source}: ${line}\n`)
  } catch {
    // stderr closed: progress is best effort
  }
}

function seconds(): string {
  return ((Date.now() - started) / 1000).toFixed(1)
}

function rate(bytes: number, ms: number): string {
  return `${formatBytes((bytes * 1000) / Math.max(ms, 1))}/s`
}

function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}
