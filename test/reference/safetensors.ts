// A tiny, independent safetensors reader for the float64 reference
// implementation. Format (https://huggingface.co/docs/safetensors):
//   8 bytes   little-endian u64 N = length of the JSON header
//   N bytes   JSON: { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }
//   rest      raw little-endian tensor bytes; offsets are relative to the end of the header
// Every tensor is returned widened to float64 (exactly: F32, F16 and BF16 all
// convert to float64 without rounding).

import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

export interface TensorF64 {
  name: string
  dtype: string
  shape: number[]
  data: Float64Array
}

interface HeaderEntry {
  dtype: string
  shape: number[]
  data_offsets: [number, number]
}

const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 }

/** IEEE 754 binary16 -> number (exact). */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24 // zero / subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

/** bfloat16 -> number (exact): the upper 16 bits of a float32. */
export function bf16ToNumber(h: number): number {
  const buf = new DataView(new ArrayBuffer(4))
  buf.setUint32(0, (h & 0xffff) << 16)
  return buf.getFloat32(0)
}

export class SafetensorsFile {
  readonly path: string
  readonly metadata: Record<string, string>
  private readonly bytes: Buffer
  private readonly dataStart: number
  private readonly entries: Map<string, HeaderEntry>

  constructor(path: string) {
    this.path = path
    this.bytes = readFileSync(path)
    if (this.bytes.length < 8) throw new Error(`${path}: too short for a safetensors file`)
    const n = this.bytes.readBigUInt64LE(0)
    if (n > BigInt(this.bytes.length - 8))
      throw new Error(`${path}: header length ${n} past end of file`)
    const headerLen = Number(n)
    const header = JSON.parse(this.bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<
      string,
      unknown
    >
    this.dataStart = 8 + headerLen
    this.metadata = (header['__metadata__'] as Record<string, string> | undefined) ?? {}
    this.entries = new Map()
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue
      const e = v as HeaderEntry
      const size = BYTES[e.dtype]
      if (size === undefined) continue // integer / bool / fp8 tensors are not needed here
      const count = e.shape.reduce((a, b) => a * b, 1)
      const [begin, end] = e.data_offsets
      if (end - begin !== count * size)
        throw new Error(`${path}: ${name}: byte length does not match shape`)
      if (this.dataStart + end > this.bytes.length)
        throw new Error(`${path}: ${name}: data past end of file`)
      this.entries.set(name, e)
    }
  }

  names(): string[] {
    return [...this.entries.keys()]
  }

  has(name: string): boolean {
    return this.entries.has(name)
  }

  shape(name: string): number[] {
    const e = this.entries.get(name)
    if (!e) throw new Error(`${this.path}: no tensor ${name}`)
    return [...e.shape]
  }

  /** The tensor widened to float64, row-major. */
  get(name: string): TensorF64 {
    const e = this.entries.get(name)
    if (!e) throw new Error(`${this.path}: no tensor ${name}`)
    const count = e.shape.reduce((a, b) => a * b, 1)
    const base = this.dataStart + e.data_offsets[0]
    const out = new Float64Array(count)
    const b = this.bytes
    switch (e.dtype) {
      case 'F64':
        for (let i = 0; i < count; i++) out[i] = b.readDoubleLE(base + 8 * i)
        break
      case 'F32':
        for (let i = 0; i < count; i++) out[i] = b.readFloatLE(base + 4 * i)
        break
      case 'F16':
        for (let i = 0; i < count; i++) out[i] = f16ToNumber(b.readUInt16LE(base + 2 * i))
        break
      case 'BF16':
        for (let i = 0; i < count; i++) out[i] = bf16ToNumber(b.readUInt16LE(base + 2 * i))
        break
      default:
        throw new Error(`${this.path}: ${name}: unsupported dtype ${e.dtype}`)
    }
    return { name, dtype: e.dtype, shape: [...e.shape], data: out }
  }
}

/**
 * All tensors of a HuggingFace checkpoint directory: `model.safetensors`, or
 * the shards listed in `model.safetensors.index.json`.
 */
export class Checkpoint {
  private readonly byName = new Map<string, SafetensorsFile>()

  constructor(dir: string) {
    const single = join(dir, 'model.safetensors')
    const index = join(dir, 'model.safetensors.index.json')
    const files: SafetensorsFile[] = []
    if (existsSync(single)) files.push(new SafetensorsFile(single))
    else if (existsSync(index)) {
      const map = (
        JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }
      ).weight_map
      for (const shard of new Set(Object.values(map)))
        files.push(new SafetensorsFile(join(dir, shard)))
    } else throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`)
    for (const f of files) for (const n of f.names()) this.byName.set(n, f)
  }

  names(): string[] {
    return [...this.byName.keys()]
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  get(name: string): TensorF64 {
    const f = this.byName.get(name)
    if (!f) throw new Error(`checkpoint has no tensor ${name}`)
    return f.get(name)
  }

  /** The first of `names` that exists (checkpoints differ in prefixes). */
  getAny(names: string[]): TensorF64 {
    for (const n of names) if (this.byName.has(n)) return this.get(n)
    throw new Error(`checkpoint has none of ${names.join(', ')}`)
  }
}
