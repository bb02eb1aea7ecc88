import type { PGliteInterface } from '@electric-sql/pglite'
import type { ComputeClient } from '@pglite-infer/compute'
import { FILES, levelAtLeast, parseIndex } from '@pglite-infer/vindex'
import { parseTar, parseTarGzip } from 'nanotar'
import type { EmscriptenFS } from './host/sources.js'

/** The files of a vindex by name (index.json, gate_vectors.bin, ...). */
export type VindexFiles = Map<string, Uint8Array> | Record<string, Uint8Array>

/**
 * Where a model comes from:
 *   - a string: a source infer_create_model() understands (a vindex
 *     directory, an http(s):// URL, hf://org/model);
 *   - the vindex's files as bytes, by name;
 *   - one tar or tar.gz archive of a vindex directory (bytes, Blob or File:
 *     what a browser user holds).
 * Bytes are written into the database's own file system under
 * infer.data_directory, so the model persists with the database.
 */
export type ModelSource = string | VindexFiles | Uint8Array | Blob

export interface CreateModelOptions {
  /** extract_level: 'browse' (default), 'inference' or 'all'. */
  level?: 'browse' | 'inference' | 'all'
  /**
   * Where an http(s):// vindex goes: 'database' downloads it here with
   * fetch() and stores its files in the database (they persist with it);
   * 'host' hands the URL to infer_create_model, which downloads it into the
   * host's cache directory (Node only). Default: 'host' in Node, 'database'
   * elsewhere (browsers, where the host's downloader does not exist).
   */
  store?: 'host' | 'database'
  /** Download progress of a 'database' download: bytes so far of the file being fetched. */
  onProgress?: (progress: DownloadProgress) => void
}

export interface DownloadProgress {
  /** the file being fetched */
  file: string
  /** bytes of it so far, and its size (0 when the server gives none) */
  done: number
  total: number
  /** files fetched so far, of `files` (known once index.json is read) */
  filesDone: number
  files: number
}

export interface ModelInfo {
  name: string
  source: string
  architecture: string
  layers: number
  hidden: number
  features: number
  vocab: number
  dtype: string
  extract_level: string
  bytes: number
  loaded: boolean
}

/** db.<key> for extensions: { <key>: pgInfer }, e.g. db.infer. */
export interface InferNamespace {
  createModel(name: string, source: ModelSource, options?: CreateModelOptions): Promise<string>
  dropModel(name: string): Promise<void>
  models(): Promise<ModelInfo[]>
  /**
   * The client of the compute worker that serves infer.compute = 'onnx'
   * (started on first use): `terminate()` stops it and frees what it holds;
   * the next call starts a new one and reloads the models it needs.
   */
  readonly compute: ComputeClient
  /**
   * The client of the compute worker that serves infer.compute = 'webgpu'
   * (and 'auto' batches on a hardware GPU): `probe()` names its adapter,
   * `terminate()` stops it and frees the GPU memory it holds.
   */
  readonly webgpu: ComputeClient
}

