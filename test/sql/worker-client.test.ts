// db.infer on the page side of a PGliteWorker: the extension's setup with
// clientOnly returns only the namespace (no emscriptenOpts or bundle, so
// PGliteWorker has nothing to warn about), and createModel(bytes) sends the
// files through SQL (infer._store_model_file) because the database's file
// system lives in the worker. Here the "client" namespace is bound to an
// in-process database, which it may only reach through SQL, as a worker
// client would.
import type { PGlite } from '@electric-sql/pglite'
import { createTarGzip } from 'nanotar'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { InferNamespace } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError, testPgInfer } from '../helpers/db.js'
import { fixtureVindex } from '../helpers/vindex.js'

let db: PGlite
let client: InferNamespace
let tar: Uint8Array

beforeAll(async () => {
  db = await openDb()
  const setup = await testPgInfer().setup(db, {}, true)
  expect(Object.keys(setup)).toEqual(['namespaceObj'])
  client = setup.namespaceObj as InferNamespace
  const dir = await fixtureVindex('f16', 'browse')
  tar = await createTarGzip(
    readdirSync(dir).map((name) => ({ name, data: readFileSync(join(dir, name)) })),
  )
})
afterAll(async () => {
  await db?.close()
})

describe('db.infer on a PGliteWorker client', () => {
  it('createModel(bytes) stores the files through SQL and registers the model', async () => {
    expect(await client.createModel('viaSql', tar)).toBe('viaSql')
    const { rows } = await db.query("select source from infer.models where name = 'viaSql'")
    expect(rows).toEqual([{ source: 'viaSql.vindex' }])
    const n = await db.query<{ n: number }>(
      "select count(*)::int as n from walk('France', 5, 'viaSql')",
    )
    expect(n.rows).toEqual([{ n: 5 }])
    // the files are where an in-process createModel puts them
    const { rows: dirs } = await db.query<{ d: string }>(
      "select current_setting('data_directory') || '/' || current_setting('infer.data_directory') || '/viaSql.vindex' as d",
    )
    expect(dirs[0]!.d).toMatch(/\/infer\/viaSql\.vindex$/)
    expect((await client.models()).map((m) => m.name)).toContain('viaSql')
  })

  it('a refused vindex leaves no files, and the name stays free', async () => {
    const files = new Map([['index.json', new TextEncoder().encode('{"not": "a vindex"}')]])
    await expect(client.createModel('broken', files)).rejects.toThrow(/index\.json/)
    expect((await db.query("select * from infer.models where name = 'broken'")).rows).toEqual([])
    expect(await client.createModel('broken', tar)).toBe('broken')
  })

  it('the file writer refuses hostile names, and only a superuser may call it', async () => {
    for (const [model, file] of [
      ['../x', 'index.json'],
      ['ok', '../../postgresql.conf'],
      ['ok', '.hidden'],
      ['ok', 'a/b'],
    ])
      expect(
        (
          await sqlError(db, 'select infer._store_model_file($1, $2, $3)', [
            model,
            file,
            new Uint8Array([1]),
          ])
        ).code,
        `${model} ${file}`,
      ).toMatch(/^(22023|42602)$/)
    await db.exec(`create role plain; set role plain`)
    const e = await sqlError(db, "select infer._store_model_file('x', 'a.bin', '\\x00')")
    await db.exec('reset role')
    expect(e.code).toBe('42501')
  })

  it('the compute backend is not reachable from the client side', () => {
    expect(() => client.compute).toThrow(/in the worker/)
  })
})

describe('db.infer.createModel on a reopened database', () => {
  it('works before any pg_infer function ran in the session (the library loads first)', async () => {
    const { PGlite } = await import('@electric-sql/pglite')
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dataDir = mkdtempSync(join(tmpdir(), 'reopen-'))
    try {
      const first = await PGlite.create({ dataDir, extensions: { infer: testPgInfer() } })
      await first.exec('create extension pg_infer')
      await first.close()
      const again = await PGlite.create({ dataDir, extensions: { infer: testPgInfer() } })
      expect(await again.infer.createModel('later', tar)).toBe('later')
      const n = await again.query<{ n: number }>(
        "select count(*)::int as n from walk('France', 3, 'later')",
      )
      expect(n.rows).toEqual([{ n: 3 }])
      await again.close()
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
