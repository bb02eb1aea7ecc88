// Extraction on WebGPU (WebGpuDownMetaEngine of @pglite-infer/compute/webgpu):
// down_meta.bin is byte-identical to the JavaScript kernel's for the
// knowledge fixture, stories260K and a tiny checkpoint of every family, also
// with the embedding split into parts by a low limit; and `pglite-infer
// extract --compute webgpu` picks it. On lavapipe in CI.
import { WebGpuDownMetaEngine } from '@pglite-infer/compute/webgpu'
import { InlineEngine } from '@pglite-infer/vindex'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { QWEN_FIXTURE, STORIES_FIXTURE, repoPath } from '../helpers/paths.js'
import { scratchDir } from '../helpers/vindex.js'
import { webgpuAvailable } from '../helpers/webgpu.js'
import { TINY_FAMILIES, makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

const gpu = await webgpuAvailable('webgpu-downmeta.test.ts')
const work = scratchDir('webgpu-downmeta')
const engines: WebGpuDownMetaEngine[] = []
afterAll(async () => {
  for (const e of engines) await e.close()
})

async function engine(options = {}): Promise<WebGpuDownMetaEngine> {
  const e = await WebGpuDownMetaEngine.create(options)
  engines.push(e)
  return e
}

async function compareEngines(dir: string, name: string, topK = 10, options = {}): Promise<void> {
  const a = join(work, `${name}-js.vindex`)
  const b = join(work, `${name}-webgpu.vindex`)
  await extractVindexDir(dir, a, { engine: new InlineEngine(), topK, modelName: name })
  await extractVindexDir(dir, b, { engine: await engine(options), topK, modelName: name })
  const x = readFileSync(join(a, 'down_meta.bin'))
  const y = readFileSync(join(b, 'down_meta.bin'))
  expect(x.length).toBeGreaterThan(0)
  expect(Buffer.compare(x, y)).toBe(0)
}

describe.skipIf(!gpu)('down_meta on WebGPU is byte-identical to the JavaScript kernel', () => {
  it('the knowledge fixture', async () => {
    await compareEngines(QWEN_FIXTURE, 'qwen')
  })

  it('stories260K, embedding split into 8 parts by a 16 KiB binding limit', async () => {
    await compareEngines(STORIES_FIXTURE, 'stories-split', 10, {
      maxStorageBufferBindingSize: 1 << 14,
    })
  })

  it('stories260K, with top-k 30', async () => {
    await compareEngines(STORIES_FIXTURE, 'stories', 30)
  })

  it.each(TINY_FAMILIES)('a tiny %s checkpoint', async (family) => {
    const tiny = await makeTinyCheckpoint(family, { dir: join(work, `tiny-${family}`) })
    await compareEngines(tiny.dir, `tiny-${family}`)
  })
})

describe.skipIf(!gpu)('pglite-infer extract --compute webgpu', () => {
  it('says it computed down_meta on webgpu', () => {
    const out = execFileSync(
      process.execPath,
      [
        repoPath('packages/cli/dist/main.js'),
        'extract',
        STORIES_FIXTURE,
        '-o',
        join(work, 'cli-webgpu'),
        '--compute',
        'webgpu',
        '--quiet',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
    expect(out).toMatch(/down_meta\s+computed by webgpu \(/)
  })
})
