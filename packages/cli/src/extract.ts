import type { ExtractLevel, StorageDtype } from '@pglite-infer/vindex'
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
}

/** Runs the extraction with a progress bar and prints what was written. */
export async function extractCommand(c: ExtractCommand): Promise<void> {
  const bar = new ProgressBar()
  const result = await extractVindexDir(c.modelDir, c.outDir, {
    level: c.level,
    dtype: c.dtype,
    topK: c.topK,
    maxLayers: c.maxLayers,
    workers: c.workers,
    modelName: c.name,
    overwrite: true,
    onProgress: c.quiet ? undefined : (p) => bar.update(p),
  })
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
