/**
 * Half-precision conversions. Everything here is pure arithmetic on typed
 * arrays so it runs the same in Node and browsers.
 */

/** Storage dtypes a vindex may use for its float files. */
export type StorageDtype = 'f16' | 'f32'

/** Dtypes the safetensors reader can decode. */
export type SourceDtype = 'F32' | 'F16' | 'BF16'

export function bytesPerElement(dtype: StorageDtype | SourceDtype): number {
  return dtype === 'f32' || dtype === 'F32' ? 4 : 2
}

// Shared scratch for bit reinterpretation; single-threaded use only.
const f32Scratch = new Float32Array(1)
const u32Scratch = new Uint32Array(f32Scratch.buffer)

/** IEEE half -> float (exact: every half is representable as a float). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24 // subnormal or zero
  if (exp === 0x1f) return frac ? NaN : sign * Infinity
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

/** float -> IEEE half with round-to-nearest-even (what numpy/torch do). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value
  const x = u32Scratch[0]!
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0) // Inf / NaN
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00 // overflow -> Inf
  if (e <= 0) {
    // Result is subnormal (or underflows to zero): shift the implicit 1 in.
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && half & 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // Carry from rounding may bump the exponent; that is still correct.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++
  return sign | half
}

/** Lookup table for f16 -> f32: 65536 entries make decoding a single load. */
let f16Table: Float32Array | undefined
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536)
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i)
  }
  return f16Table
}

/** Round a float to the nearest f16 value (as a float). */
export function roundToF16(value: number): number {
  return f16Lut()[f32ToF16Bits(value)]!
}

/**
 * Decode little-endian raw tensor bytes of the given dtype into `out` (f32).
 * `bytes` need not be aligned: the copy into an aligned buffer happens here.
 */
export function decodeToF32(
  bytes: Uint8Array,
  dtype: SourceDtype | StorageDtype,
  out: Float32Array = new Float32Array(bytes.byteLength / bytesPerElement(dtype)),
): Float32Array {
  const n = out.length
  if (dtype === 'F32' || dtype === 'f32') {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes.subarray(0, n * 4))
    return out
  }
  const u16 = alignedU16(bytes, n)
  if (dtype === 'BF16') {
    // bf16 is the top half of an f32: shift into place through a u32 view.
    const u32 = new Uint32Array(out.buffer, out.byteOffset, n)
    for (let i = 0; i < n; i++) u32[i] = u16[i]! << 16
    return out
  }
  const lut = f16Lut()
  for (let i = 0; i < n; i++) out[i] = lut[u16[i]!]!
  return out
}

/** Encode f32 values to the storage dtype's little-endian bytes. */
export function encodeFromF32(values: Float32Array, dtype: StorageDtype): Uint8Array {
  if (dtype === 'f32') {
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  }
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!)
  return new Uint8Array(out.buffer)
}

function alignedU16(bytes: Uint8Array, n: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n)
  return new Uint16Array(bytes.slice(0, n * 2).buffer)
}

/** This package writes little-endian bytes with typed arrays: refuse big-endian hosts. */
export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('pglite-infer vindex requires a little-endian host')
  }
}
