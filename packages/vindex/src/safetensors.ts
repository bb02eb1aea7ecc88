import type { ByteSource, FileSet } from './bytes.js'
import { readText } from './bytes.js'
import { bytesPerElement, decodeToF32, type SourceDtype } from './dtype.js'
import { VindexError } from './errors.js'

/** One tensor's location: which file, its dtype and shape, its byte range. */
export interface TensorInfo {
  /** Tensor name exactly as stored in the checkpoint. */
  name: string
  dtype: SourceDtype
  shape: number[]
  /** Absolute byte offset of the data within `file`. */
  offset: number
  byteLength: number
  file: string
}

const SUPPORTED: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16'])
/** Largest header we accept: real ones are a few hundred KiB. */
const MAX_HEADER = 100 * 1024 * 1024

/**
 * Parses the header of one safetensors file: u64 LE header length, JSON
 * header, then data. Only the header bytes are read.
 */
export async function readSafetensorsHeader(src: ByteSource): Promise<TensorInfo[]> {
  const fileSize = await src.size()
  if (fileSize < 8) throw bad(src.name, 'file shorter than the 8-byte header length', 8, fileSize)
  const lenBytes = await src.read(0, 8)
  const headerLen = Number(
    new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true),
  )
  if (headerLen > MAX_HEADER || 8 + headerLen > fileSize) {
    throw bad(src.name, 'header length exceeds the file', `<= ${fileSize - 8}`, headerLen)
  }
  const header = parseHeaderJson(src.name, await src.read(8, headerLen))
  const dataStart = 8 + headerLen
  const tensors: TensorInfo[] = []
  for (const [name, meta] of Object.entries(header)) {
    if (name === '__metadata__') continue
    tensors.push(tensorInfo(src.name, name, meta, dataStart, fileSize))
  }
  return tensors
}

function parseHeaderJson(file: string, bytes: Uint8Array): Record<string, unknown> {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch {
    // fall through to the typed error
  }
  throw new VindexError('BAD_SAFETENSORS', 'header is not a JSON object', { file })
}

function tensorInfo(
  file: string,
  name: string,
  meta: unknown,
  dataStart: number,
  fileSize: number,
): TensorInfo {
  const m = meta as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
  const dtype = String(m.dtype)
  const shape = m.shape as number[]
  const offs = m.data_offsets as [number, number]
  if (!Array.isArray(shape) || !Array.isArray(offs) || offs.length !== 2) {
    throw new VindexError('BAD_SAFETENSORS', `tensor ${name} has a malformed header entry`, {
      file,
    })
  }
  const elements = shape.reduce((a, b) => a * b, 1)
  const info: TensorInfo = {
    name,
    dtype: dtype as SourceDtype,
    shape,
    offset: dataStart + offs[0],
    byteLength: offs[1] - offs[0],
    file,
  }
  if (SUPPORTED.has(dtype) && info.byteLength !== elements * bytesPerElement(info.dtype)) {
    throw bad(
      file,
      `tensor ${name} byte length does not match its shape`,
      elements * bytesPerElement(info.dtype),
      info.byteLength,
    )
  }
  if (info.offset + info.byteLength > fileSize) {
    throw new VindexError('TRUNCATED', `tensor ${name} extends past the end of the file`, {
      file,
      expected: info.offset + info.byteLength,
      found: fileSize,
      hint: 're-download the checkpoint',
    })
  }
  return info
}

function bad(file: string, msg: string, expected: unknown, found: unknown): VindexError {
  return new VindexError('BAD_SAFETENSORS', msg, { file, expected, found })
}

/** Prefixes HuggingFace puts in front of the architecture's own names. */
const PREFIXES = ['model.language_model.', 'language_model.model.', 'transformer.', 'model.']

/** Strips a wrapper prefix so every family's names start at "layers." / "h.". */
export function normalizeTensorName(name: string): string {
  for (const p of PREFIXES) if (name.startsWith(p)) return name.slice(p.length)
  return name
}

