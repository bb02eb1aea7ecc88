// The main-process half of an Electron-style app: starts the database
// thread (database.worker.mjs) and talks to it with comlink. In Electron,
// forward window requests to it with ipcMain.handle('sql', (e, sql, params)
// => db.query(sql, params)) and expose that in the preload script; the
// browser-window half can instead run its own PGlite in a Web Worker
// (docs/browser.md). Run on its own, it registers a model and queries it:
//
//   node examples/electron/main.mjs <vindex-dir> <data-dir>
import * as Comlink from 'comlink'
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs'
import { dirname, resolve } from 'node:path'
import { Worker } from 'node:worker_threads'

/** The database thread and its API; close() ends both. */
export async function openDatabase(dataDir, allowedHostDirectories = []) {
  const worker = new Worker(new URL('./database.worker.mjs', import.meta.url))
  const db = Comlink.wrap(nodeEndpoint(worker))
  await db.open(dataDir, allowedHostDirectories)
  return {
    db,
    async close() {
      await db.close()
      db[Comlink.releaseProxy]()
      await worker.terminate()
    },
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [vindex, dataDir] = process.argv.slice(2).map((p) => resolve(p))
  if (!vindex || !dataDir) {
    console.error('usage: node examples/electron/main.mjs <vindex-dir> <data-dir>')
    process.exit(2)
  }
  const { db, close } = await openDatabase(dataDir, [dirname(vindex)])
  const known = await db.query("select 1 from infer.models where name = 'countries'")
  if (known.length === 0) await db.createModel('countries', vindex)
  const rows = await db.query("select * from describe('France', 'countries') limit 5")
  console.log(JSON.stringify({ persisted: known.length > 0, rows }))
  await close()
}
