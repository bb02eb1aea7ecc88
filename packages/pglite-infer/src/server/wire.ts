/**
 * PostgreSQL clients over the wire (`pglite-infer serve --pg-port N
 * --data-dir DIR`): one PGlite with pg_infer (and pgvector, pg_trgm) served
 * over the PostgreSQL wire protocol with @electric-sql/pglite-socket, so
 * that psql and any PostgreSQL driver can connect (docs/deployment.md).
 *
 * PGlite is one PostgreSQL backend, one session. pglite-socket's server
 * multiplexes several connections onto it at the query level (a client in a
 * transaction holds the others' queries until it ends; settings, temporary
 * tables and prepared statements are the one session's). That sharing
 * surprises PostgreSQL users, so by default this server takes ONE
 * connection; another one waits up to `connectWaitMs` (1 s) for the slot,
 * then is refused with a proper PostgreSQL error (SQLSTATE 53300, "too many
 * clients"). `maxConnections` > 1 opts into the shared session, queries
 * queued in arrival order.
 *
 * The clients reach the port here; each accepted connection is piped to
 * pglite-socket's server on a private Unix socket, so the refusal can be a
 * protocol ErrorResponse psql and drivers show as such.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { createPgInfer } from '../index.js'
import { vector } from '../vector.js'
import type { ServedModel } from './server.js'

export interface WireServerOptions {
  /** TCP port (0: any free one). */
  port?: number
  /** TCP host (default 127.0.0.1). */
  host?: string
  /** PGlite's data directory (persisted); default: in memory. */
  dataDir?: string
  /** Vindexes registered as local models at start (skipped if the name exists). */
  models?: ServedModel[]
  /** Host directories infer_create_model may read besides the models' parents. */
  allowedHostDirectories?: string[]
  /** Concurrent connections sharing the one session (default 1: more are refused). */
  maxConnections?: number
  /** How long a connection beyond the limit waits for a free slot before it is refused (ms, default 1000). */
  connectWaitMs?: number
  /** Log connections to stderr. */
  log?: boolean
}

export interface WireServer {
  /** postgresql://postgres@127.0.0.1:PORT/postgres */
  url: string
  port: number
  db: PGlite
  stats(): { connections: number; refused: number; accepted: number }
  close(): Promise<void>
}

/** pglite-socket is an optional dependency: loaded when --pg-port is used. */
async function loadSocketServer(): Promise<typeof import('@electric-sql/pglite-socket')> {
  try {
    return await import('@electric-sql/pglite-socket')
  } catch (e) {
    throw new Error(
      `serve --pg-port needs @electric-sql/pglite-socket (npm install @electric-sql/pglite-socket): ${(e as Error).message}`,
    )
  }
}

/** A PostgreSQL ErrorResponse message (FATAL, SQLSTATE, message). */
function errorResponse(sqlstate: string, message: string): Buffer {
  const fields = Buffer.concat([
    Buffer.from(`SFATAL\0VFATAL\0C${sqlstate}\0M${message}\0`, 'utf8'),
    Buffer.from([0]),
  ])
  const head = Buffer.alloc(5)
  head.write('E', 0)
  head.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([head, fields])
}

/**
 * Refuses a connection the way PostgreSQL does: answers an SSLRequest with
 * 'N', reads the startup packet, then sends the ErrorResponse and closes.
 */
function refuse(socket: Socket, message: string): void {
  let buf = Buffer.alloc(0)
  const done = () => {
    socket.removeAllListeners('data')
    socket.end(errorResponse('53300', message))
  }
  socket.on('error', () => undefined)
  socket.setTimeout(5000, () => socket.destroy())
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 8) {
      const len = buf.readInt32BE(0)
      const code = buf.readInt32BE(4)
      if (len === 8 && (code === 80877103 || code === 80877104)) {
        // SSLRequest / GSSENCRequest: not offered
        socket.write('N')
        buf = buf.subarray(8)
        continue
      }
      if (buf.length >= len) return done()
      return
    }
  })
}

