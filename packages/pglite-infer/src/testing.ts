/**
 * pglite-infer/testing: a database per test, fast.
 *
 *   import { createTestDb, withRollback } from 'pglite-infer/testing'
 *   const db = await createTestDb({ model: { name: 'q', source: vindexBytes } })
 *   await db.query("select * from describe('France', 'q')")
 *
 * The first call for a set of options builds a database (PGlite.create,
 * CREATE EXTENSION pg_infer, the models, `setup`) and keeps a snapshot of its
 * data directory (dumpDataDir); every call, the first included, returns a new
 * PGlite restored from that snapshot (loadDataDir), which skips initdb. With
 * `cacheDir` the snapshot is also kept on disk, for the other processes of a
 * test run (vitest and node --test run each test file in its own process)
 * and later runs. See docs/testing.md.
 */
import { PGlite, type Extensions, type PGliteInterfaceExtensions } from '@electric-sql/pglite'
import { bundleUrl, createPgInfer, type PgInferOptions } from './index.js'
import type { CreateModelOptions, InferNamespace, ModelSource } from './namespace.js'

/** A model every database of a snapshot has, registered with db.infer.createModel. */
export interface TestModel {
  name: string
  /**
   * Bytes (the vindex's files by name, or a tar / tar.gz of them) are written
   * into the database and travel inside the snapshot; a string (a host
   * directory, URL, hf://) is stored as written and read again, lazily, by
   * each restored database.
   */
  source: ModelSource
  level?: CreateModelOptions['level']
}

export interface TestDbOptions<E extends Extensions = Extensions> {
  /** The model or models to register (none by default). */
  model?: TestModel | readonly TestModel[]
  /**
   * Other PGlite extensions every database loads, e.g. `{ vector }`. Their
   * SQL objects belong in `setup` (`CREATE EXTENSION vector`). The key
   * `infer` is pg_infer's.
   */
  extensions?: E
  /**
   * pg_infer's host options for every database (allowedHostDirectories,
   * host hooks, compute). They configure each instance and are not part of
   * the snapshot's key: the snapshot is built with those of its first call.
   */
  infer?: PgInferOptions
  /** Runs once, after the models, on the database the snapshot is taken of. */
  setup?: (db: TestDb<E>) => Promise<void>
  /**
   * A directory (Node only) where snapshots are kept as files, shared by
   * every process that names it. A file's name is a hash of what built it:
   * PGlite's version, pg_infer's bundle, the models (names, levels, the
   * string or a hash of the bytes), the other extensions' names, and
   * `cacheKey`. Remove the directory to rebuild.
   */
  cacheDir?: string
  /**
   * Part of the snapshot's key, standing for `setup` (calls with the same
   * key share a snapshot even with different setup functions). Required with
   * `cacheDir` and `setup`: a function's effect cannot be hashed, so change
   * the key when setup changes. Without it, setup is keyed by identity.
   */
  cacheKey?: string
}

/** A database from createTestDb: PGlite with db.infer and the other extensions' namespaces. */
export type TestDb<E extends Extensions = Extensions> = PGlite & {
  infer: InferNamespace
} & PGliteInterfaceExtensions<E>

