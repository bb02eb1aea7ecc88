/**
 * A local stand-in for the HuggingFace hub and for a static file server, on
 * 127.0.0.1 (a free port). It serves
 *   /{org}/{model}/resolve/{revision}/{file}  from a directory per repo@revision
 *   /{prefix}/{file}                          from a directory per prefix (a vindex)
 * and can be told to answer chosen paths with a 404, garbage, a 500, a body
 * of your choice, or nothing at all (a hang).
 *
 * It runs on its own worker thread: a remote model source is fetched while
 * the thread that runs PGlite (the test's) is blocked in Atomics.wait, so a
 * server on that thread could never answer.
 */
import { Worker } from 'node:worker_threads'

export type HubRule =
  | { kind: 'notfound' }
  | { kind: 'garbage' }
  | { kind: 'error'; status?: number }
  | { kind: 'hang' }
  | { kind: 'body'; body: string; status?: number; headers?: Record<string, string> }

export interface HubServer {
  /** http://127.0.0.1:PORT, no trailing slash. */
  readonly url: string
  /** Serves `dir` as repository `repo` ("org/model") at `revision`. */
  addRepo(repo: string, revision: string, dir: string): Promise<void>
  /** Serves `dir` under the URL path `prefix` (e.g. "/x.vindex"). */
  addStatic(prefix: string, dir: string): Promise<void>
  /** Overrides what the URL path `path` answers; null restores the file. */
  setRule(path: string, rule: HubRule | null): Promise<void>
  /** Every request path so far, in order. */
  requests(): Promise<string[]>
  close(): Promise<void>
}

/** Longest a response may hang before the server drops the connection. */
const HANG_LIMIT_MS = 30_000

const SERVER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

const repos = new Map()
const statics = new Map()
const rules = new Map()
const seen = []
const hanging = new Set()
const GARBAGE = Buffer.from('garbage! '.repeat(64))

function within(dir, rel) {
  const p = path.resolve(dir, rel)
  return p === dir || p.startsWith(dir + path.sep) ? p : undefined
}

function fileFor(pathname) {
  const parts = pathname.split('/').slice(1)
  const r = parts.indexOf('resolve')
  if (r >= 1 && parts.length > r + 2) {
    const repo = parts.slice(0, r).map(decodeURIComponent).join('/')
    const rev = decodeURIComponent(parts[r + 1])
    const dir = repos.get(repo + '@' + rev)
    if (dir) return within(dir, parts.slice(r + 2).map(decodeURIComponent).join('/'))
  }
  for (const [prefix, dir] of statics) {
    if (pathname.startsWith(prefix + '/'))
      return within(dir, pathname.slice(prefix.length + 1).split('/').map(decodeURIComponent).join('/'))
  }
  return undefined
}

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url, 'http://x').pathname
  seen.push(pathname)
  const rule = rules.get(pathname)
  if (rule) {
    if (rule.kind === 'hang') {
      hanging.add(res)
      const t = setTimeout(() => res.destroy(), ${HANG_LIMIT_MS})
      res.on('close', () => { clearTimeout(t); hanging.delete(res) })
      return
    }
    if (rule.kind === 'notfound') { res.writeHead(404).end('Entry not found'); return }
    if (rule.kind === 'error') { res.writeHead(rule.status || 500).end('server error'); return }
    if (rule.kind === 'garbage') {
      res.writeHead(200, { 'content-length': GARBAGE.length }).end(GARBAGE)
      return
    }
    const body = Buffer.from(rule.body)
    res.writeHead(rule.status || 200, { ...rule.headers, 'content-length': body.length }).end(body)
    return
  }
  const file = fileFor(pathname)
  let st
  try { st = file && fs.statSync(file) } catch { st = undefined }
  if (!st || !st.isFile()) { res.writeHead(404).end('Entry not found'); return }
  res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' })
  fs.createReadStream(file).pipe(res)
})
server.keepAliveTimeout = 1000

server.listen(0, '127.0.0.1', () => {
  parentPort.postMessage({ id: 0, result: server.address().port })
})

parentPort.on('message', ({ id, op, args }) => {
  let result
  if (op === 'addRepo') repos.set(args[0] + '@' + args[1], path.resolve(args[2]))
  else if (op === 'addStatic') statics.set(args[0].replace(/\\/+$/, ''), path.resolve(args[1]))
  else if (op === 'setRule') { if (args[1]) rules.set(args[0], args[1]); else rules.delete(args[0]) }
  else if (op === 'requests') result = seen.slice()
  else if (op === 'close') {
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    server.close(() => parentPort.postMessage({ id, result: null }))
    return
  }
  parentPort.postMessage({ id, result })
})
`

/** Starts the server; close() it when done (it never keeps the process alive). */
export async function startHubServer(): Promise<HubServer> {
  const worker = new Worker(SERVER_SOURCE, { eval: true })
  worker.unref()
  const pending = new Map<number, (result: unknown) => void>()
  let failed: Error | undefined
  let nextId = 1
  worker.on('message', ({ id, result }: { id: number; result: unknown }) => {
    pending.get(id)?.(result)
    pending.delete(id)
  })
  worker.on('error', (e) => {
    failed = e
    for (const resolve of pending.values()) resolve(undefined)
  })
  const port = await new Promise<number>((resolve, reject) => {
    pending.set(0, (p) => (failed ? reject(failed) : resolve(p as number)))
  })
  const call = <T>(op: string, ...args: unknown[]): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (failed) return reject(failed)
      const id = nextId++
      pending.set(id, (r) => (failed ? reject(failed) : resolve(r as T)))
      worker.postMessage({ id, op, args })
    })
  return {
    url: `http://127.0.0.1:${port}`,
    addRepo: (repo, revision, dir) => call('addRepo', repo, revision, dir),
    addStatic: (prefix, dir) => call('addStatic', prefix, dir),
    setRule: (path, rule) => call('setRule', path, rule),
    requests: () => call<string[]>('requests'),
    close: async () => {
      if (!failed) await call('close')
      await worker.terminate()
    },
  }
}
