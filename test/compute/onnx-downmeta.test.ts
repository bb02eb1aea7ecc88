// Extraction through ONNX Runtime (the OnnxDownMetaEngine of
// @pglite-infer/compute/downmeta): down_meta equals the JavaScript kernel's,
// ids and f32 logits, for the knowledge fixture, stories260K and a tiny
// checkpoint of every family; and `pglite-infer extract --compute` picks it.
import { OnnxDownMetaEngine } from '@pglite-infer/compute/downmeta'
import { InlineEngine } from '@pglite-infer/vindex'
import { extractVindexDir, openVindexDir } from '@pglite-infer/vindex/node'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QWEN_FIXTURE, STORIES_FIXTURE, repoPath } from '../helpers/paths.js'
import { scratchDir } from '../helpers/vindex.js'
import { TINY_FAMILIES, makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

let onnx: OnnxDownMetaEngine
const work = scratchDir('onnx-downmeta')

beforeAll(async () => {
  // small vocabulary chunks, so the fixtures span several of them
  onnx = await OnnxDownMetaEngine.create({ chunk: 700 })
})
afterAll(async () => {
  await onnx?.close()
})

/** down_meta.bin of a checkpoint extracted with each engine, compared record by record. */
async function compareEngines(dir: string, name: string, topK = 10): Promise<number> {
  const a = join(work, `${name}-js.vindex`)
  const b = join(work, `${name}-onnx.vindex`)
  await extractVindexDir(dir, a, { engine: new InlineEngine(), topK, modelName: name })
  await extractVindexDir(dir, b, { engine: onnx, topK, modelName: name })
  const va = await openVindexDir(a)
  const vb = await openVindexDir(b)
  let records = 0
  for (let l = 0; l < va.numLayers; l++)
    for (let f = 0; f < va.index.layers[l]!.num_features; f++) {
      const x = va.downMeta.topTokens(l, f)
      const y = vb.downMeta.topTokens(l, f)
      expect([y.ids, y.logits, y.cScore], `layer ${l} feature ${f}`).toEqual([
        x.ids,
        x.logits,
        x.cScore,
      ])
      records++
    }
  return records
}

describe('down_meta on ONNX Runtime equals the JavaScript kernel', () => {
  it('the knowledge fixture (vocab 2595, 6 x 1024 features)', async () => {
    expect(await compareEngines(QWEN_FIXTURE, 'qwen')).toBe(6 * 1024)
  })

  it('stories260K, with top-k 30', async () => {
    expect(await compareEngines(STORIES_FIXTURE, 'stories', 30)).toBeGreaterThan(0)
  })

  it.each(TINY_FAMILIES)('a tiny %s checkpoint', async (family) => {
    const tiny = await makeTinyCheckpoint(family, { dir: join(work, `tiny-${family}`) })
    expect(await compareEngines(tiny.dir, `tiny-${family}`)).toBeGreaterThan(0)
  })

  it('takes inputs in shared memory too (what the worker engine allocates)', async () => {
    const vocab = 3000
    const hidden = 16
    const features = 5
    const shared = (n: number, seed: number) => {
      const a = new Float32Array(new SharedArrayBuffer(n * 4))
      for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 7.1 + i * 0.37)
      return a
    }
    const req = {
      embed: shared(vocab * hidden, 1),
      vocab,
      hidden,
      down: shared(features * hidden, 2),
      features,
      k: 7,
    }
    expect(await onnx.topK(req)).toEqual(await new InlineEngine().topK(req))
  })

  it('refuses a request whose sizes do not add up', async () => {
    await expect(
      onnx.topK({
        embed: new Float32Array(8),
        vocab: 4,
        hidden: 2,
        down: new Float32Array(3),
        features: 2,
        k: 2,
      }),
    ).rejects.toThrow(/3 down values for 2 x 2/)
  })
})

describe('pglite-infer extract --compute', () => {
  const cli = repoPath('packages/cli/dist/main.js')
  it.each([
    ['onnx', 'computed by onnx'],
    ['js', 'computed by js'],
    ['auto', 'computed by onnx'],
  ])('--compute %s', (compute, line) => {
    const out = execFileSync(
      process.execPath,
      [
        cli,
        'extract',
        STORIES_FIXTURE,
        '-o',
        join(work, `cli-${compute}`),
        '--compute',
        compute,
        '--quiet',
      ],
      { encoding: 'utf8' },
    )
    expect(out).toMatch(new RegExp(`down_meta\\s+${line}`))
  })

  it('refuses an unknown backend', () => {
    let err = ''
    try {
      execFileSync(
        process.execPath,
        [cli, 'extract', STORIES_FIXTURE, '-o', join(work, 'x'), '--compute', 'gpu'],
        {
          encoding: 'utf8',
          stdio: 'pipe',
        },
      )
    } catch (e) {
      err = (e as { stderr: string }).stderr
    }
    expect(err).toContain('--compute')
  })
})