export function inferNamespace(
  pg: PGliteInterface,
  fs: () => EmscriptenFSWriter | undefined,
  compute: () => ComputeClient,
  webgpu: () => ComputeClient = compute,
): InferNamespace {
  return {
    get compute() {
      return compute()
    },
    get webgpu() {
      return webgpu()
    },
    async createModel(name, source, options = {}) {
      const level = options.level ?? 'browse'
      if (typeof source === 'string' && /^https?:\/\//i.test(source)) {
        const inNode = typeof process !== 'undefined' && !!process.versions?.node
        if ((options.store ?? (inNode ? 'host' : 'database')) === 'database')
          source = await downloadVindex(source, options.onProgress)
      }
      if (typeof source === 'string') {
        const { rows } = await pg.query<{ name: string }>(
          'select infer_create_model($1, $2, $3) as name',
          [name, source, level],
        )
        return rows[0]!.name
      }
      // Check before writing: a name that exists keeps its files untouched.
      const { rows: taken } = await pg.query('select 1 from infer.models where name = $1', [name])
      if (taken.length > 0)
        throw new Error(
          `pglite-infer: model "${name}" already exists; drop it first with dropModel("${name}")`,
        )
      const files = await vindexFiles(source)
      const writer = fs()
      // A client of a database in another thread (PGliteWorker) has no file
      // system handle: the files travel as SQL parameters instead.
      if (!writer) return await storeThroughSql(pg, name, files, level)
      const written = await writeIntoDatabase(pg, writer, name, files)
      try {
        const { rows } = await pg.query<{ name: string }>(
          'select infer_create_model($1, $2, $3) as name',
          [name, written.relative, level],
        )
        return rows[0]!.name
      } catch (e) {
        // a refused vindex leaves nothing behind in the database's files
        removeDirectory(writer, written.dir)
        throw e
      }
    },
    async dropModel(name) {
      await pg.query('select infer_drop_model($1)', [name])
    },
    async models() {
      const { rows } = await pg.query<ModelInfo>('select * from infer_models()')
      return rows.map((r) => ({ ...r, bytes: Number(r.bytes) }))
    },
  }
}

/**
 * A vindex served over HTTP, downloaded with fetch(): index.json, then every
 * file it implies at its level (the browse files, the tokenizer, and for
 * inference levels weight_manifest.json and the weight files it lists).
 */
export async function downloadVindex(
  url: string,
  onProgress?: (p: DownloadProgress) => void,
): Promise<Map<string, Uint8Array>> {
  const base = url.endsWith('/') ? url : `${url}/`
  const files = new Map<string, Uint8Array>()
  let expected = 1
  const get = async (file: string, required: boolean): Promise<Uint8Array | undefined> => {
    const where = new URL(file, base).href
    let res: Response
    try {
      res = await fetch(where)
    } catch (e) {
      throw new Error(`pglite-infer: cannot fetch ${where}: ${(e as Error).message}`)
    }
    if (res.status === 404 && !required) return undefined
    if (!res.ok) throw new Error(`pglite-infer: ${where}: HTTP ${res.status} ${res.statusText}`)
    const total = Number(res.headers.get('content-length') ?? 0)
    const chunks: Uint8Array[] = []
    let done = 0
    const reader = res.body?.getReader()
    if (reader)
      for (;;) {
        const { value, done: end } = await reader.read()
        if (end) break
        chunks.push(value)
        done += value.length
        onProgress?.({ file, done, total, filesDone: files.size, files: expected })
      }
    const bytes = new Uint8Array(done)
    let o = 0
    for (const c of chunks) {
      bytes.set(c, o)
      o += c.length
    }
    files.set(file, bytes)
    onProgress?.({ file, done, total: total || done, filesDone: files.size, files: expected })
    return bytes
  }
  const index = parseIndex(new TextDecoder().decode(await get(FILES.index, true)))
  const required: string[] = [FILES.gateVectors, FILES.embeddings, FILES.downMeta, FILES.tokenizer]
  const optional: string[] = [FILES.tokenizerConfig, FILES.generationConfig]
  const inference = levelAtLeast(index.extract_level, 'attention')
  expected = 1 + required.length + optional.length + (inference ? 1 : 0)
  for (const f of required) await get(f, true)
  for (const f of optional) await get(f, false)
  if (inference) {
    const manifest = await get(FILES.weightManifest, !index.weights)
    const entries: unknown[] = [
      ...(Array.isArray(index.weights) ? index.weights : []),
      ...(manifest ? asArray(JSON.parse(new TextDecoder().decode(manifest)), url) : []),
    ]
    const weightFiles = [...new Set(entries.map((e) => String((e as { file?: unknown }).file)))]
    expected += weightFiles.length
    for (const f of weightFiles) {
      if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(f))
        throw new Error(
          `pglite-infer: ${url}: index.json names an unsafe weight file ${JSON.stringify(f)}`,
        )
      await get(f, true)
    }
  }
  return files
}

function asArray(x: unknown, url: string): unknown[] {
  if (!Array.isArray(x))
    throw new Error(`pglite-infer: ${url}: ${FILES.weightManifest} is not a JSON array`)
  return x
}

