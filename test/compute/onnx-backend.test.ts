// The ONNX backend on its own (no PGlite): top-k sets and order equal a
// reference with C's tie rule (rank key descending, then layer, then feature
// ascending) on matrices full of exact ties, f16 subnormal fix-ups give
// exact scores, and the synchronous client survives its worker's death.
import {
  ComputeClient,
  compareHits,
  halfToFloat,
  type GateLayer,
  type Hit,
} from '@pglite-infer/compute'
import { cudaInstalled, OnnxBackend, onnxProviders } from '@pglite-infer/compute/onnx'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const hidden = 16
const rows = [40, 33, 40]

/** Rows drawn from a few distinct vectors, so many scores tie exactly. */
function tiedLayers(): GateLayer[] {
  const basis = [1, -1, 0.5, 2, -2].map((s) =>
    Float32Array.from({ length: hidden }, (_, i) => (i % 3 === 0 ? s : s / 4)),
  )
  return rows.map((n, l) => {
    const data = new Float32Array(n * hidden)
    for (let r = 0; r < n; r++) data.set(basis[(r * 7 + l) % basis.length]!, r * hidden)
    return { rows: n, hidden, dtype: 'f32' as const, data }
  })
}

/** What C's topk_push keeps: every score, sorted, filtered, the first k. */
function reference(
  layers: GateLayer[],
  q: Float32Array,
  k: number,
  perLayerK: number,
  rank: 'abs' | 'signed',
  positiveOnly: boolean,
): Hit[] {
  const all: Hit[] = []
  layers.forEach((layer, l) => {
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

let backend: OnnxBackend
beforeAll(async () => {
  backend = await OnnxBackend.create({ threads: 1 })
  await backend.loadGate('t', tiedLayers())
})
afterAll(() => backend?.dispose())

describe('OnnxBackend.gateTopK', () => {
  const q = Float32Array.from({ length: hidden }, (_, i) => (i % 2 ? 0.5 : 1))
  it.each([
    [12, 0, 'abs', false],
    [12, 5, 'abs', false],
    [50, 50, 'signed', true],
    [7, 3, 'signed', false],
    [200, 0, 'abs', false],
  ] as const)('k %i, per layer %i, %s, positive only %s', async (k, perLayerK, rank, pos) => {
    const r = await backend.gateTopK({
      model: 't',
      queries: Float32Array.from([...q, ...q.map((x) => -x)]),
      nq: 2,
      perLayerK,
      k,
      rank,
      positiveOnly: pos,
    })
    for (let i = 0; i < 2; i++) {
      const qi = i === 0 ? q : q.map((x) => -x)
      const want = reference(tiedLayers(), qi, k, perLayerK, rank, pos)
      const got = Array.from({ length: r.counts[i]! }, (_, j) => ({
        layer: r.layers[i * k + j]!,
        feature: r.features[i * k + j]!,
        score: r.scores[i * k + j]!,
      }))
      expect(got.map((h) => [h.layer, h.feature])).toEqual(want.map((h) => [h.layer, h.feature]))
      got.forEach((h, j) => expect(h.score).toBeCloseTo(want[j]!.score, 4))
    }
  })

  it('masks layers', async () => {
    const r = await backend.gateTopK({
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
    // row 0: halves 1.0 and, moved out as C does, the subnormal 2^-20 at col 1
    const data = new Uint16Array(2 * hidden)
    data[0] = 0x3c00
    data[hidden + 2] = 0x3c00
    const fixups = {
      rows: Int32Array.of(0),
      cols: Int32Array.of(1),
      values: Float32Array.of(2 ** -20),
    }
    await backend.loadGate('f', [{ rows: 2, hidden, dtype: 'f16', data, fixups }])
    const query = new Float32Array(hidden)
    query[1] = 2 ** 10
    const r = await backend.gateTopK({
      model: 'f',
      queries: query,
      nq: 1,
      perLayerK: 0,
      k: 1,
      rank: 'abs',
      positiveOnly: false,
    })
    expect([r.features[0], r.scores[0]]).toEqual([0, 2 ** -10])
    expect(halfToFloat(Uint16Array.of(0x0001))[0]).toBe(2 ** -24)
  })
})

describe('onnxruntime-web (where onnxruntime-node cannot be loaded)', () => {
  it('takes over with its wasm execution provider and gives the same hits', async () => {
    const web = await OnnxBackend.create({
      threads: 1,
      loadNative: () => Promise.reject(new Error('simulated: onnxruntime-node is not installed')),
    })
    try {
      expect([backend.executionProvider, web.executionProvider]).toEqual(['cpu', 'wasm'])
      await web.loadGate('t', tiedLayers())
      const q = Float32Array.from({ length: hidden }, (_, i) => (i % 3 ? -0.25 : 1))
      const req = {
        model: 't',
        nq: 1,
        perLayerK: 4,
        k: 9,
        rank: 'abs' as const,
        positiveOnly: false,
      }
      const a = await backend.gateTopK({ ...req, queries: q.slice() })
      const b = await web.gateTopK({ ...req, queries: q.slice() })
      expect([Array.from(b.layers), Array.from(b.features)]).toEqual([
        Array.from(a.layers),
        Array.from(a.features),
      ])
      expect(Array.from(b.scores)).toEqual(Array.from(a.scores))
    } finally {
      await web.dispose()
    }
  })
})

describe('ComputeClient (worker, synchronous)', () => {
  it('answers in C layout, and restarts after terminate()', async () => {
    const client = new ComputeClient({ threads: 1 })
    const call = () =>
      client.gateTopK({
        model: 't',
        queries: Float32Array.from({ length: hidden }, () => 1),
        nq: 1,
        perLayerK: 0,
        k: 3,
        rank: 'abs',
        positiveOnly: false,
      })
    client.loadGate('t', tiedLayers())
    const bytes = call()
    expect(bytes.length).toBe(4 + 3 * 12)
    expect(new Int32Array(bytes.buffer, 0, 1)[0]).toBe(3)
    await client.terminate()
    expect(client.hasModel('t')).toBe(false)
    expect(() => call()).toThrow(/not loaded/)
    client.loadGate('t', tiedLayers())
    expect(call()).toEqual(bytes)
    await client.terminate()
  })
})

describe('execution providers (PGLITE_INFER_ONNX_PROVIDERS)', () => {
  it('parses the list: cpu by default, names in order, a bad name is 22023', () => {
    expect(onnxProviders(undefined)).toEqual(['cpu'])
    expect(onnxProviders(' ')).toEqual(['cpu'])
    expect(onnxProviders('cuda, cpu')).toEqual(['cuda', 'cpu'])
    expect(() => onnxProviders('cu da,cpu')).toThrow(
      expect.objectContaining({ sqlstate: '22023', message: expect.stringMatching(/"cu da"/) }),
    )
  })

  it('a bad list is reported by create(), not taken for a missing package', async () => {
    const before = process.env.PGLITE_INFER_ONNX_PROVIDERS
    process.env.PGLITE_INFER_ONNX_PROVIDERS = 'cpu;rm'
    try {
      await expect(OnnxBackend.create()).rejects.toMatchObject({ sqlstate: '22023' })
    } finally {
      if (before === undefined) delete process.env.PGLITE_INFER_ONNX_PROVIDERS
      else process.env.PGLITE_INFER_ONNX_PROVIDERS = before
    }
  })

  it('cuda is chosen where its library is installed next to the binding (Linux, Windows)', () => {
    const seen: string[] = []
    const exists = (p: string) => (seen.push(p), p.endsWith('.so'))
    expect(cudaInstalled(exists, { platform: 'linux', arch: 'x64', packageDir: '/n/ort' })).toBe(
      true,
    )
    expect(seen).toEqual([
      join('/n/ort', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'),
    ])
    expect(cudaInstalled(exists, { platform: 'win32', arch: 'x64', packageDir: '/n/ort' })).toBe(
      false,
    )
    expect(
      cudaInstalled(() => true, { platform: 'darwin', arch: 'arm64', packageDir: '/n/ort' }),
    ).toBe(false)
  })

  it('chosen (not asked for), a cuda that cannot start leaves the sessions on the CPU', async () => {
    const b = await OnnxBackend.create({ cudaInstalled: () => true })
    try {
      expect(b.executionProvider).toBe('cuda,cpu')
      await b.loadGate('m', tiedLayers())
      const r = await b.gateTopK({
        model: 'm',
        queries: new Float32Array(hidden).fill(1),
        nq: 1,
        perLayerK: 0,
        k: 3,
        rank: 'abs',
        positiveOnly: false,
      })
      expect(r.counts[0]).toBe(3)
      // this machine has no CUDA library: the CPU took over (with one, CUDA serves it)
      const cudaLib = join(
        dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')),
        'bin',
        'napi-v6',
        'linux',
        'x64',
        'libonnxruntime_providers_cuda.so',
      )
      if (process.platform === 'linux' && process.arch === 'x64' && !existsSync(cudaLib))
        expect(b.executionProvider).toBe('cpu')
    } finally {
      await b.dispose()
    }
  })

  it('asked for, cuda without its libraries installed is 58000 saying what to do', async () => {
    const require = createRequire(import.meta.url)
    const binding = dirname(require.resolve('onnxruntime-node/package.json'))
    const cudaLib = join(
      binding,
      'bin',
      'napi-v6',
      'linux',
      'x64',
      'libonnxruntime_providers_cuda.so',
    )
    const b = await OnnxBackend.create({ executionProviders: ['cuda', 'cpu'] })
    try {
      const load = b.loadGate('m', tiedLayers())
      if (process.platform === 'linux' && process.arch === 'x64' && !existsSync(cudaLib))
        await expect(load).rejects.toMatchObject({
          sqlstate: '58000',
          message: expect.stringMatching(/cuda,cpu.*unset the variable/s),
        })
      else await load // installed with CUDA (or another platform's build): it loads
    } finally {
      await b.dispose()
    }
  })
})
