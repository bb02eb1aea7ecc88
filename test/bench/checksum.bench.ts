/**
 * What verifying a vindex's sha256 checksums at load costs (infer.verify_checksums),
 * on the synthetic Qwen2.5-0.5B-shaped vindex (24 x 4864 x 896, vocab 151936,
 * f16, about 480 MB): infer_create_model with the check on and off, three
 * loads each interleaved in one run, and the hashing alone (node:crypto, files
 * already in memory) for the bound. Prints min and median.
 *
 *   npx tsx test/bench/checksum.bench.ts
 */
import { PGlite } from '@electric-sql/pglite'
import { sha256HexSync } from '@pglite-infer/vindex'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { testPgInfer } from '../helpers/db.js'
import { writeSyntheticVindex } from './synthetic-vindex.js'

const RUNS = 5
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-checksum-'))
try {
  process.stderr.write('writing the synthetic vindex...\n')
  const v = await writeSyntheticVindex(join(work, 'synthetic.vindex'))
  const db = await PGlite.create({
    extensions: { pgInfer: testPgInfer({ allowedHostDirectories: [work] }) },
  })
  await db.exec('CREATE EXTENSION pg_infer')
  const load = async (verify: boolean): Promise<number> => {
    await db.exec(`set infer.verify_checksums = ${verify ? 'on' : 'off'}`)
    const t = performance.now()
    await db.query("select infer_create_model('m', $1)", [v.dir])
    const s = (performance.now() - t) / 1000
    await db.query("select infer_drop_model('m')")
    return s
  }
  const on: number[] = []
  const off: number[] = []
  for (let i = 0; i < RUNS; i++) {
    off.push(await load(false))
    on.push(await load(true))
  }
  const files = readdirSync(v.dir).filter((f) => f !== 'index.json')
  const contents = files.map((f) => readFileSync(join(v.dir, f)))
  const hashed = contents.reduce((s, b) => s + b.length, 0)
  const hashTimes: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    for (const bytes of contents) sha256HexSync(bytes)
    hashTimes.push((performance.now() - t) / 1000)
  }
  await db.close()
  const mb = hashed / 2 ** 20
  console.log(
    `vindex: ${mb.toFixed(0)} MB in ${files.length} checksummed files; ${RUNS} runs, medians\n`,
  )
  const min = (xs: number[]): number => Math.min(...xs)
  const row = (what: string, xs: number[]): string =>
    `| ${what} | ${min(xs).toFixed(2)} | ${median(xs).toFixed(2)} | ${(median(xs) / median(off)).toFixed(2)}x |`
  console.log('| what | min s | median s | median vs check off |')
  console.log('|---|---:|---:|---:|')
  console.log(row('infer_create_model, infer.verify_checksums = off', off))
  console.log(row('infer_create_model, infer.verify_checksums = on', on))
  console.log(
    row(
      `sha256 of every file alone, in memory (${(mb / median(hashTimes)).toFixed(0)} MB/s)`,
      hashTimes,
    ),
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
