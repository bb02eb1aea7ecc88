import { readdir, stat } from 'node:fs/promises'
import type { DownMetaEngine, ExtractLevel, StorageDtype } from '@pglite-infer/vindex'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { formatBytes, table } from './format.js'
import { ProgressBar } from './progress.js'

export interface ExtractCommand {
  modelDir: string
  outDir: string
  level: ExtractLevel
  dtype: StorageDtype
  topK: number
  maxLayers: number | undefined
  workers: number | undefined
  name: string
  quiet: boolean
  /** Replace an existing non-empty output directory. */
  force: boolean
  /** Where down_meta is computed: ONNX Runtime, the JavaScript kernel, or the first that loads. */
  compute: 'auto' | 'onnx' | 'webgpu' | 'js'
}

/**
 * The down_meta engine: under auto a GPU through WebGPU when there is one
 * (not a CPU emulation such as lavapipe), else ONNX Runtime (a multithreaded
 * Gemm, many times the JavaScript kernel's speed), else the extractor's own
 * JS workers (undefined); --compute webgpu|onnx|js chooses.
 */
async function downMetaEngine(
  c: ExtractCommand,
): Promise<{ engine?: DownMetaEngine; name: string }> {
  if (c.compute === 'js') return { name: 'js' }
  if (c.compute === 'webgpu') {
    // chosen explicitly: no adapter is an error naming what to install
    const { WebGpuDownMetaEngine } = await import('@pglite-infer/compute/webgpu')
    const engine = await WebGpuDownMetaEngine.create()
    return { engine, name: `webgpu (${engine.backend.adapter.name})` }
  }
  if (c.compute === 'auto' && process.env.PGLITE_INFER_WEBGPU_AUTO !== '0') {
    try {
      const { WebGpuDownMetaEngine, probeNodeAdapter } =
        await import('@pglite-infer/compute/webgpu')
      // asked first without a device: a software adapter is skipped unopened
      const adapter = probeNodeAdapter()
      if (adapter && !adapter.software) {
        const engine = await WebGpuDownMetaEngine.create()
        return { engine, name: `webgpu (${engine.backend.adapter.name})` }
      }
    } catch {
      // no webgpu package, driver or adapter: the next engine
    }
  }
  try {
    const { OnnxDownMetaEngine } = await import('@pglite-infer/compute/downmeta')
    return { engine: await OnnxDownMetaEngine.create(), name: 'onnx' }
  } catch (e) {
    if (c.compute === 'onnx') throw e
    return { name: `js (onnx unavailable: ${(e as Error).message.split('\n')[0]})` }
  }
}

/**
 * Throws unless `dir` is absent or an empty directory: extract replaces its
 * output, and a mistyped -o must not delete a user's directory.
 */
async function checkOutput(dir: string): Promise<void> {
  const s = await stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined
    throw e
  })
  if (!s) return
  if (!s.isDirectory()) throw new Error(`${dir} exists and is not a directory; choose another -o`)
  if ((await readdir(dir)).length > 0)
    throw new Error(
      `${dir} exists and is not empty; pass --force to replace it, or choose another -o`,
    )
}

/** Runs the extraction with a progress bar and prints what was written. */
export async function extractCommand(c: ExtractCommand): Promise<void> {
  if (!c.force) await checkOutput(c.outDir)
  const bar = new ProgressBar()
  const { engine, name: computeName } = await downMetaEngine(c)
  const result = await extractVindexDir(c.modelDir, c.outDir, {
    engine,
    level: c.level,
    dtype: c.dtype,
    topK: c.topK,
    maxLayers: c.maxLayers,
    workers: c.workers,
    modelName: c.name,
    overwrite: c.force,
    onProgress: c.quiet ? undefined : (p) => bar.update(p),
  }).finally(() => engine?.close())
  const total = result.files.reduce((s, f) => s + f.size, 0)
  const mbps = result.bytesRead / 1e6 / Math.max(result.seconds, 1e-9)
  const i = result.index
  const lines = [
    `wrote ${c.outDir}`,
    table([
      [
        'model',
        `${i.model} (${i.family}), ${i.num_layers} layers, hidden ${i.hidden_size}, vocab ${i.vocab_size}`,
      ],
      ['level', `${i.extract_level}, dtype ${i.dtype}, top-k ${i.down_top_k}`],
      ['down_meta', `computed by ${computeName}`],
      [
        'time',
        `${result.seconds.toFixed(2)} s, ${formatBytes(result.bytesRead)} read (${mbps.toFixed(1)} MB/s)`,
      ],
    ]),
    'files:',
    table(
      result.files.map((f) => [
        f.name,
        `${String(f.size).padStart(12)} bytes  ${formatBytes(f.size)}`,
      ]),
      '  ',
    ),
    `  total ${formatBytes(total)}`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}
