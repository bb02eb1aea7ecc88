// pglite-infer/testing: createTestDb restores a database per call from a
// snapshot built once (per process, or per cacheDir file), with pg_infer
// created and the models registered; testTransaction / withRollback undo a
// test's work on a shared database.
import { PGlite } from '@electric-sql/pglite'
import { vector } from 'pglite-infer/vector'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  clearTestDbCache,
  createTestDb,
  testDbSnapshot,
  testDbStats,
  testTransaction,
  withRollback,
  type TestDbOptions,
} from 'pglite-infer/testing'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { TEST_HOST_DIRECTORIES, sqlError, testPgInfer } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

let vindex: string
let options: TestDbOptions
const infer = { allowedHostDirectories: TEST_HOST_DIRECTORIES }

const files = (dir: string) =>
  new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]))
const walk = `select layer, feature, concept, round(activation::numeric, 5) as activation
              from walk('The capital of France is', 10, 'q') order by layer, feature`
const describeFrance = `select * from describe('France', 'q')`
const tables = async (db: PGlite) =>
  (
    await db.query<{ t: string }>(
      "select tablename as t from pg_tables where schemaname = 'public' order by 1",
    )
  ).rows.map((r) => r.t)
const modelNames = async (db: PGlite) =>
  (await db.query<{ name: string }>('select name from infer.models order by 1')).rows.map(
    (r) => r.name,
  )

beforeAll(async () => {
  vindex = await fixtureVindex('f16')
  options = { model: { name: 'q', source: files(vindex) }, infer }
})
beforeEach(() => clearTestDbCache())

describe('createTestDb', () => {
  it('builds the snapshot once per options and restores a new database per call', async () => {
    const [a, b] = await Promise.all([createTestDb(options), createTestDb(options)])
    const c = await createTestDb(options)
    expect(testDbStats()).toEqual({ built: 1, loadedFromDisk: 0, restored: 3 })
    // the same snapshot, for PGlite.create({ loadDataDir }) by hand
    const snapshot = await testDbSnapshot(options)
    expect(snapshot.size).toBeGreaterThan(1_000_000)
    expect(testDbStats().built).toBe(1)
    for (const db of [a, b, c]) expect(await modelNames(db)).toEqual(['q'])
    await Promise.all([a, b, c].map((db) => db.close()))
    // other options: another snapshot
    const other = await createTestDb({ infer })
    expect(await modelNames(other)).toEqual([])
    expect(testDbStats().built).toBe(2)
    await other.close()
  })

  it('isolates: what one database does, the next does not see', async () => {
    const a = await createTestDb(options)
    await a.exec('create table only_in_a (id int); insert into only_in_a values (1)')
    await a.infer.dropModel('q')
    await a.query("select infer_create_model('p', $1)", [vindex])
    expect(await tables(a)).toEqual(['only_in_a'])
    const b = await createTestDb(options)
    expect(await tables(b)).toEqual([])
    expect(await modelNames(b)).toEqual(['q'])
    await Promise.all([a.close(), b.close()])
  })

  it('gives a model that answers as on a freshly created database', async () => {
    const fresh = await PGlite.create({ extensions: { infer: testPgInfer() } })
    await fresh.exec('CREATE EXTENSION pg_infer')
    await fresh.infer.createModel('q', files(vindex))
    const db = await createTestDb(options)
    // pg_infer's settings exist before any pg_infer call, as after CREATE EXTENSION
    for (const setting of ['infer.max_memory', 'infer.data_directory'])
      expect((await db.query(`show ${setting}`)).rows).toEqual(
        (await fresh.query(`show ${setting}`)).rows,
      )
    const want = {
      walk: (await fresh.query(walk)).rows,
      describe: (await fresh.query(describeFrance)).rows,
    }
    expect(want.walk).toHaveLength(10)
    expect(want.describe.length).toBeGreaterThan(0)
    expect((await db.query(walk)).rows).toEqual(want.walk)
    expect((await db.query(describeFrance)).rows).toEqual(want.describe)
    // the same model but for when it was registered, and whether loaded yet
    const info = (m: object[]) =>
      m.map((x) => ({ ...x, loaded: undefined, registered_at: undefined }))
    expect(info(await db.infer.models())).toEqual(info(await fresh.infer.models()))
    // the bytes were written into the database: the snapshot carries them
    const inside = await db.query<{ f: string }>(
      "select pg_ls_dir('infer/q.vindex') as f order by 1",
    )
    expect(inside.rows.map((r) => r.f)).toEqual([...files(vindex).keys()].sort())
    await Promise.all([fresh.close(), db.close()])
  })

  it('a model registered from a host path loads again in each restored database', async () => {
    const byPath = { model: { name: 'q', source: vindex }, infer }
    const a = await createTestDb(byPath)
    const b = await createTestDb(byPath)
    expect(testDbStats().built).toBe(1)
    for (const db of [a, b]) {
      expect((await db.query('select name from infer_loaded_models()')).rows).toEqual([])
      expect((await db.query(walk)).rows).toHaveLength(10)
    }
    await Promise.all([a.close(), b.close()])
  })

  it('runs setup once, before the snapshot; other extensions load in every database', async () => {
    let runs = 0
    const withVector: TestDbOptions<{ vector: typeof vector }> = {
      extensions: { vector },
      infer,
      setup: async (db) => {
        runs++
        await db.exec(`CREATE EXTENSION vector;
                       create table items (id int, v vector(3));
                       insert into items values (1, '[1,2,3]'), (2, '[4,6,3]')`)
      },
    }
    const a = await createTestDb(withVector)
    const b = await createTestDb(withVector)
    expect(runs).toBe(1)
    for (const db of [a, b])
      expect(
        (await db.query("select id from items order by v <-> '[4,6,4]' limit 1")).rows,
      ).toEqual([{ id: 2 }])
    await Promise.all([a.close(), b.close()])
  })

  it('cacheDir: another process reads the snapshot file instead of building it', async () => {
    const cacheDir = scratchDir('testing-helper')
    const onDisk = { ...options, cacheDir }
    const a = await createTestDb(onDisk)
    expect(testDbStats()).toEqual({ built: 1, loadedFromDisk: 0, restored: 1 })
    const snapshots = readdirSync(cacheDir)
    expect(snapshots).toEqual([expect.stringMatching(/^testdb-[0-9a-f]{24}\.tar$/)])
    clearTestDbCache() // as a new process finds it
    const b = await createTestDb(onDisk)
    expect(testDbStats()).toEqual({ built: 0, loadedFromDisk: 1, restored: 1 })
    expect(await modelNames(b)).toEqual(['q'])
    expect((await b.query(walk)).rows).toHaveLength(10)
    // other models (here the same bytes under another name): another file
    await createTestDb({ ...onDisk, model: { name: 'r', source: files(vindex) } }).then((db) =>
      db.close(),
    )
    expect(readdirSync(cacheDir)).toHaveLength(2)
    expect(existsSync(join(cacheDir, snapshots[0]!))).toBe(true)
    await Promise.all([a.close(), b.close()])
  })

  it('says what failed when a model or setup fails, and builds again on the next call', async () => {
    await expect(
      createTestDb({ model: { name: 'q', source: '/no/such/model.vindex' }, infer }),
    ).rejects.toThrow(/registering model "q" failed: .*\/no\/such\/model\.vindex/)
    let fail = true
    const flaky = {
      infer,
      setup: async (db: PGlite) => {
        if (fail) await db.exec('select * from no_such_table')
      },
    }
    await expect(createTestDb(flaky)).rejects.toThrow(/no_such_table/)
    fail = false
    const db = await createTestDb(flaky)
    expect(testDbStats().built).toBe(1)
    await db.close()
    await expect(
      createTestDb({ infer, setup: (db) => db.exec('BEGIN').then(() => {}) }),
    ).rejects.toThrow(/setup left a transaction open/)
  })

  it.each([
    ['not an object', 'x', /options must be an object/],
    ['an unknown option', { modle: {} }, /unknown option "modle"/],
    ['a model without a name', { model: { source: 'x' } }, /model name must be/],
    ['a bad model name', { model: { name: 'a b', source: 'x' } }, /model name must be/],
    [
      'a model twice',
      {
        model: [
          { name: 'a', source: 'x' },
          { name: 'a', source: 'y' },
        ],
      },
      /"a" is given twice/,
    ],
    ['a model without a source', { model: { name: 'a' } }, /source must be a string, bytes/],
    ['a bad level', { model: { name: 'a', source: 'x', level: 'full' } }, /level must be 'browse'/],
    [
      'pg_infer in extensions',
      { extensions: { infer: vector } },
      /extensions\.infer is pg_infer's own key/,
    ],
    ['setup not a function', { setup: 'create table t()' }, /setup must be a function/],
    [
      'cacheDir with setup and no cacheKey',
      { cacheDir: '/tmp/x', setup: async () => {} },
      /needs a cacheKey/,
    ],
  ])('refuses %s with a clear error', async (_, bad, message) => {
    await expect(createTestDb(bad as TestDbOptions)).rejects.toThrow(message)
    expect(testDbStats().built).toBe(0)
  })
})

