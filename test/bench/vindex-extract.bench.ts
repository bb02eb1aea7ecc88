/**
 * Extraction benchmark on a Qwen2.5-0.5B-shaped checkpoint (24 layers,
 * hidden 896, intermediate 4864, vocab 151936, 14 heads, 2 KV heads) with
 * deterministic random weights, generated on the fly into a temp dir and
 * deleted afterwards.
 *
 *   npx tsx test/bench/vindex-extract.bench.ts [--layers N] [--dtype BF16|F32] [--workers N] [--top-k K]
 *
 * Only the first N layers (default 2) are written and extracted: full
 * down_meta at this shape is ~1.6e13 multiply-adds, so the 24-layer time is
 * extrapolated from the per-layer time and labelled as such. Extraction
 * runs in a child process so its peak RSS (process.resourceUsage().maxRSS)
 * is measured alone.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { SHAPES, writeSyntheticCheckpoint } from './synthetic-checkpoint.js'

const SHAPE = SHAPES['0.5b']!

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '2' },
    dtype: { type: 'string', default: 'BF16' },
    workers: { type: 'string', default: '2' },
    'top-k': { type: 'string', default: '10' },
  },
})
const layers = Number(values.layers)
const dtype = values.dtype === 'F32' ? 'F32' : 'BF16'
const workers = Number(values.workers)
const topK = Number(values['top-k'])

/** Runs the extraction in a child process; it reports its own peak RSS. */
function extractInChild(
  modelDir: string,
  outDir: string,
): { seconds: number; bytesRead: number; maxRssKiB: number; perLayer: number[] } {
  const nodeEntry = resolve(
    import.meta.dirname,
    '..',
    '..',
    'packages',
    'vindex',
    'dist',
    'node.js',
  )
  const script = `
    import { extractVindexDir } from ${JSON.stringify(nodeEntry)}
    const t = []; let last = Date.now()
    const r = await extractVindexDir(${JSON.stringify(modelDir)}, ${JSON.stringify(outDir)}, {
      level: 'browse', topK: ${topK}, workers: ${workers}, maxLayers: ${layers}, overwrite: true,
      onProgress: (p) => { if (p.stage === 'layers') { const n = Date.now(); t.push((n - last) / 1000); last = n } else if (p.stage === 'embeddings' && p.done === p.total) last = Date.now() },
    })
    console.log(JSON.stringify({ seconds: r.seconds, bytesRead: r.bytesRead, maxRssKiB: process.resourceUsage().maxRSS, perLayer: t }))
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  if (r.status !== 0)
    throw new Error(
      `extraction failed (status ${r.status}, signal ${r.signal}): ${r.stderr}${r.error ?? ''}`,
    )
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

const dir = mkdtempSync(join(tmpdir(), 'vindex-bench-'))
try {
  const t0 = Date.now()
  const inputBytes = writeSyntheticCheckpoint(dir, SHAPE, { layers, dtype }).bytes
  const genSeconds = (Date.now() - t0) / 1000
  const out = join(dir, 'out.vindex')
  const r = extractInChild(dir, out)
  const embedBytes = SHAPE.vocab * SHAPE.hidden * 4
  const perLayer = r.perLayer.reduce((a, b) => a + b, 0) / r.perLayer.length
  const fixed = r.seconds - r.perLayer.reduce((a, b) => a + b, 0)
  const rows: [string, string][] = [
    [
      'checkpoint',
      `Qwen2.5-0.5B shape, ${dtype}, first ${layers}/${SHAPE.layers} layers written, ${(inputBytes / 1e6).toFixed(0)} MB (generated in ${genSeconds.toFixed(1)} s)`,
    ],
    ['extract', `level browse, dtype f16, top-k ${topK}, ${workers} down_meta worker(s)`],
    ['seconds (measured)', r.seconds.toFixed(1)],
    ['  embeddings + setup', fixed.toFixed(1)],
    ['  per layer (gate + down_meta)', perLayer.toFixed(1)],
    [
      'input read',
      `${(r.bytesRead / 1e6).toFixed(0)} MB, ${(r.bytesRead / 1e6 / r.seconds).toFixed(1)} MB/s`,
    ],
    ['peak RSS', `${(r.maxRssKiB / 1024).toFixed(0)} MiB`],
    ['largest tensor (embedding f32)', `${(embedBytes / 2 ** 20).toFixed(0)} MiB`],
    ['peak RSS / largest tensor', ((r.maxRssKiB * 1024) / embedBytes).toFixed(2)],
    [
      'EXTRAPOLATED 24-layer time',
      `${((fixed + perLayer * SHAPE.layers) / 60).toFixed(1)} min (= setup + 24 x per-layer)`,
    ],
    [
      'output gate_vectors.bin',
      `${(statSync(join(out, 'gate_vectors.bin')).size / 1e6).toFixed(1)} MB`,
    ],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