/**
 * A checkpoint's tensors across one or many safetensors files, addressed by
 * normalized name. Reads are ranged: nothing is loaded until asked for.
 */
export class SafetensorsCheckpoint {
  /** Tensor bytes read so far (for throughput reporting). */
  bytesRead = 0

  private constructor(
    private readonly sources: Map<string, ByteSource>,
    private readonly byName: Map<string, TensorInfo>,
  ) {}

  /**
   * Opens `model.safetensors`, or every shard listed in
   * `model.safetensors.index.json` when the checkpoint is sharded.
   */
  static async open(files: FileSet): Promise<SafetensorsCheckpoint> {
    const shardNames = await listShards(files)
    const sources = new Map<string, ByteSource>()
    const byName = new Map<string, TensorInfo>()
    for (const shard of shardNames) {
      const src = await files.open(shard)
      if (!src) {
        throw new VindexError('MISSING_FILE', 'safetensors shard is missing', {
          file: shard,
          hint: 'download every shard named in model.safetensors.index.json',
        })
      }
      sources.set(shard, src)
      for (const t of await readSafetensorsHeader(src)) byName.set(normalizeTensorName(t.name), t)
    }
    return new SafetensorsCheckpoint(sources, byName)
  }

  /** Normalized names of every tensor. */
  names(): string[] {
    return [...this.byName.keys()]
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name)
    if (!t) {
      throw new VindexError('MISSING_TENSOR', `tensor ${name} is not in the checkpoint`, {
        file: 'model.safetensors',
        hint: 'the checkpoint does not match its config.json',
      })
    }
    if (!SUPPORTED.has(t.dtype)) {
      throw new VindexError('UNKNOWN_DTYPE', `tensor ${t.name} has an unsupported dtype`, {
        file: t.file,
        expected: 'F32, F16 or BF16',
        found: t.dtype,
      })
    }
    return t
  }

  /** Raw bytes of `count` rows starting at `row` (rows = leading dimension). */
  async readRowBytes(name: string, row: number, count: number): Promise<Uint8Array> {
    const t = this.info(name)
    const rowBytes = t.byteLength / (t.shape[0] ?? 1)
    const src = this.sources.get(t.file)!
    const bytes = await src.read(t.offset + row * rowBytes, count * rowBytes)
    this.bytesRead += bytes.byteLength
    if (bytes.byteLength !== count * rowBytes) {
      throw new VindexError('TRUNCATED', `short read of tensor ${t.name}`, {
        file: t.file,
        expected: count * rowBytes,
        found: bytes.byteLength,
      })
    }
    return bytes
  }

  /** Rows [row, row+count) decoded to f32, written into `out` if given. */
  async readRowsF32(
    name: string,
    row: number,
    count: number,
    out?: Float32Array,
  ): Promise<Float32Array> {
    const t = this.info(name)
    const bytes = await this.readRowBytes(name, row, count)
    return decodeToF32(
      bytes,
      t.dtype,
      out ?? new Float32Array(bytes.byteLength / bytesPerElement(t.dtype)),
    )
  }

  /** A whole tensor decoded to f32. Use for tensors that fit comfortably in memory. */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.info(name)
    return this.readRowsF32(name, 0, t.shape[0] ?? 1)
  }
}

async function listShards(files: FileSet): Promise<string[]> {
  const index = await files.open('model.safetensors.index.json')
  if (!index) {
    if (await files.open('model.safetensors')) return ['model.safetensors']
    throw new VindexError('MISSING_FILE', 'no model.safetensors or model.safetensors.index.json', {
      file: 'model.safetensors',
      hint: 'point at a HuggingFace model directory with safetensors weights',
    })
  }
  let map: unknown
  try {
    map = (JSON.parse(await readText(index)) as { weight_map?: unknown }).weight_map
  } catch {
    throw new VindexError('BAD_JSON', 'not valid JSON', { file: index.name })
  }
  if (!map || typeof map !== 'object') {
    throw new VindexError('BAD_JSON', 'missing "weight_map" object', { file: index.name })
  }
  return [...new Set(Object.values(map as Record<string, string>))].sort()
}
