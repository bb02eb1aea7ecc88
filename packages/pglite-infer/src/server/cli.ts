/**
 * `pglite-infer serve <vindex>... [--port N | --socket PATH] [--level L]`:
 * the model server's command line (server.ts). Run through the CLI of
 * @pglite-infer/cli, which loads this module when pglite-infer is installed.
 */
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { serveUntilSignal, type ServedModel } from './server.js'
import { startWireServer } from './wire.js'

export const SERVE_USAGE = `  pglite-infer serve <vindex>|<name>=<vindex>... [--port N | --socket PATH] [--host H]
                     [--level browse|inference|all] [--queue-limit N] [--max-body BYTES]
                     [--max-prompt BYTES] [--log]
      serve models over HTTP (larql-server's JSON API and /v1/pglite/*) for
      infer_create_model_remote(); one copy of each model for every client
  pglite-infer serve --pg-port N [--data-dir DIR] [<vindex>|<name>=<vindex>...] [--host H]
                     [--level L] [--pg-max-connections N] [--allow-dir DIR]... [--log]
      serve a PGlite with pg_infer, pgvector and pg_trgm over the PostgreSQL wire
      protocol (psql, any driver); the vindexes are registered as local models;
      one connection unless --pg-max-connections (they then share one session)`

/** Names a vindex for clients: "name=path", else the directory name without .vindex. */
export function servedModel(arg: string, level: ServedModel['level']): ServedModel {
  const eq = arg.indexOf('=')
  if (eq > 0 && !arg.slice(0, eq).includes('/'))
    return { name: arg.slice(0, eq), source: arg.slice(eq + 1), level }
  const base = basename(arg.replace(/\/+$/, '')).replace(/\.vindex$/, '')
  return { name: base.replace(/[^A-Za-z0-9_.-]/g, '_') || 'model', source: arg, level }
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      socket: { type: 'string' },
      level: { type: 'string' },
      'queue-limit': { type: 'string' },
      'max-body': { type: 'string' },
      'max-prompt': { type: 'string' },
      log: { type: 'boolean' },
      'pg-port': { type: 'string' },
      'data-dir': { type: 'string' },
      'pg-max-connections': { type: 'string' },
      'allow-dir': { type: 'string', multiple: true },
    },
  })
  if (values['pg-port'] !== undefined) return wireCommand(values, positionals)
  if (values['data-dir'] || values['pg-max-connections'] || values['allow-dir'])
    throw new Error('serve: --data-dir, --pg-max-connections and --allow-dir go with --pg-port')
  if (positionals.length === 0) throw new Error(`serve: name at least one vindex\n${SERVE_USAGE}`)
  const level = (values.level ?? 'browse') as ServedModel['level']
  if (!['browse', 'inference', 'all'].includes(level!))
    throw new Error(`serve: --level must be browse, inference or all, not "${values.level}"`)
  if (values.port && values.socket) throw new Error('serve: give --port or --socket, not both')
  const num = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0) throw new Error(`serve: ${what} must be a whole number`)
    return n
  }
  const server = await serveUntilSignal({
    models: positionals.map((p) => servedModel(p, level)),
    port: num(values.port, '--port') ?? 8080,
    host: values.host,
    socket: values.socket,
    queueLimit: num(values['queue-limit'], '--queue-limit'),
    maxBodyBytes: num(values['max-body'], '--max-body'),
    maxPromptBytes: num(values['max-prompt'], '--max-prompt'),
    log: values.log,
  })
  // one JSON line: scripts (and tests) wait for it
  process.stdout.write(
    `${JSON.stringify({ listening: server.url, models: server.stats().models, pid: process.pid })}\n`,
  )
}

/** `serve --pg-port`: the wire-protocol server (wire.ts) until SIGINT / SIGTERM. */
async function wireCommand(
  values: Record<string, string | boolean | string[] | undefined>,
  positionals: string[],
): Promise<void> {
  if (values.port !== undefined || values.socket !== undefined)
    throw new Error(
      'serve: --pg-port serves SQL clients; run the HTTP model server (--port/--socket) as its own process and register its models with infer_create_model_remote',
    )
  const level = (values.level ?? 'browse') as ServedModel['level']
  if (!['browse', 'inference', 'all'].includes(level!))
    throw new Error(`serve: --level must be browse, inference or all, not "${values.level}"`)
  const num = (v: unknown, what: string) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new Error(`serve: ${what} must be a whole number`)
    return n
  }
  const models = positionals.map((p) => servedModel(p, level))
  const allow = values['allow-dir'] as string[] | undefined
  const server = await startWireServer({
    port: num(values['pg-port'], '--pg-port'),
    host: values.host as string | undefined,
    dataDir: values['data-dir'] as string | undefined,
    models,
    allowedHostDirectories: allow?.length ? allow : undefined,
    maxConnections: num(values['pg-max-connections'], '--pg-max-connections'),
    log: values.log === true,
  })
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`pglite-infer serve: ${signal}, closing the database\n`)
    void server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.stdout.write(
    `${JSON.stringify({ listening: server.url, port: server.port, models: models.map((m) => m.name), pid: process.pid })}\n`,
  )
}
