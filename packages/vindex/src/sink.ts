import { sha256Hex } from './sha256.js'

/** Where an extraction writes files. Each file is written once, in order. */
export interface OutputSink {
  create(name: string): Promise<OutputFile>
}

export interface WrittenFile {
  name: string
  size: number
  sha256: string
}

export interface OutputFile {
  write(bytes: Uint8Array): Promise<void>
  close(): Promise<WrittenFile>
}

/** Collects files in memory (tests, browsers); `files` maps name -> bytes. */
export class MemorySink implements OutputSink {
  readonly files = new Map<string, Uint8Array>()
  async create(name: string): Promise<OutputFile> {
    const chunks: Uint8Array[] = []
    return {
      write: async (bytes) => {
        chunks.push(bytes.slice())
      },
      close: async () => {
        const all = concat(chunks)
        this.files.set(name, all)
        return { name, size: all.byteLength, sha256: await sha256Hex(all) }
      },
    }
  }
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0))
  let o = 0
  for (const c of chunks) {
    out.set(c, o)
    o += c.byteLength
  }
  return out
}
