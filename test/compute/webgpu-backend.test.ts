/// <reference types="@webgpu/types" />
// The WebGPU backend on its own (no PGlite), on whatever adapter Dawn finds
// (lavapipe in CI): top-k sets and order equal a reference with C's tie rule
// on matrices full of exact ties, with and without shader-f16, with matrices
// split into parts by a low limit; f16 subnormal fix-ups give exact scores;
// limits, a lost device and a missing adapter are clear errors.
import { compareHits, ComputeError, type GateLayer, type Hit } from '@pglite-infer/compute'
import {
  WebGpuBackend,
  createNodeWebGpuBackend,
  isSoftwareAdapter,
} from '@pglite-infer/compute/webgpu'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { webgpuAvailable } from '../helpers/webgpu.js'

const gpu = await webgpuAvailable('webgpu-backend.test.ts')
const hidden = 16
const rows = [40, 33, 2100]

/** Rows drawn from a few distinct vectors, so many scores tie exactly (f16-exact values). */
function tiedLayers(dtype: 'f32' | 'f16'): GateLayer[] {
  const basis = [1, -1, 0.5, 2, -2].map((s) =>
    Float32Array.from({ length: hidden }, (_, i) => (i % 3 === 0 ? s : s / 4)),
  )
  return rows.map((n, l) => {
    const data = new Float32Array(n * hidden)
    for (let r = 0; r < n; r++) data.set(basis[(r * 7 + l) % basis.length]!, r * hidden)
    if (dtype === 'f32') return { rows: n, hidden, dtype, data }
    return { rows: n, hidden, dtype, data: toHalf(data) }
  })
}

function toHalf(x: Float32Array): Uint16Array {
  // the test values are exact halves: sign, exponent, 10-bit mantissa
  return Uint16Array.from(x, (v) => {
    if (v === 0) return 0
    const sign = v < 0 ? 0x8000 : 0
    const a = Math.abs(v)
    const e = Math.floor(Math.log2(a))
    return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024)
  })
}

function reference(
  q: Float32Array,
  k: number,
  perLayerK: number,
  rank: 'abs' | 'signed',
  positiveOnly: boolean,
): Hit[] {
  const all: Hit[] = []
  tiedLayers('f32').forEach((layer, l) => {
    const data = layer.data as Float32Array
    const hits: Hit[] = []
    for (let r = 0; r < layer.rows; r++) {
      let s = 0
      for (let i = 0; i < hidden; i++) s += data[r * hidden + i]! * q[i]!
      s = Math.fround(s)
      if (!positiveOnly || s > 0) hits.push({ layer: l, feature: r, score: s })
    }
    hits.sort((a, b) => compareHits(a, b, rank))
    all.push(...(perLayerK > 0 ? hits.slice(0, perLayerK) : hits))
  })
  return all.sort((a, b) => compareHits(a, b, rank)).slice(0, k)
}

const variants = [
  ['f32', {}],
  ['f16', {}],
  ['f16', { shaderF16: false }],
  // parts of 7 rows of f32 (64 bytes each)
  ['f32', { maxStorageBufferBindingSize: 7 * 64 + 2 }],
] as const

const backends: WebGpuBackend[] = []
beforeAll(async () => {
  if (!gpu) return
  for (const [dtype, opts] of variants) {
    const b = await createNodeWebGpuBackend(opts)
    await b.loadGate('t', tiedLayers(dtype))
    backends.push(b)
  }
})
afterAll(async () => {
  for (const b of backends) await b.dispose()
})

