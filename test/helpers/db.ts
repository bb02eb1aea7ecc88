import { PGlite, type Extensions } from '@electric-sql/pglite'
import { tmpdir } from 'node:os'
import { createPgInfer, type PgInferOptions } from 'pglite-infer'
import { createTestDb, type TestDb } from 'pglite-infer/testing'
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

/**
 * Where the tests' database snapshots live (pglite-infer/testing's cacheDir):
 * vitest runs each test file in its own process, and every one of them
 * restores its databases from the same files instead of running initdb.
 */
export const SNAPSHOT_DIR = repoPath('test/.tmp/snapshots')

/**
 * A fresh in-memory PGlite with pg_infer created (db.infer), restored from
 * the shared snapshot (createTestDb).
 */
export async function openDb(options: PgInferOptions = {}): Promise<TestDb> {
  return createTestDb({
    infer: { allowedHostDirectories: TEST_HOST_DIRECTORIES, ...options },
    cacheDir: SNAPSHOT_DIR,
  })
}

/**
 * openDb with other PGlite extensions loaded and `sql` run once on the
 * snapshot (their CREATE EXTENSION, say): each distinct `sql` is its own
 * snapshot.
 */
export async function openDbWith<E extends Extensions>(
  extensions: E,
  sql: string,
  options: PgInferOptions = {},
): Promise<TestDb<E>> {
  return createTestDb({
    extensions,
    infer: { allowedHostDirectories: TEST_HOST_DIRECTORIES, ...options },
    setup: async (db) => {
      await db.exec(sql)
    },
    cacheDir: SNAPSHOT_DIR,
    cacheKey: sql,
  })
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
