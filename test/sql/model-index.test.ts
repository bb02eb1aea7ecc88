// Models stored in index pages: CREATE INDEX ... ON infer._models USING infer
// (name) WITH (source = ...) copies a vindex into WAL-logged pages, and the
// model then loads from them, with its source files gone.
import { PGlite } from '@electric-sql/pglite'
import { cpSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { describe, expect, it } from 'vitest'
import { openDb, openPersistent, sqlError } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

describe('model index', () => {
  it('stores a model in pages; it survives reopening with its source files deleted', async () => {
    const work = scratchDir('model-index')
    const source = join(work, 'countries.vindex')
    cpSync(await fixtureVindex('f16'), source, { recursive: true })
    const dataDir = join(work, 'pgdata')
    const db = await openPersistent(dataDir)
    await db.query("select infer_create_model('files', $1)", [source])
    await db.exec(
      `create index countries on infer._models using infer (name) with (source = '${source}')`,
    )
    const listed = await db.query<{ name: string; source: string; layers: number }>(
      "select name, source, layers from infer_models() where name = 'countries'",
    )
    expect(listed.rows).toEqual([{ name: 'countries', source: 'index:countries', layers: 6 }])
    const fromFiles = (await db.query("select * from describe('France', 'files')")).rows
    const fromPages = (await db.query("select * from describe('France', 'countries')")).rows
    expect(fromPages).toEqual(fromFiles)
    const walk = (await db.query("select * from walk('The capital of Japan is', 10, 'countries')"))
      .rows
    const pages = await db.query<{ n: number }>(
      "select pg_relation_size('infer.countries') / 8192 as n",
    )
    expect(Number(pages.rows[0]!.n)).toBeGreaterThan(600) // 4.7 MB of model data
    await db.query("select infer_drop_model('files')")
    await db.close()

    rmSync(source, { recursive: true, force: true })
    const again = await openPersistent(dataDir)
    expect((await again.query("select * from describe('France', 'countries')")).rows).toEqual(
      fromPages,
    )
    expect(
      (await again.query("select * from walk('The capital of Japan is', 10, 'countries')")).rows,
    ).toEqual(walk)
    // dropping the model drops its index
    await again.query("select infer_drop_model('countries')")
    expect(
      (await again.query("select count(*)::int as n from pg_class where relname = 'countries'"))
        .rows,
    ).toEqual([{ n: 0 }])
    await again.close()
  })

  it("stores the inference weights with level = 'inference': infer() runs from pages", async () => {
    const work = scratchDir('model-index-inf')
    const source = join(work, 'countries.vindex')
    cpSync(await fixtureVindex('f32', 'inference'), source, { recursive: true })
    const dataDir = join(work, 'pgdata')
    const db = await openPersistent(dataDir)
    await db.query("select infer_create_model('files', $1, 'inference')", [source])
    await db.exec(
      `create index stored on infer._models using infer (name) with (source = '${source}', level = 'inference')`,
    )
    const want = (await db.query("select * from infer('The capital of Spain is', 5, 'files')")).rows
    expect(
      (await db.query("select * from infer('The capital of Spain is', 5, 'stored')")).rows,
    ).toEqual(want)
    await db.close()
    rmSync(source, { recursive: true, force: true })
    const again = await openPersistent(dataDir)
    expect(
      (await again.query('select extract_level from infer_models() where name = $1', ['stored']))
        .rows,
    ).toEqual([{ extract_level: 'inference' }])
    expect(
      (await again.query("select * from infer('The capital of Spain is', 5, 'stored')")).rows,
    ).toEqual(want)
    await again.close()
  })

  it('travels inside a dumpDataDir() archive', async () => {
    const db = await PGlite.create({ extensions: { infer: pgInfer } })
    await db.exec('CREATE EXTENSION pg_infer')
    await db.exec(
      `create index archived on infer._models using infer (name) with (source = '${await fixtureVindex('f16')}')`,
    )
    const before = (await db.query("select * from describe('Japan', 'archived')")).rows
    const archive = await db.dumpDataDir('gzip')
    await db.close()
    const restored = await PGlite.create({ loadDataDir: archive, extensions: { infer: pgInfer } })
    expect((await restored.query("select * from describe('Japan', 'archived')")).rows).toEqual(
      before,
    )
    await restored.close()
  })

  it('bad input: a missing source, a name taken, a dropped index, a scan', async () => {
    const db = await openDb()
    const v = await fixtureVindex('f16')
    expect(
      (
        await sqlError(
          db,
          `create index nope on infer._models using infer (name) with (source = '${tmpdir()}/no-such.vindex')`,
        )
      ).code,
    ).toBe('58P01')
    // outside the directories the application allows: refused without looking
    expect(
      (
        await sqlError(
          db,
          "create index nope on infer._models using infer (name) with (source = '/no/such.vindex')",
        )
      ).code,
    ).toBe('42501')
    await db.query("select infer_create_model('taken', $1)", [v])
    const dup = await sqlError(
      db,
      `create index taken on infer._models using infer (name) with (source = '${v}')`,
    )
    expect(dup).toEqual({ code: '42710', message: 'model "taken" already exists' })
    await db.exec(`create index stored on infer._models using infer (name) with (source = '${v}')`)
    await db.exec('drop index infer.stored')
    const gone = await sqlError(db, "select * from walk('France', 3, 'stored')")
    expect(gone.code).toBe('42704')
    expect(gone.message).toBe(
      'model "stored" is stored in index infer.stored, which does not exist',
    )
    const both = await sqlError(
      db,
      `create index x on infer._models using infer (name) with (source = '${v}', model = 'taken')`,
    )
    expect(both.code).toBe('42P17')
    expect((await db.query('select 1 as ok')).rows).toEqual([{ ok: 1 }])
    await db.close()
  })
})
