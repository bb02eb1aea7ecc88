// The database thread of an Electron app's main process (or any Node app):
// PGlite with pg_infer in a worker_threads worker, so a long query never
// blocks the main process's event loop (and with it every window). The main
// thread calls this API through comlink's Node adapter (main.mjs).
import { PGlite } from '@electric-sql/pglite'
import * as Comlink from 'comlink'
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs'
import { createPgInfer } from 'pglite-infer'
import { parentPort } from 'node:worker_threads'

let db

const api = {
  /** Opens (or creates) the database in dataDir; SQL may read vindexes only in `allowed`. */
  async open(dataDir, allowed = []) {
    db = await PGlite.create({
      dataDir,
      extensions: { infer: createPgInfer({ allowedHostDirectories: allowed }) },
    })
    await db.exec('create extension if not exists pg_infer')
  },
  async query(sql, params = []) {
    return (await db.query(sql, params)).rows
  },
  /** source: a vindex directory, an http(s) URL, or the bytes of a .tar.gz */
  async createModel(name, source, level = 'browse') {
    return await db.infer.createModel(name, source, { level })
  },
  async close() {
    await db?.close()
  },
}

Comlink.expose(api, nodeEndpoint(parentPort))
