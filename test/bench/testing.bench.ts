/**
 * What a test pays for its database, three ways, with the knowledge-qwen2-6l
 * fixture (f16 browse vindex, about 5 MB) as the model:
 *
 *   - fresh: PGlite.create (initdb) + CREATE EXTENSION pg_infer + the model
 *     registered (from bytes, and from a host path);
 *   - createTestDb (pglite-infer/testing): a new database restored from the
 *     process's snapshot, and from a cacheDir file as another process finds it;
 *   - per-test transaction: BEGIN, a table and a model created, ROLLBACK, on
 *     one shared database (testTransaction).
 *
 *   npx tsx test/bench/testing.bench.ts [--runs N]
 *
 * Each database is checked to answer (a walk on the model) outside the
 * timing. Prints a Markdown table: median and min of N runs, and the median
 * against a fresh database. Targets are shown, never enforced.
 */
import { PGlite } from '@electric-sql/pglite'
import { readFileSync, readdirSync, rmSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  clearTestDbCache,
  createTestDb,
  testDbStats,
  testTransaction,
  type TestDbOptions,
} from 'pglite-infer/testing'
import { TEST_HOST_DIRECTORIES, testPgInfer } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

const TARGET_RESTORE_MS = 1500

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } })
const RUNS = Number(values.runs)

function progress(msg: string): void {
  process.stderr.write(`[testing.bench] ${msg}\n`)
}

interface Stats {
  median: number
  min: number
}
function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return { median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]! }
}

interface Db {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>
  close(): Promise<void>
}

/** The model answers: ten walk rows (outside the timing). */
async function check(db: Db, model: string): Promise<void> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from walk('The capital of France is', 10, $1)`,
    [model],
  )
  if (rows[0]!.n !== 10) throw new Error(`model ${model} gave ${rows[0]!.n} walk rows`)
}

/** Times `open` (a ready database) RUNS times after one warm-up, checking and closing each. */
async function timeOpen(what: string, open: () => Promise<Db>, model: string): Promise<number[]> {
  progress(what)
  const warm = await open()
  await check(warm, model)
  await warm.close()
  const ms: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    const db = await open()
    ms.push(performance.now() - t0)
    await check(db, model)
    await db.close()
  }
  return ms
}

async function main(): Promise<void> {
  const vindex = await fixtureVindex('f16')
  const bytes = new Map(
    readdirSync(vindex).map((f) => [f, new Uint8Array(readFileSync(join(vindex, f)))]),
  )
  const cacheDir = scratchDir('testing-bench')
  const inMemory: TestDbOptions = {
    model: { name: 'q', source: bytes },
    infer: { allowedHostDirectories: TEST_HOST_DIRECTORIES },
  }
  const onDisk: TestDbOptions = { ...inMemory, cacheDir }

  const rows: [string, Stats, string][] = []
  const fresh = stats(
    await timeOpen(
      'fresh, model from bytes',
      async () => {
        const db = await PGlite.create({ extensions: { infer: testPgInfer() } })
        await db.exec('CREATE EXTENSION pg_infer')
        await db.infer.createModel('q', bytes)
        return db
      },
      'q',
    ),
  )
  rows.push(['fresh: PGlite.create + CREATE EXTENSION + createModel(bytes)', fresh, ''])
  rows.push([
    'fresh: PGlite.create + CREATE EXTENSION + infer_create_model(path)',
    stats(
      await timeOpen(
        'fresh, model from a host path',
        async () => {
          const db = await PGlite.create({ extensions: { infer: testPgInfer() } })
          await db.exec('CREATE EXTENSION pg_infer')
          await db.query('select infer_create_model($1, $2)', ['q', vindex])
          return db
        },
        'q',
      ),
    ),
    '',
  ])

  progress('createTestDb: the first call builds the snapshot')
  clearTestDbCache()
  let t0 = performance.now()
  const first = await createTestDb(inMemory)
  const firstMs = performance.now() - t0
  await check(first, 'q')
  await first.close()
  rows.push([
    'createTestDb, first call of a process (build + dump + restore)',
    { median: firstMs, min: firstMs },
    'once per process and options',
  ])
  rows.push([
    'createTestDb, snapshot in memory (every later call)',
    stats(await timeOpen('createTestDb from memory', () => createTestDb(inMemory), 'q')),
    `target <= ${TARGET_RESTORE_MS} ms`,
  ])

  // another process with the same cacheDir: no snapshot in memory, one on disk
  await createTestDb(onDisk).then((db) => db.close())
  rows.push([
    'createTestDb, first call of another process (cacheDir file + restore)',
    stats(
      await timeOpen(
        'createTestDb from cacheDir',
        () => {
          clearTestDbCache()
          return createTestDb(onDisk)
        },
        'q',
      ),
    ),
    'vitest / node --test: a process per file',
  ])
  // each run clears the counters: the last one read the file, built nothing
  const counts = testDbStats()
  if (counts.built !== 0 || counts.loadedFromDisk !== 1)
    throw new Error(`expected the cacheDir run to read the file: ${JSON.stringify(counts)}`)

  progress('per-test transaction')
  const shared = await createTestDb(inMemory)
  await check(shared, 'q')
  const tx: number[] = []
  for (let i = 0; i <= RUNS; i++) {
    t0 = performance.now()
    const t = await testTransaction(shared)
    await shared.exec('create table t (id int); insert into t values (1)')
    await shared.query('select infer_create_model($1, $2)', ['p', vindex])
    await t.rollback()
    if (i > 0) tx.push(performance.now() - t0)
  }
  const left = await shared.query<{ n: number }>(
    "select count(*)::int as n from infer.models where name = 'p'",
  )
  if (left.rows[0]!.n !== 0) throw new Error('the rolled-back model is still there')
  await shared.close()
  rows.push([
    'per-test transaction: BEGIN, a table and a model, ROLLBACK',
    stats(tx),
    'one shared database',
  ])
  rmSync(cacheDir, { recursive: true, force: true })

  const f0 = (x: number) => x.toFixed(0)
  console.log(
    `\ndatabase per test, knowledge-qwen2-6l f16 browse vindex, node ${process.version}, ` +
      `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${RUNS} runs after 1 warm-up, ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}\n`,
  )
  console.log('| what | median ms | min ms | fresh / this (median) | note |')
  console.log('|---|---:|---:|---:|---|')
  for (const [what, s, note] of rows)
    console.log(
      `| ${what} | ${f0(s.median)} | ${f0(s.min)} | ${(fresh.median / s.median).toFixed(1)}x | ${note} |`,
    )
}

await main()
