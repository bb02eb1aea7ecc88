/**
 * A PGliteWorker's worker: the database, pg_infer and its host live here
 * (the page in worker-client.ts holds only the client).
 */
import { PGlite } from '@electric-sql/pglite'
import { worker } from '@electric-sql/pglite/worker'
import { pgInfer } from 'pglite-infer'

void worker({
  async init(options) {
    return await PGlite.create({ ...options, extensions: { infer: pgInfer } })
  },
})
