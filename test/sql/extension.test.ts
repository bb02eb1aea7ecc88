import type { PGlite } from '@electric-sql/pglite'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { repoPath } from '../helpers/paths.js'

let db: PGlite
beforeAll(async () => {
  db = await openDb()
})
afterAll(async () => {
  await db.close()
})

describe('CREATE EXTENSION pg_infer', () => {
  it('installs the version of the control file', async () => {
    const control = readFileSync(repoPath('extension/pg_infer.control'), 'utf8')
    const version = /default_version\s*=\s*'([^']+)'/.exec(control)?.[1]
    const { rows } = await db.query<{ extversion: string }>(
      "select extversion from pg_extension where extname = 'pg_infer'",
    )
    expect(rows).toEqual([{ extversion: version }])
  })

  it('infer_version() is the version of the C module, the control file and the npm package', async () => {
    const pkg = JSON.parse(readFileSync(repoPath('packages/pglite-infer/package.json'), 'utf8'))
    const { rows } = await db.query<{ v: string }>('select infer_version() as v')
    expect(rows[0].v).toBe('0.1.0')
    expect(pkg.version).toBe('0.1.0')
  })

  it('drops and re-creates cleanly', async () => {
    await db.exec('DROP EXTENSION pg_infer')
    await db.exec('CREATE EXTENSION pg_infer')
    const { rows } = await db.query<{ v: string }>('select infer_version() as v')
    expect(rows[0].v).toBe('0.1.0')
  })
})
