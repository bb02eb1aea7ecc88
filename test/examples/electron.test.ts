// The Node half of the Electron-style example (examples/electron): the
// database in a worker_threads worker, reached from the main thread with
// comlink; its answers equal an in-process database's, and a second run on
// the same data directory finds the model persisted.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { repoPath } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'

const dataDir = mkdtempSync(join(tmpdir(), 'electron-example-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

function runMain(vindex: string): { persisted: boolean; rows: unknown[] } {
  const out = execFileSync(
    process.execPath,
    [repoPath('examples/electron/main.mjs'), vindex, dataDir],
    { encoding: 'utf8' },
  )
  return JSON.parse(out.trim().split('\n').pop()!)
}

it('the main thread queries the database thread; a second run finds the model persisted', async () => {
  const vindex = await fixtureVindex('f16')
  const first = runMain(vindex)
  expect(first.persisted).toBe(false)
  const db = await openDb()
  await db.query("select infer_create_model('countries', $1)", [vindex])
  const want = (await db.query("select * from describe('France', 'countries') limit 5")).rows
  await db.close()
  expect(first.rows).toEqual(want)
  const second = runMain(vindex)
  expect(second).toEqual({ persisted: true, rows: want })
})