export async function startWireServer(options: WireServerOptions): Promise<WireServer> {
  const { PGLiteSocketServer } = await loadSocketServer()
  const models = options.models ?? []
  const dirs = [
    ...(options.allowedHostDirectories ?? []).map((d) => resolve(d)),
    ...models.filter((m) => !/^[a-z]+:\/\//.test(m.source)).map((m) => dirname(resolve(m.source))),
  ].filter((d, i, a) => a.indexOf(d) === i)
  const maxConnections = Math.max(1, options.maxConnections ?? 1)
  const db = await PGlite.create({
    dataDir: options.dataDir ? resolve(options.dataDir) : undefined,
    extensions: { infer: createPgInfer({ allowedHostDirectories: dirs }), vector, pg_trgm },
  })
  await db.exec(`CREATE EXTENSION IF NOT EXISTS pg_infer;
                 CREATE EXTENSION IF NOT EXISTS vector;
                 CREATE EXTENSION IF NOT EXISTS pg_trgm;`)
  for (const m of models) {
    const exists = await db.query('SELECT 1 FROM infer.models WHERE name = $1', [m.name])
    if (exists.rows.length > 0) continue // a persisted data dir has it already
    const source = /^[a-z]+:\/\//.test(m.source) ? m.source : resolve(m.source)
    await db.query('SELECT infer_create_model($1, $2, $3)', [m.name, source, m.level ?? 'browse'])
  }

  // pglite-socket on a private Unix socket; clients reach the front below
  const privateDir = mkdtempSync(join(tmpdir(), 'pglite-infer-wire-'))
  const inner = new PGLiteSocketServer({
    db,
    path: join(privateDir, '.s.PGSQL.5432'),
    // the limit is the front's; slack here for connections still closing
    maxConnections: maxConnections + 16,
  })
  await inner.start()

  const counts = { connections: 0, refused: 0, accepted: 0 }
  const open = new Set<Socket>()
  // connections waiting for a slot (a client that just left may not have
  // closed its socket yet when the next one arrives): at most waitMs each
  const waiting: { client: Socket; timer: NodeJS.Timeout }[] = []
  const waitMs = options.connectWaitMs ?? 1000

  function accept(client: Socket): void {
    counts.connections++
    counts.accepted++
    open.add(client)
    const upstream = connect(join(privateDir, '.s.PGSQL.5432'))
    let closed = false
    const end = () => {
      if (closed) return
      closed = true
      counts.connections--
      open.delete(client)
      client.destroy()
      upstream.destroy()
      // the first waiting connection that is still there takes the slot
      for (let next = waiting.shift(); next; next = waiting.shift()) {
        clearTimeout(next.timer)
        if (next.client.destroyed) continue
        next.client.resume()
        accept(next.client)
        break
      }
    }
    client.on('error', end).on('close', end).on('end', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    upstream.pipe(client)
    if (options.log) process.stderr.write('pglite-infer serve: connection accepted\n')
  }
  const front: Server = createServer((client) => {
    if (counts.connections < maxConnections && waiting.length === 0) return accept(client)
    client.pause()
    const w = {
      client,
      timer: setTimeout(() => {
        waiting.splice(waiting.indexOf(w), 1)
        counts.refused++
        if (options.log) process.stderr.write('pglite-infer serve: connection refused (busy)\n')
        client.resume()
        refuse(
          client,
          maxConnections === 1
            ? 'sorry, too many clients already: PGlite is single-connection and another client is connected (start serve with --pg-max-connections N to share its one session)'
            : `sorry, too many clients already (--pg-max-connections ${maxConnections})`,
        )
      }, waitMs),
    }
    waiting.push(w)
  })

  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((ok, fail) =>
    front.once('error', fail).listen(options.port ?? 5432, host, ok),
  )
  const addr = front.address()
  const port = typeof addr === 'object' && addr ? addr.port : (options.port ?? 5432)
  const url = `postgresql://postgres@${host.includes(':') ? `[${host}]` : host}:${port}/postgres`

  let closing: Promise<void> | undefined
  return {
    url,
    port,
    db,
    stats: () => ({ ...counts }),
    close() {
      closing ??= (async () => {
        front.close()
        for (const w of waiting.splice(0)) {
          clearTimeout(w.timer)
          w.client.destroy()
        }
        for (const s of open) s.destroy()
        await inner.stop()
        await db.close()
        rmSync(privateDir, { recursive: true, force: true })
      })()
      return closing
    },
  }
}
