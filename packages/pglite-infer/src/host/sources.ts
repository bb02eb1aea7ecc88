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
  isDir(mode: number): boolean
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
    try {
      return this.fs.readFile(`${this.where}/${name}`)
    } catch {
      return undefined
    }
  }
}

type NodeFs = typeof import('node:fs')

/** A directory on the host's own file system (Node, Electron). */
export class HostFiles implements SyncFiles {
  constructor(
    private readonly fs: NodeFs,
    readonly where: string,
  ) {
    let isDir = false
    try {
      isDir = fs.statSync(where).isDirectory()
    } catch {
      isDir = false
    }
    if (!isDir) throw new HostError(`no vindex directory "${where}"`, '58P01')
  }
  read(name: string): Uint8Array | undefined {
    try {
      const b = this.fs.readFileSync(`${this.where}/${name}`)
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
  }
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