/** The emscripten FS calls used to write a vindex into the database. */
export interface EmscriptenFSWriter extends EmscriptenFS {
  mkdirTree(path: string): void
  writeFile(path: string, data: Uint8Array): void
  readdir(path: string): string[]
  unlink(path: string): void
  rmdir(path: string): void
}

function removeDirectory(fs: EmscriptenFSWriter, dir: string): void {
  try {
    for (const f of fs.readdir(dir)) if (f !== '.' && f !== '..') fs.unlink(`${dir}/${f}`)
    fs.rmdir(dir)
  } catch {
    // best effort: the directory may not exist any more
  }
}

/**
 * Writes the files with infer._store_model_file (extension/src/store.c)
 * into the same place writeIntoDatabase would, then registers the model;
 * a refused vindex leaves no files.
 */
async function storeThroughSql(
  pg: PGliteInterface,
  name: string,
  files: Map<string, Uint8Array>,
  level: string,
): Promise<string> {
  let first = true
  for (const [file, data] of files) {
    await pg.query('select infer._store_model_file($1, $2, $3, $4)', [name, file, data, first])
    first = false
  }
  try {
    const { rows } = await pg.query<{ name: string }>(
      'select infer_create_model($1, $2, $3) as name',
      [name, `${name}.vindex`, level],
    )
    return rows[0]!.name
  } catch (e) {
    await pg.query('select infer._remove_model_files($1)', [name])
    throw e
  }
}

async function vindexFiles(source: Exclude<ModelSource, string>): Promise<Map<string, Uint8Array>> {
  if (source instanceof Map) return source
  if (typeof Blob !== 'undefined' && source instanceof Blob)
    return fromArchive(new Uint8Array(await source.arrayBuffer()))
  if (source instanceof Uint8Array) return fromArchive(source)
  return new Map(Object.entries(source))
}

/** A tar or tar.gz of a vindex directory: its files by base name. */
async function fromArchive(bytes: Uint8Array): Promise<Map<string, Uint8Array>> {
  const gz = bytes[0] === 0x1f && bytes[1] === 0x8b
  const items = gz ? await parseTarGzip(bytes) : parseTar(bytes)
  const files = new Map<string, Uint8Array>()
  for (const item of items) {
    if (item.type !== 'file' || !item.data) continue
    const base = item.name.split('/').pop()!
    if (base) files.set(base, item.data)
  }
  if (!files.has('index.json'))
    throw new Error('pglite-infer: the archive holds no index.json: it is not a vindex')
  return files
}

/**
 * Writes the files to <PGDATA>/<infer.data_directory>/<name>.vindex/ and
 * returns that directory, absolute and relative to infer.data_directory.
 * Files a previous, failed attempt left there are replaced.
 */
async function writeIntoDatabase(
  pg: PGliteInterface,
  fs: EmscriptenFSWriter,
  name: string,
  files: Map<string, Uint8Array>,
): Promise<{ dir: string; relative: string }> {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/.test(name))
    throw new Error(`pglite-infer: invalid model name ${JSON.stringify(name)}`)
  // a database reopened from its data directory has not loaded pg_infer's
  // library yet, and knows no infer.* setting until it has
  await pg.query('select infer_version()')
  const { rows } = await pg.query<{ pgdata: string; dir: string }>(
    "select current_setting('data_directory') as pgdata, current_setting('infer.data_directory') as dir",
  )
  const relative = `${name}.vindex`
  const dir = `${rows[0]!.pgdata}/${rows[0]!.dir}/${relative}`
  for (const file of files.keys())
    if (!/^[A-Za-z0-9_.-]+$/.test(file) || file.startsWith('.'))
      throw new Error(`pglite-infer: refusing vindex file name ${JSON.stringify(file)}`)
  removeDirectory(fs, dir)
  fs.mkdirTree(dir)
  for (const [file, data] of files) fs.writeFile(`${dir}/${file}`, data)
  return { dir, relative }
}
