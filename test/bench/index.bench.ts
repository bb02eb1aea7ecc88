/**
 * The infer index (column mode) on the knowledge fixture model: build
 * rows/s, pages per row, and top-10 query latency through the index next to
 * the sequential scan + sort it replaces, measured in the same run.
 *
 *   npx tsx test/bench/index.bench.ts [--rows 10000,100000] [--queries 20]
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { pgInfer } from '../helpers/db.js'
import { writeSyntheticVindex } from './synthetic-vindex.js'

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '10000,100000' },
    queries: { type: 'string', default: '20' },
    'synthetic-rows': { type: 'string', default: '500' },
  },
})
const SIZES = args.rows.split(',').map(Number)
const NQ = Number(args.queries)
const FIXTURE = fileURLToPath(new URL('../fixtures/models/knowledge-qwen2-6l', import.meta.url))
const corpus = readFileSync(join(FIXTURE, 'corpus.txt'), 'utf8').split('\n').filter(Boolean)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return performance.now() - t
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-index-bench-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l', workers: 0 })
  const table: string[][] = []
  for (const n of SIZES) {
    const db = await PGlite.create({ extensions: { pgInfer } })
    await db.exec('CREATE EXTENSION pg_infer')
    await db.query("select infer_create_model('q', $1)", [vindex])
    await db.exec("set infer.default_model = 'q'")
    await db.exec('create table docs (id serial primary key, title text)')
    const titles = Array.from({ length: n }, (_, i) => corpus[i % corpus.length]!)
    await db.query('insert into docs (title) select unnest($1::text[])', [titles])
    process.stderr.write(`${n} rows: building the index...\n`)
    const build = await timed(() =>
      db.exec("create index docs_title on docs using infer (title) with (model = 'q')"),
    )
    await db.exec('analyze docs')
    const { rows: size } = await db.query<{ pages: number }>(
      "select pg_relation_size('docs_title') / 8192 as pages",
    )
    const qs = Array.from({ length: NQ }, (_, i) =>
      corpus[(i * 977) % corpus.length]!.split(' ').slice(0, 2).join(' '),
    )
    const idx: number[] = []
    for (const q of qs)
      idx.push(
        await timed(() => db.query('select id from docs order by title <~> $1 limit 10', [q])),
      )
    await db.exec('set enable_indexscan = off')
    const seqRuns = n > 20000 ? 1 : 3
    const seq: number[] = []
    for (const q of qs.slice(0, seqRuns)) {
      process.stderr.write(`${n} rows: sequential scan for ${JSON.stringify(q)}...\n`)
      seq.push(
        await timed(() => db.query('select id from docs order by title <~> $1 limit 10', [q])),
      )
    }
    await db.close()
    const pages = Number(size[0]!.pages)
    table.push([
      String(n),
      (n / (build / 1000)).toFixed(0),
      (pages / n).toFixed(3),
      median(idx).toFixed(2),
      Math.min(...idx).toFixed(2),
      median(seq).toFixed(0),
      (median(seq) / median(idx)).toFixed(0),
    ])
  }
  console.log(
    `\ninfer index, knowledge-qwen2-6l (f16), node ${process.version}, ${NQ} top-10 queries per size\n`,
  )
  console.log(
    '| rows | build rows/s | index pages/row | index top-10 ms (median) | (min) | seq scan + sort ms | seq / index |',
  )
  console.log('|---|---|---|---|---|---|---|')
  for (const r of table) console.log(`| ${r.join(' | ')} |`)
  console.log('\ntargets: build >= 2,000 rows/s on this model; top-10 at 100k rows <= 10 ms')

  // The build on the synthetic Qwen2.5-0.5B shape: each signature is a
  // 24-layer gate scan over 209 MB, so rows/s is bounded by memory bandwidth.
  const n = Number(args['synthetic-rows'])
  process.stderr.write('writing the synthetic 0.5B-shaped vindex...\n')
  const synth = await writeSyntheticVindex(join(work, 'synthetic.vindex'))
  const db = await PGlite.create({ extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('s', $1)", [synth.dir])
  await db.exec("set infer.default_model = 's'")
  await db.exec('create table docs (id serial primary key, title text)')
  await db.query('insert into docs (title) select unnest($1::text[])', [
    Array.from({ length: n }, (_, i) => corpus[i % corpus.length]!),
  ])
  const build = await timed(() =>
    db.exec("create index docs_title on docs using infer (title) with (model = 's')"),
  )
  const idx: number[] = []
  for (const q of ['France', 'capital of Japan', 'euro'])
    idx.push(await timed(() => db.query('select id from docs order by title <~> $1 limit 10', [q])))
  await db.close()
  console.log(
    `\nsynthetic Qwen2.5-0.5B shape, ${n} rows: build ${(n / (build / 1000)).toFixed(1)} rows/s, top-10 ${median(idx).toFixed(1)} ms (median of 3)`,
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
