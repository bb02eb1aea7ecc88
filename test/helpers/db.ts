import { PGlite } from '@electric-sql/pglite'
import { tmpdir } from 'node:os'
import { createPgInfer, type PgInferOptions } from 'pglite-infer'
import { repoPath } from './paths.js'

/**
 * The host directories tests register vindexes from by absolute path: the
 * repository (fixtures, test/.tmp) and the system's temporary directory.
 * An application allows none unless it says so.
 */
export const TEST_HOST_DIRECTORIES = [repoPath(''), tmpdir()]

/** pg_infer as the tests load it: the default host, the test directories allowed. */
export function testPgInfer(options: PgInferOptions = {}) {
  return createPgInfer({ allowedHostDirectories: TEST_HOST_DIRECTORIES, ...options })
}

/** The extension object most tests share. */
export const pgInfer = testPgInfer()

/** A fresh in-memory PGlite with pg_infer created. */
export async function openDb(options: PgInferOptions = {}): Promise<PGlite> {
  const db = await PGlite.create({ extensions: { pgInfer: testPgInfer(options) } })
  await db.exec('CREATE EXTENSION pg_infer')
  return db
}

/** The SQL error a query raises: its SQLSTATE and message. */
export async function sqlError(
  db: PGlite,
  sql: string,
  params: unknown[] = [],
): Promise<{ code: string; message: string }> {
  try {
    await db.query(sql, params)
  } catch (e) {
    const err = e as { code?: string; message: string }
    return { code: err.code ?? '', message: err.message }
  }
  throw new Error(`expected an error from: ${sql}`)
}

/** A PGlite over a data directory (persisted), with pg_infer and db.infer. */
export async function openPersistent(dataDir: string) {
  const db = await PGlite.create({ dataDir, extensions: { infer: pgInfer } })
  await db.exec('CREATE EXTENSION IF NOT EXISTS pg_infer')
  return db
}