/** How often this process built, loaded and restored snapshots (testDbStats()). */
export interface TestDbStats {
  /** snapshots built from a fresh database (PGlite.create, initdb, setup) */
  built: number
  /** snapshots read from cacheDir instead of built */
  loadedFromDisk: number
  /** databases restored from a snapshot (one per createTestDb call) */
  restored: number
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyOptions = TestDbOptions<any>

const stats: TestDbStats = { built: 0, loadedFromDisk: 0, restored: 0 }

/** This process's counters since it started (or since clearTestDbCache()). */
export function testDbStats(): TestDbStats {
  return { ...stats }
}

/** Snapshots of this process, by the key of their options. */
const snapshots = new Map<string, Promise<Blob>>()

/** Forgets this process's snapshots and zeroes testDbStats(); files in a cacheDir stay. */
export function clearTestDbCache(): void {
  snapshots.clear()
  stats.built = stats.loadedFromDisk = stats.restored = 0
}

/**
 * A new database with pg_infer created, the models registered and `setup`
 * run, restored from this process's snapshot for these options (built on
 * first use). Close it when the test is done (`await db.close()`).
 */
export async function createTestDb<E extends Extensions = {}>(
  options: TestDbOptions<E> = {},
): Promise<TestDb<E>> {
  const models = checkOptions(options)
  const snapshot = await snapshotFor(options, models)
  const db = await PGlite.create({ loadDataDir: snapshot, extensions: extensionsOf(options) })
  try {
    // A restored backend has not loaded pg_infer's library yet (CREATE
    // EXTENSION did, in a fresh one): its settings (infer.*) would be unknown
    // to SHOW and current_setting() until the first pg_infer function call.
    await db.query('select infer_version()')
  } catch (e) {
    await db.close()
    throw e
  }
  stats.restored++
  return db as unknown as TestDb<E>
}

/**
 * The snapshot createTestDb restores for these options (a tar of the data
 * directory, for `PGlite.create({ loadDataDir })`), built on first use.
 */
export async function testDbSnapshot<E extends Extensions>(
  options: TestDbOptions<E> = {},
): Promise<Blob> {
  return snapshotFor(options, checkOptions(options))
}

function snapshotFor(options: AnyOptions, models: TestModel[]): Promise<Blob> {
  const key = memoryKey(options, models)
  let snapshot = snapshots.get(key)
  if (!snapshot) {
    snapshot = options.cacheDir ? fromDiskOrBuild(options, models) : build(options, models)
    snapshots.set(key, snapshot)
    // a failed build is not remembered: the next call tries again
    snapshot.catch(() => snapshots.delete(key))
  }
  return snapshot
}

// ------------------------------------------------------------ transactions

/** What testTransaction needs of a database. */
export interface TransactionalDb {
  exec(sql: string): Promise<unknown>
  isInTransaction(): boolean
}

export interface TestTransaction {
  /** Rolls back what the test did (once; later calls do nothing). */
  rollback(): Promise<void>
}

/**
 * BEGIN now; rollback() undoes everything since, models created with
 * infer_create_model or db.infer.createModel included (pg_infer's registry
 * is transactional). For tests that share one database: begin in
 * beforeEach, roll back in afterEach.
 */
export async function testTransaction(db: TransactionalDb): Promise<TestTransaction> {
  if (db.isInTransaction())
    throw new Error(
      'pglite-infer/testing: testTransaction: the database is already in a transaction ' +
        '(an earlier test transaction not rolled back, or a BEGIN of the test)',
    )
  await db.exec('BEGIN')
  let done = false
  return {
    async rollback() {
      if (done) return
      done = true
      if (!db.isInTransaction())
        throw new Error(
          'pglite-infer/testing: the test ended its transaction itself (COMMIT or ROLLBACK): ' +
            'what it did after that was not rolled back',
        )
      await db.exec('ROLLBACK')
    },
  }
}

/** Runs fn inside a transaction that is rolled back afterwards, whether fn throws or not. */
export async function withRollback<T, D extends TransactionalDb>(
  db: D,
  fn: (db: D) => Promise<T>,
): Promise<T> {
  const tx = await testTransaction(db)
  let result: T
  try {
    result = await fn(db)
  } catch (e) {
    // the test's own error matters more than a failed rollback
    await tx.rollback().catch(() => undefined)
    throw e
  }
  await tx.rollback()
  return result
}

// ------------------------------------------------------------ building

function extensionsOf(options: AnyOptions): Extensions {
  return { ...options.extensions, infer: createPgInfer(options.infer) }
}

async function build(options: AnyOptions, models: TestModel[]): Promise<Blob> {
  const db = (await PGlite.create({ extensions: extensionsOf(options) })) as unknown as TestDb
  try {
    await db.exec('CREATE EXTENSION pg_infer')
    for (const m of models) {
      try {
        await db.infer.createModel(m.name, m.source, { level: m.level ?? 'browse' })
      } catch (e) {
        throw new Error(
          `pglite-infer/testing: registering model "${m.name}" failed: ${(e as Error).message}`,
          { cause: e },
        )
      }
    }
    if (options.setup) await options.setup(db)
    if (db.isInTransaction())
      throw new Error('pglite-infer/testing: setup left a transaction open; commit it or roll back')
    // a restored database then starts from a checkpoint, with no WAL to replay
    await db.exec('CHECKPOINT')
    const snapshot = await db.dumpDataDir('none')
    stats.built++
    return snapshot
  } finally {
    await db.close()
  }
}

async function fromDiskOrBuild(options: AnyOptions, models: TestModel[]): Promise<Blob> {
  const { mkdir, readFile, rename, writeFile, utimes } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const dir = options.cacheDir!
  const file = join(dir, `testdb-${await diskKey(options, models)}.tar`)
  try {
    const bytes = await readFile(file)
    const now = new Date()
    await utimes(file, now, now).catch(() => undefined)
    stats.loadedFromDisk++
    return new Blob([bytes])
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  const snapshot = await build(options, models)
  await mkdir(dir, { recursive: true })
  // another process may build the same snapshot at the same time: each
  // writes its own file and renames it into place, which is atomic
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await writeFile(tmp, new Uint8Array(await snapshot.arrayBuffer()))
  await rename(tmp, file)
  await pruneCacheDir(dir, file)
  return snapshot
}

/** Snapshots not used for a week go when a new one is written. */
async function pruneCacheDir(dir: string, keep: string): Promise<void> {
  const { readdir, stat, unlink } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const old = Date.now() - 7 * 24 * 3600 * 1000
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, name)
    if (path === keep || !/^testdb-[0-9a-f]+\.tar(\..*\.tmp)?$/.test(name)) continue
    const s = await stat(path).catch(() => undefined)
    if (s && s.mtimeMs < old) await unlink(path).catch(() => undefined)
  }
}

