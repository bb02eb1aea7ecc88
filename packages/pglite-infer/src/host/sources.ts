import { HostError } from './types.js'

/**
 * Synchronous access to the files of one vindex: a directory on the host
 * (Node), a directory in the database's own file system, or bytes in memory.
 * Host hooks run inside a SQL call and cannot await, so every source is read
 * synchronously.
 */
export interface SyncFiles {
  /** Where the files are, for messages. */
  readonly where: string
  /** A whole file, or undefined when it does not exist. */
  read(name: string): Uint8Array | undefined
}

/** The emscripten FS calls the host uses (PGlite's Module.FS). */
export interface EmscriptenFS {
  readFile(path: string): Uint8Array
  stat(path: string): { mode: number }
  lstat(path: string): { mode: number }
  isDir(mode: number): boolean
  isFile(mode: number): boolean
}

/**
 * A vindex names its files (index.json's weights[].file, ...): each must be
 * a plain file name inside the vindex directory, never a path.
 */
export function checkFileName(name: string, where: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/.test(name))
    throw new HostError(
      `${where}: the vindex names a file "${name.slice(0, 80)}" that is not a plain file name ` +
        'inside its directory; re-extract the vindex',
      'XX001',
    )
}

function notRegular(where: string, name: string): HostError {
  return new HostError(
    `${where}/${name} is not a regular file (a link, a directory or a device); ` +
      'a vindex holds plain files only',
    'XX001',
  )
}

export class MemoryFiles implements SyncFiles {
  constructor(
    readonly where: string,
    private readonly files: ReadonlyMap<string, Uint8Array>,
  ) {}
  read(name: string): Uint8Array | undefined {
    return this.files.get(name)
  }
}

/** A directory in the database's file system; relative paths start at PGDATA. */
export class DatabaseFiles implements SyncFiles {
  constructor(
    private readonly fs: EmscriptenFS,
    readonly where: string,
  ) {
    let isDir = false
    try {
      isDir = fs.isDir(fs.stat(where).mode)
    } catch {
      isDir = false
    }
    if (!isDir)
      throw new HostError(`no vindex directory "${where}" in the database's file system`, '58P01')
  }
  read(name: string): Uint8Array | undefined {
    checkFileName(name, this.where)
    const path = `${this.where}/${name}`
    let mode: number
    try {
      mode = this.fs.lstat(path).mode
    } catch {
      return undefined
    }
    if (!this.fs.isFile(mode)) throw notRegular(this.where, name)
    return this.fs.readFile(path)
  }
}

type NodeFs = typeof import('node:fs')

/**
 * A directory on the host's own file system (Node, Electron), inside one of
 * the directories the embedding application allows (PgInferOptions
 * .allowedHostDirectories). Files are read only when they are regular files
 * in that directory: no links (which could point anywhere), no FIFOs or
 * devices (which could block the process forever).
 */
export class HostFiles implements SyncFiles {
  constructor(
    private readonly fs: NodeFs,
    readonly where: string,
    allowed: readonly string[] | 'any',
  ) {
    if (allowed !== 'any') confineToRoots(fs, where, allowed)
    let isDir = false
    try {
      isDir = fs.statSync(where).isDirectory()
    } catch {
      isDir = false
    }
    if (!isDir) throw new HostError(`no vindex directory "${where}"`, '58P01')
  }
  read(name: string): Uint8Array | undefined {
    checkFileName(name, this.where)
    const path = `${this.where}/${name}`
    let st: import('node:fs').Stats
    try {
      st = this.fs.lstatSync(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
    if (!st.isFile()) throw notRegular(this.where, name)
    const b = this.fs.readFileSync(path)
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
  }
}

/** `path` with "." and ".." resolved lexically (absolute in, absolute out). */
export function normalizeAbsolute(path: string): string {
  const parts: string[] = []
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') parts.pop()
    else parts.push(part)
  }
  return `/${parts.join('/')}`
}

function inside(path: string, root: string): boolean {
  const r = root === '/' ? '/' : root.replace(/\/+$/, '')
  return path === r || path.startsWith(r === '/' ? '/' : `${r}/`)
}

/**
 * Refuses a host directory outside the allowed roots, first by its name
 * (before touching the file system, so the refusal says nothing about what
 * exists there), then by its real path (a link inside a root that points
 * out of it is refused too).
 */
function confineToRoots(fs: NodeFs, where: string, roots: readonly string[]): void {
  const refuse = (): HostError =>
    new HostError(
      `model source "${where}" is outside the host directories this application allows`,
      '42501',
    )
  const lexical = normalizeAbsolute(where)
  const matching = roots.filter((r) => inside(lexical, normalizeAbsolute(r)))
  if (matching.length === 0) throw refuse()
  let real: string
  try {
    real = fs.realpathSync(lexical)
  } catch {
    return // missing: the caller reports "no vindex directory" for a path inside a root
  }
  const ok = matching.some((r) => {
    try {
      return inside(real, fs.realpathSync(normalizeAbsolute(r)))
    } catch {
      return false
    }
  })
  if (!ok) throw refuse()
}

/**
 * A relative model source, resolved inside infer.data_directory. Paths that
 * climb out of it with ".." are refused: a SQL caller must not read other
 * files of the database (or beyond) by naming them as a model.
 */
export function resolveInDataDirectory(source: string, dataDirectory: string): string {
  const parts: string[] = []
  for (const part of source.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (parts.length === 0)
        throw new HostError(
          `source "${source}" escapes infer.data_directory ("${dataDirectory}")`,
          '42501',
        )
      parts.pop()
    } else parts.push(part)
  }
  if (parts.length === 0)
    throw new HostError(`source "${source}" names no file inside infer.data_directory`, '22023')
  return `${dataDirectory.replace(/\/+$/, '')}/${parts.join('/')}`
}

let nodeFs: NodeFs | null | undefined

/** node:fs when running in Node (or Electron's main process), else null. */
export function loadNodeFs(): NodeFs | null {
  if (nodeFs !== undefined) return nodeFs
  nodeFs = null
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process
  if (proc?.versions?.node) {
    const getBuiltin = (proc as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule
    nodeFs = (getBuiltin?.('node:fs') as NodeFs | undefined) ?? null
  }
  return nodeFs
}
