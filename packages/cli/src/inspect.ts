import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { VindexError, type Vindex } from '@pglite-infer/vindex'
import { openVindexDir } from '@pglite-infer/vindex/node'
import { formatBytes, table } from './format.js'

/** Opens (and so validates) a vindex and prints its shape and files. */
export async function inspectCommand(
  dir: string,
  opts: { verify: boolean; json: boolean },
): Promise<void> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new VindexError('MISSING_FILE', 'no such vindex directory', {
      file: dir,
      hint: 'pass the directory written by "pglite-infer extract -o"',
    })
  }
  const v = await openVindexDir(dir, { verifyChecksums: opts.verify })
  const files = await fileSizes(dir, v)
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(summary(v, files, opts.verify), null, 2)}\n`)
    return
  }
  process.stdout.write(`${render(dir, v, files, opts.verify)}\n`)
}

async function fileSizes(dir: string, v: Vindex): Promise<[string, number][]> {
  const names = new Set(['index.json', ...Object.keys(v.index.checksums ?? {})])
  for (const e of v.weightEntries) names.add(e.file)
  const out: [string, number][] = []
  for (const name of [...names].sort()) {
    const st = await stat(join(dir, name)).catch(() => undefined)
    if (st) out.push([name, st.size])
  }
  return out
}

function bands(v: Vindex): string {
  const b = v.index.layer_bands
  if (!b) return 'none (LARQL bands need 8+ layers or a known model)'
  const r = ([a, z]: [number, number]): string => `${a}-${z}`
  return `syntax ${r(b.syntax)}, knowledge ${r(b.knowledge)}, output ${r(b.output)}`
}

function render(dir: string, v: Vindex, files: [string, number][], verified: boolean): string {
  const i = v.index
  const features = i.layers.map((l) => l.num_features)
  const uniform = features.every((f) => f === features[0])
  const rows: [string, string][] = [
    ['vindex', dir],
    ['model', i.model],
    ['family', i.family],
    ['version', String(i.version)],
    ['level', i.extract_level],
    ['dtype', i.dtype],
    ['layers', String(i.num_layers)],
    ['hidden', String(i.hidden_size)],
    ['features', uniform ? `${features[0]} per layer` : features.join(',')],
    ['intermediate', String(i.intermediate_size)],
    ['vocab', String(i.vocab_size)],
    ['heads', `${v.config.numHeads} (kv ${v.config.numKvHeads}, head_dim ${v.config.headDim})`],
    ['embed_scale', String(i.embed_scale)],
    ['down_top_k', String(i.down_top_k)],
    ['bands', bands(v)],
    ['weights', `${v.weightEntries.length} tensors`],
    ['checksums', verified ? 'verified' : 'not checked (use --verify)'],
  ]
  const total = files.reduce((s, [, n]) => s + n, 0)
  const fileRows: [string, string][] = files.map(([n, s]) => [
    n,
    `${String(s).padStart(12)} bytes  ${formatBytes(s)}`,
  ])
  return `${table(rows)}\nfiles:\n${table(fileRows, '  ')}\n  total ${formatBytes(total)}`
}

function summary(v: Vindex, files: [string, number][], verified: boolean): object {
  const i = v.index
  return {
    model: i.model,
    family: i.family,
    version: i.version,
    level: i.extract_level,
    dtype: i.dtype,
    layers: i.num_layers,
    hidden: i.hidden_size,
    features: i.layers.map((l) => l.num_features),
    intermediate: i.intermediate_size,
    vocab: i.vocab_size,
    embed_scale: i.embed_scale,
    down_top_k: i.down_top_k,
    layer_bands: i.layer_bands ?? null,
    weights: v.weightEntries.length,
    checksums_verified: verified,
    files: Object.fromEntries(files),
  }
}