// ------------------------------------------------------------ options and keys

const MODEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/

function fail(message: string): never {
  throw new TypeError(`pglite-infer/testing: createTestDb: ${message}`)
}

/** The options checked, with the models as a list. */
function checkOptions(options: AnyOptions): TestModel[] {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    fail('options must be an object')
  const known = ['model', 'extensions', 'infer', 'setup', 'cacheDir', 'cacheKey']
  for (const k of Object.keys(options))
    if (!known.includes(k)) fail(`unknown option "${k}" (known: ${known.join(', ')})`)
  const list =
    options.model === undefined
      ? []
      : Array.isArray(options.model)
        ? options.model
        : [options.model]
  const names = new Set<string>()
  for (const m of list as unknown[]) {
    if (m === null || typeof m !== 'object')
      fail('model must be { name, source, level? } or a list of them')
    const { name, source, level } = m as Partial<TestModel>
    if (typeof name !== 'string' || !MODEL_NAME.test(name))
      fail(`model name must be 1-63 letters, digits, "_", "." or "-"; got ${JSON.stringify(name)}`)
    if (names.has(name)) fail(`model "${name}" is given twice`)
    names.add(name)
    if (
      typeof source !== 'string' &&
      !(source instanceof Uint8Array) &&
      !(typeof Blob !== 'undefined' && source instanceof Blob) &&
      !(source !== null && typeof source === 'object')
    )
      fail(`model "${name}": source must be a string, bytes, a Blob or the vindex's files by name`)
    if (typeof source === 'string' && source.length === 0) fail(`model "${name}": source is empty`)
    if (level !== undefined && !['browse', 'inference', 'all'].includes(level))
      fail(`model "${name}": level must be 'browse', 'inference' or 'all'; got ${String(level)}`)
  }
  const ext = options.extensions
  if (ext !== undefined) {
    if (ext === null || typeof ext !== 'object') fail('extensions must be an object')
    if ('infer' in ext) fail('extensions.infer is pg_infer\'s own key; configure it with "infer"')
  }
  if (options.infer !== undefined && (options.infer === null || typeof options.infer !== 'object'))
    fail('infer must be an object of pg_infer options')
  if (options.setup !== undefined && typeof options.setup !== 'function')
    fail('setup must be a function (db) => Promise<void>')
  if (options.cacheKey !== undefined && typeof options.cacheKey !== 'string')
    fail('cacheKey must be a string')
  if (options.cacheDir !== undefined) {
    if (typeof options.cacheDir !== 'string' || options.cacheDir === '')
      fail('cacheDir must be a directory path')
    if (typeof process === 'undefined' || !process.versions?.node)
      fail('cacheDir needs Node (the snapshot is kept in its file system)')
    if (options.setup && options.cacheKey === undefined)
      fail(
        'cacheDir with setup needs a cacheKey (a function cannot be hashed); change it when setup changes',
      )
  }
  return list as TestModel[]
}

