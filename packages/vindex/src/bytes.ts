/**
 * Where bytes come from. A ByteSource is one file (local, remote, or in
 * memory) read by ranges, so large checkpoints are never loaded whole.
 */
export interface ByteSource {
  /** Name used in error messages (file name relative to its directory). */
  readonly name: string
  size(): Promise<number>
  read(offset: number, length: number): Promise<Uint8Array>
}

/** A directory of named files (a checkpoint or a vindex). */
export interface FileSet {
  /** Opens a file for ranged reads; undefined when it does not exist. */
  open(name: string): Promise<ByteSource | undefined>
}

export class MemoryByteSource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {}
  async size(): Promise<number> {
    return this.bytes.byteLength
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.subarray(offset, Math.min(offset + length, this.bytes.byteLength))
  }
}

/** In-memory file set, e.g. a vindex downloaded as a bundle or built in a test. */
export class MemoryFileSet implements FileSet {
  private readonly files: Map<string, Uint8Array>
  constructor(files: Map<string, Uint8Array> | Record<string, Uint8Array>) {
    this.files = files instanceof Map ? files : new Map(Object.entries(files))
  }
  async open(name: string): Promise<ByteSource | undefined> {
    const bytes = this.files.get(name)
    return bytes ? new MemoryByteSource(name, bytes) : undefined
  }
}

/** Reads a whole source (small files: JSON, tokenizer). */
export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, await src.size())
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder().decode(await readAll(src))
}