describe.skipIf(!gpu)('WebGpuBackend.gateTopK', () => {
  const q = Float32Array.from({ length: hidden }, (_, i) => (i % 2 ? 0.5 : 1))
  const cases = [
    [12, 0, 'abs', false],
    [12, 5, 'abs', false],
    [50, 50, 'signed', true],
    [7, 3, 'signed', false],
    [1500, 0, 'abs', false],
  ] as const
  it.each(
    variants.flatMap((v, i) => cases.map((c) => [i, v[0], JSON.stringify(v[1]), ...c] as const)),
  )(
    'backend %i (%s %s): k %i, per layer %i, %s, positive only %s',
    async (i, _d, _o, k, perLayerK, rank, pos) => {
      const r = await backends[i]!.gateTopK({
        model: 't',
        queries: Float32Array.from([...q, ...q.map((x) => -x)]),
        nq: 2,
        perLayerK,
        k,
        rank,
        positiveOnly: pos,
      })
      for (let j = 0; j < 2; j++) {
        const want = reference(j === 0 ? q : q.map((x) => -x), k, perLayerK, rank, pos)
        const got = Array.from({ length: r.counts[j]! }, (_, h) => ({
          layer: r.layers[j * k + h]!,
          feature: r.features[j * k + h]!,
          score: r.scores[j * k + h]!,
        }))
        expect(got.map((h) => [h.layer, h.feature])).toEqual(want.map((h) => [h.layer, h.feature]))
        got.forEach((h, n) => expect(h.score).toBeCloseTo(want[n]!.score, 4))
      }
    },
  )

  it('masks layers', async () => {
    const r = await backends[0]!.gateTopK({
      model: 't',
      queries: q,
      nq: 1,
      layers: Uint8Array.of(0, 1, 0),
      perLayerK: 0,
      k: 10,
      rank: 'abs',
      positiveOnly: false,
    })
    expect(r.counts[0]).toBe(10)
    expect(new Set(r.layers)).toEqual(new Set([1]))
  })

  it('puts f16 subnormal fix-ups back exactly', async () => {
    const data = new Uint16Array(2 * hidden)
    data[0] = 0x3c00
    data[hidden + 2] = 0x3c00
    const fixups = {
      rows: Int32Array.of(0),
      cols: Int32Array.of(1),
      values: Float32Array.of(2 ** -20),
    }
    const b = backends[1]!
    await b.loadGate('f', [{ rows: 2, hidden, dtype: 'f16', data, fixups }])
    const query = new Float32Array(hidden)
    query[1] = 2 ** 10
    const r = await b.gateTopK({
      model: 'f',
      queries: query,
      nq: 1,
      perLayerK: 0,
      k: 1,
      rank: 'abs',
      positiveOnly: false,
    })
    expect([r.features[0], r.scores[0]]).toEqual([0, 2 ** -10])
  })

  it('a row larger than the binding limit is an error naming the limit', async () => {
    const b = await createNodeWebGpuBackend({ maxStorageBufferBindingSize: 60 })
    try {
      const err = await b.loadGate('t', tiedLayers('f32')).catch((e: ComputeError) => e)
      expect(err).toBeInstanceOf(ComputeError)
      expect((err as ComputeError).sqlstate).toBe('54000')
      expect((err as ComputeError).message).toMatch(/maxStorageBufferBindingSize \(60 bytes\)/)
      const err2 = await (
        await createNodeWebGpuBackend({ maxBufferSize: 60 })
      )
        .loadGate('t', tiedLayers('f32'))
        .catch((e: Error) => e)
      expect((err2 as Error).message).toMatch(/maxBufferSize \(60 bytes\)/)
    } finally {
      await b.dispose()
    }
  })

  it('a destroyed device is a GpuDeviceLostError (the worker restarts on it)', async () => {
    const b = await createNodeWebGpuBackend()
    await b.loadGate('t', tiedLayers('f32'))
    b.loseDevice()
    const err = await b
      .gateTopK({
        model: 't',
        queries: q,
        nq: 1,
        perLayerK: 0,
        k: 3,
        rank: 'abs',
        positiveOnly: false,
      })
      .catch((e: ComputeError & { restart?: boolean }) => e)
    expect((err as ComputeError).sqlstate).toBe('58000')
    expect((err as { restart?: boolean }).restart).toBe(true)
    expect((err as Error).message).toMatch(/WebGPU device was lost/)
  })

  it('says whether the adapter is a CPU emulation', () => {
    const a = backends[0]!.adapter
    expect(typeof a.name).toBe('string')
    if (/llvmpipe|lavapipe/i.test(a.name)) expect(a.software).toBe(true)
  })
})

describe('no adapter', () => {
  it('is 58000 with the hint', async () => {
    const none = { requestAdapter: async () => null } as unknown as GPU
    const err = await WebGpuBackend.create(none, {}, 'install a driver').catch(
      (e: ComputeError) => e,
    )
    expect((err as ComputeError).sqlstate).toBe('58000')
    expect((err as Error).message).toBe('no WebGPU adapter: install a driver')
  })

  it('names software adapters', () => {
    const adapter = (description: string, fallback = false) =>
      ({
        info: {
          vendor: '',
          architecture: '',
          device: '',
          description,
          isFallbackAdapter: fallback,
        },
      }) as unknown as GPUAdapter
    expect(isSoftwareAdapter(adapter('llvmpipe (LLVM 15.0.6, 256 bits)'))).toBe(true)
    expect(isSoftwareAdapter(adapter('SwiftShader Device'))).toBe(true)
    expect(isSoftwareAdapter(adapter('anything', true))).toBe(true)
    expect(isSoftwareAdapter(adapter('NVIDIA H200'))).toBe(false)
  })
})