/** Small ids for the objects a key cannot spell out (functions, extensions). */
const ids = new WeakMap<object, number>()
let nextId = 1
function idOf(o: object): number {
  let id = ids.get(o)
  if (id === undefined) ids.set(o, (id = nextId++))
  return id
}

/**
 * The in-process key: strings as written; bytes, extension objects and
 * setup (unless a cacheKey names it) by identity: the same objects in each
 * call share a snapshot.
 */
function memoryKey(options: AnyOptions, models: TestModel[]): string {
  return JSON.stringify({
    models: models.map((m) => [
      m.name,
      m.level ?? 'browse',
      typeof m.source === 'string' ? m.source : `#${idOf(m.source as object)}`,
    ]),
    extensions: Object.entries((options.extensions ?? {}) as Extensions).map(([k, e]) => [
      k,
      idOf(e),
    ]),
    // a cacheKey names what setup does: the same key, the same snapshot
    setup: options.cacheKey === undefined && options.setup ? idOf(options.setup) : null,
    cacheDir: options.cacheDir ?? null,
    cacheKey: options.cacheKey ?? null,
  })
}

async function sha256(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

async function sourceHash(source: ModelSource): Promise<string> {
  if (typeof source === 'string') return `path:${source}`
  if (source instanceof Uint8Array) return `bytes:${await sha256(source)}`
  if (typeof Blob !== 'undefined' && source instanceof Blob)
    return `bytes:${await sha256(new Uint8Array(await source.arrayBuffer()))}`
  const entries = source instanceof Map ? [...source] : Object.entries(source)
  const parts = await Promise.all(
    entries
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(async ([n, b]) => `${n}=${await sha256(b)}`),
  )
  return `files:${await sha256(parts.join('\n'))}`
}

/** The key of a cacheDir file: what the snapshot's bytes depend on. */
async function diskKey(options: AnyOptions, models: TestModel[]): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  const { createRequire } = await import('node:module')
  const { dirname, join } = await import('node:path')
  // PGlite exports no package.json: find it next to its dist/
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite')
  const pglite = await readFile(join(dirname(entry), '..', 'package.json'), 'utf8').then(
    (s) => (JSON.parse(s) as { version: string }).version,
  )
  const material = JSON.stringify({
    format: 1,
    pglite,
    pgInfer: await sha256(new Uint8Array(await readFile(bundleUrl))),
    models: await Promise.all(
      models.map(async (m) => [m.name, m.level ?? 'browse', await sourceHash(m.source)]),
    ),
    extensions: Object.entries((options.extensions ?? {}) as Extensions).map(([k, e]) => [
      k,
      e instanceof URL ? e.href : e.name,
    ]),
    cacheKey: options.cacheKey ?? null,
  })
  return (await sha256(material)).slice(0, 24)
}