describe('testTransaction and withRollback', () => {
  let db: Awaited<ReturnType<typeof createTestDb>>
  beforeAll(async () => {
    db = await createTestDb(options)
  })

  it('roll back tables, rows and models created in the test', async () => {
    const tx = await testTransaction(db)
    await db.exec('create table t (id int); insert into t values (1)')
    await db.query("select infer_create_model('p', $1)", [vindex])
    expect(await modelNames(db)).toEqual(['p', 'q'])
    await tx.rollback()
    await tx.rollback() // once only
    expect(await tables(db)).toEqual([])
    expect(await modelNames(db)).toEqual(['q'])
    expect((await sqlError(db, "select * from walk('x', 1, 'p')")).message).toMatch(
      /model "p" does not exist/,
    )
  })

  it('withRollback rolls back whether the function returns or throws', async () => {
    expect(
      await withRollback(db, async (d) => {
        await d.exec('create table t (id int)')
        return (await tables(d)).length
      }),
    ).toBe(1)
    expect(await tables(db)).toEqual([])
    await expect(
      withRollback(db, async (d) => {
        await d.exec('create table t (id int)')
        await d.exec('select 1/0')
      }),
    ).rejects.toThrow(/division by zero/)
    expect(await tables(db)).toEqual([])
    expect(db.isInTransaction()).toBe(false)
  })

  it('says so when a test ends the transaction itself, or one is already open', async () => {
    const tx = await testTransaction(db)
    await expect(testTransaction(db)).rejects.toThrow(/already in a transaction/)
    await db.exec('COMMIT')
    await expect(tx.rollback()).rejects.toThrow(/ended its transaction itself/)
  })
})
