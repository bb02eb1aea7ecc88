/**
 * Test-side reimplementations that do not use the package: a minimal
 * safetensors parser and a float64 down_meta. Tests compare the package's
 * output against these.
 */
import { readFileSync } from 'node:fs'

export interface RawTensor {
  dtype: string
  shape: number[]
  /** Values as float64, row-major. */
  values: Float64Array
}

export function readSafetensorsF64(path: string): Map<string, RawTensor> {
  const buf = readFileSync(path)
  const headerLen = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >
  const out = new Map<string, RawTensor>()
  for (const [name, m] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const start = 8 + headerLen + m.data_offsets[0]
    const n = m.shape.reduce((a, b) => a * b, 1)
    const values = new Float64Array(n)
    for (let i = 0; i < n; i++) values[i] = readValue(buf, m.dtype, start, i)
    out.set(name, { dtype: m.dtype, shape: m.shape, values })
  }
  return out
}

function readValue(buf: Buffer, dtype: string, start: number, i: number): number {
  if (dtype === 'F32') return buf.readFloatLE(start + 4 * i)
  const h = buf.readUInt16LE(start + 2 * i)
  if (dtype === 'BF16') {
    const b = Buffer.alloc(4)
    b.writeUInt32LE((h << 16) >>> 0)
    return b.readFloatLE(0)
  }
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const f = h & 0x3ff
  if (e === 0) return s * f * 2 ** -24
  return s * (1 + f / 1024) * 2 ** (e - 15)
}

/**
 * Top-k token ids of E @ down[:, f] in float64, E = [vocab x hidden],
 * down given as nn.Linear [hidden x features] (or feature-major with
 * `featureMajor`). Ties resolve to the lower id, like a stable sort.
 */
export function downMetaF64(
  embed: RawTensor,
  down: RawTensor,
  feature: number,
  k: number,
  featureMajor = false,
): { ids: number[]; logits: number[] } {
  const [vocab, hidden] = embed.shape as [number, number]
  const features = featureMajor ? down.shape[0]! : down.shape[1]!
  const d = new Float64Array(hidden)
  for (let h = 0; h < hidden; h++) {
    d[h] = featureMajor ? down.values[feature * hidden + h]! : down.values[h * features + feature]!
  }
  const scores: [number, number][] = []
  for (let v = 0; v < vocab; v++) {
    let s = 0
    for (let h = 0; h < hidden; h++) s += embed.values[v * hidden + h]! * d[h]!
    scores.push([v, s])
  }
  scores.sort((a, b) => b[1] - a[1] || a[0] - b[0])
  const top = scores.slice(0, k)
  return { ids: top.map((t) => t[0]), logits: top.map((t) => t[1]) }
}
