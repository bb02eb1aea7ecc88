/**
 * Node-only helpers: directories as file sets and sinks, streaming sha256,
 * and a worker-thread pool for down_meta. Import as
 * "@pglite-infer/vindex/node".
 */
import { createHash } from 'node:crypto'
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { ByteSource, FileSet } from './bytes.js'
import type { DownMetaEngine, DownMetaRequest, DownMetaResult } from './engine.js'
import { extractVindex, type ExtractOptions, type ExtractResult } from './extract.js'
import { openVindex, type OpenOptions, type Vindex } from './reader.js'
import type { OutputFile, OutputSink, WrittenFile } from './sink.js'

/** Ranged reads from a local file with positioned fs reads (no whole-file loads). */
class NodeFileSource implements ByteSource {
  private handle: Promise<FileHandle> | undefined
  constructor(
    readonly name: string,
    private readonly path: string,
    private readonly bytes: number,
    private readonly persistent: boolean,
  ) {}
  async size(): Promise<number> {
    return this.bytes
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.handle ??= open(this.path, 'r')
    const fh = await this.handle
    try {
      return await readAt(fh, offset, Math.max(0, Math.min(length, this.bytes - offset)))
    } finally {
      // Readers that touch a file once (vindex loading) should not hold descriptors.
      if (!this.persistent) await this.close()
    }
  }
  async close(): Promise<void> {
    if (this.handle) await (await this.handle).close()
    this.handle = undefined
  }
}

async function readAt(fh: FileHandle, offset: number, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n)
  let done = 0
  while (done < n) {
    const { bytesRead } = await fh.read(buf, done, n - done, offset + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done === n ? buf : buf.subarray(0, done)
}

/**
 * A directory as a FileSet. With `persistent` (used for extraction, which
 * reads many ranges) handles stay open until close(); otherwise each read
 * opens and closes its file.
 */
export class DirectoryFileSet implements FileSet {
  private readonly opened = new Map<string, NodeFileSource>()
  constructor(
    readonly dir: string,
    private readonly persistent = false,
  ) {}
  async open(name: string): Promise<ByteSource | undefined> {
    const cached = this.opened.get(name)
    if (cached) return cached
    const path = join(this.dir, name)
    const st = await stat(path).catch(() => undefined)
    if (!st?.isFile()) return undefined
    const src = new NodeFileSource(name, path, st.size, this.persistent)
    this.opened.set(name, src)
    return src
  }
  async close(): Promise<void> {
    await Promise.all([...this.opened.values()].map((s) => s.close()))
    this.opened.clear()
  }
}

/** Writes files into a directory, hashing as it goes (node:crypto streams). */
export class DirectorySink implements OutputSink {
  constructor(readonly dir: string) {}
  async create(name: string): Promise<OutputFile> {
    await mkdir(this.dir, { recursive: true })
    const path = join(this.dir, name)
    // Written under a temporary name and renamed on close, so a crash never
    // leaves a half-written file under its real name.
    const tmp = `${path}.partial`
    const fh = await open(tmp, 'w')
    const hash = createHash('sha256')
    let size = 0
    return {
      write: async (bytes: Uint8Array) => {
        hash.update(bytes)
        size += bytes.byteLength
        let done = 0
        while (done < bytes.byteLength) {
          const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done)
          done += bytesWritten
        }
      },
      close: async (): Promise<WrittenFile> => {
        await fh.close()
        await rename(tmp, path)
        return { name, size, sha256: hash.digest('hex') }
      },
    }
  }
}

/** Opens and validates a vindex directory. */
export async function openVindexDir(dir: string, options: OpenOptions = {}): Promise<Vindex> {
  return openVindex(new DirectoryFileSet(dir), options)
}

export interface ExtractDirOptions extends ExtractOptions {
  /** Worker threads for down_meta (default: available cores; 0 = inline). */
  workers?: number
  /** Remove an existing output directory first. */
  overwrite?: boolean
}

/** Extracts `modelDir` (a HuggingFace checkpoint) into the directory `outDir`. */
export async function extractVindexDir(
  modelDir: string,
  outDir: string,
  options: ExtractDirOptions = {},
): Promise<ExtractResult> {
  if (options.overwrite) await rm(outDir, { recursive: true, force: true })
  const files = new DirectoryFileSet(modelDir, true)
  const workers = options.workers ?? availableParallelism()
  const engine = options.engine ?? (workers > 0 ? new WorkerPoolEngine(workers) : undefined)
  try {
    return await extractVindex(files, new DirectorySink(outDir), { ...options, engine })
  } finally {
    await files.close()
    if (engine && !options.engine) await engine.close()
  }
}

/**
 * down_meta on worker threads. The embedding lives in a SharedArrayBuffer
 * that every worker maps once; each layer's down rows are copied into
 * shared memory and the features split evenly across workers.
 */
export class WorkerPoolEngine implements DownMetaEngine {
  private readonly workers: Worker[]
  private nextJob = 1
  private dead: Error | undefined
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()

  constructor(size: number) {
    const url = new URL('./downmeta-worker.js', import.meta.url)
    this.workers = Array.from({ length: Math.max(1, size) }, () => this.spawn(url))
  }

  private spawn(url: URL): Worker {
    // execArgv: [] so flags like --input-type/--eval of the parent do not break worker startup.
    const w = new Worker(url, { execArgv: [] })
    w.on('message', (m: { id: number; error?: string }) => {
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.error) p?.reject(new Error(m.error))
      else p?.resolve()
    })
    const failAll = (e: Error): void => {
      for (const p of this.pending.values()) p.reject(e)
      this.pending.clear()
    }
    w.on('error', failAll)
    // A worker that dies without an 'error' event must not leave jobs hanging.
    w.on('exit', (code) => {
      this.dead = new Error(`down_meta worker exited with code ${code}`)
      if (this.pending.size > 0) failAll(this.dead)
    })
    return w
  }

  allocate(length: number): Float32Array {
    return new Float32Array(new SharedArrayBuffer(length * 4))
  }

  async topK(req: DownMetaRequest): Promise<DownMetaResult> {
    const down = toShared(req.down)
    const ids = new Uint32Array(new SharedArrayBuffer(req.features * req.k * 4))
    const logits = new Float32Array(new SharedArrayBuffer(req.features * req.k * 4))
    const per = Math.ceil(req.features / this.workers.length)
    const jobs = this.workers.map((w, i) => {
      const start = Math.min(i * per, req.features)
      const end = Math.min(start + per, req.features)
      if (start >= end) return Promise.resolve()
      return this.run(w, { ...req, down, start, end, ids, logits })
    })
    await Promise.all(jobs)
    return { ids: new Uint32Array(ids), logits: new Float32Array(logits) }
  }

  private run(w: Worker, payload: Record<string, unknown>): Promise<void> {
    const id = this.nextJob++
    if (this.dead) return Promise.reject(this.dead)
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      w.postMessage({ id, ...payload })
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}

function toShared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength))
  s.set(a)
  return s
}
