/**
 * The model server: one process holds each model once and answers over HTTP
 * on a TCP port or a Unix socket (docs/remote-models.md).
 *
 * The models live in one PGlite with pg_infer, where each vindex is
 * registered as a local model; every request runs the corresponding pg_infer
 * SQL there, so a remote model's answers equal a local model's by
 * construction. Two API families:
 *
 *   - the larql-server JSON subset that pg_infer's client (crates/infer-client)
 *     consumes: /v1/health, /v1/models, /v1/stats, /v1/describe, /v1/walk,
 *     /v1/relations, /v1/rank, /v1/infer, /v1/embed, /v1/warmup, /v1/cache/stats;
 *   - pglite-infer's own: POST /v1/pglite/call (one whitelisted pg_infer SQL
 *     function, bound parameters, rows back as text) and GET
 *     /v1/pglite/server (queue and memory figures).
 *
 * PGlite is single-connection: requests run one at a time from a bounded
 * queue (full: 503). Bodies and prompts have size limits (413). SIGINT /
 * SIGTERM (serveUntilSignal) stop accepting, finish the queue and close.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { existsSync, unlinkSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { createPgInfer } from '../index.js'

export interface ServedModel {
  /** The name clients use (default: the vindex directory's name without .vindex). */
  name: string
  /** A vindex directory (or any infer_create_model source). */
  source: string
  /** Extract level to register at (default browse). */
  level?: 'browse' | 'inference' | 'all'
}

export interface ModelServerOptions {
  models: ServedModel[]
  /** TCP port (0: any free one). Ignored with `socket`. */
  port?: number
  /** TCP host (default 127.0.0.1). */
  host?: string
  /** A Unix socket path to listen on instead of TCP. */
  socket?: string
  /** Requests waiting beyond the one running (default 64); more get 503. */
  queueLimit?: number
  /** Largest request body in bytes (default 1 MiB); larger get 413. */
  maxBodyBytes?: number
  /** Longest prompt / entity / text argument in bytes (default 64 KiB); longer get 413. */
  maxPromptBytes?: number
  /** Longest time one request may run in the database, ms (default 60000). */
  requestTimeoutMs?: number
  /** Host directories the vindexes may come from (default: their parent directories). */
  allowedHostDirectories?: string[]
  /** Log one line per request to stderr. */
  log?: boolean
}

export interface ModelServer {
  /** http://127.0.0.1:PORT or unix:///path */
  url: string
  db: PGlite
  /** Figures of /v1/pglite/server. */
  stats(): ServerStats
  /** Stops accepting, lets queued requests finish, closes the database. */
  close(): Promise<void>
}

export interface ServerStats {
  models: string[]
  requests: number
  errors: number
  rejected_queue_full: number
  rejected_too_large: number
  abandoned: number
  running: number
  queued: number
  queue_limit: number
  rss_bytes: number
  heap_used_bytes: number
  uptime_s: number
}

/** A request error: HTTP status, SQLSTATE-like code, message. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'bad_request',
    readonly sqlstate?: string,
  ) {
    super(message)
  }
}

/** Identity parsers: every value comes back as PostgreSQL's text. */
const TEXT_OIDS = [
  16, 20, 21, 23, 25, 114, 700, 701, 1000, 1005, 1007, 1009, 1016, 1021, 1022, 1043, 1184, 1700,
  3802,
]
const AS_TEXT = Object.fromEntries(TEXT_OIDS.map((oid) => [oid, (v: string) => v]))

/**
 * The pg_infer functions POST /v1/pglite/call may run: read-only, one model
 * argument. Keep in step with the remote dispatch in extension/src/remote.c.
 */
export const CALLABLE_FUNCTIONS = new Set([
  'walk',
  'infer',
  'describe',
  'implies',
  'describe_layers',
  'nearest_to',
  'infer_explain_walk',
  'infer_show_layers',
  'infer_show_features',
  'infer_show_relations',
  'infer_layer_bands',
  'similar_to',
  'similar_to_many',
  'infer_distance',
  'infer_embedding',
  'infer_signatures',
  'infer_signature_dots',
  'infer_warmup',
])

/** Argument types a call may bind (format_type spelling). */
const CALLABLE_TYPES = new Set([
  'text',
  'integer',
  'double precision',
  'real',
  'boolean',
  'bigint',
  'text[]',
  'integer[]',
])

/** Settings a call may carry: those that change pg_infer's answers. */
const FORWARDED_SETTINGS = new Set([
  'infer.gate_threshold',
  'infer.describe_top_k',
  'infer.walk_embed_mode',
  'infer.max_context',
  'infer.max_input_bytes',
])

interface ModelInfo {
  name: string
  source: string
  row: Record<string, unknown>
  bands: { layer: number; band: string }[]
  featuresPerLayer: number[]
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  if (options.models.length === 0) throw new Error('pglite-infer serve: no model to serve')
  const queueLimit = options.queueLimit ?? 64
  const maxBody = options.maxBodyBytes ?? 1024 * 1024
  const maxPrompt = options.maxPromptBytes ?? 64 * 1024
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000
  const dirs =
    options.allowedHostDirectories ??
    options.models.map((m) => dirname(resolve(m.source))).filter((d, i, a) => a.indexOf(d) === i)

  const db = await PGlite.create({
    extensions: { infer: createPgInfer({ allowedHostDirectories: dirs }) },
  })
  await db.exec('CREATE EXTENSION pg_infer')
  // the models are held once, for every client: as much heap as PGlite allows
  await db.exec("SET infer.max_memory = '2000'")
  const models = new Map<string, ModelInfo>()
  for (const m of options.models) {
    const source = /^[a-z]+:\/\//.test(m.source) ? m.source : resolve(m.source)
    await db.query('SELECT infer_create_model($1, $2, $3)', [m.name, source, m.level ?? 'browse'])
    await db.query('SELECT infer_warmup($1)', [m.name])
    const row = (
      await db.query<Record<string, unknown>>('SELECT * FROM infer.models WHERE name = $1', [
        m.name,
      ])
    ).rows[0]!
    const bands = (
      await db.query<{ layer: number; band: string }>('SELECT * FROM infer_layer_bands($1)', [
        m.name,
      ])
    ).rows
    const layers = (
      await db.query<{ num_features: number }>('SELECT num_features FROM infer_show_layers($1)', [
        m.name,
      ])
    ).rows.map((r) => r.num_features)
    models.set(m.name, { name: m.name, source, row, bands, featuresPerLayer: layers })
  }

  const counters = {
    requests: 0,
    errors: 0,
    rejected_queue_full: 0,
    rejected_too_large: 0,
    abandoned: 0,
  }
  const started = Date.now()
  let running = 0
  const queue: (() => void)[] = []
  let closing = false

  /** Runs `work` when the database is free; refuses when the queue is full. */
  async function serialized<T>(isAbandoned: () => boolean, work: () => Promise<T>): Promise<T> {
    if (running > 0 || queue.length > 0) {
      if (queue.length >= queueLimit) {
        counters.rejected_queue_full++
        throw new HttpError(
          503,
          `the model server is busy: ${queue.length} requests are queued (limit ${queueLimit}); retry later`,
          'queue_full',
          '53300',
        )
      }
      await new Promise<void>((go) => queue.push(go))
    }
    running++
    try {
      // a client gone while its request waited: the work is dropped
      if (isAbandoned()) throw new HttpError(499, 'the client went away', 'client_closed')
      return await work()
    } finally {
      running--
      queue.shift()?.()
    }
  }

  function model(name: string | null | undefined): ModelInfo {
    if (name) {
      const m = models.get(name)
      if (!m)
        throw new HttpError(
          404,
          `model "${name}" is not served here (serving: ${[...models.keys()].join(', ')})`,
          'unknown_model',
          '42704',
        )
      return m
    }
    if (models.size === 1) return models.values().next().value!
    throw new HttpError(
      400,
      `this server serves ${models.size} models (${[...models.keys()].join(', ')}): name one with ?model=`,
      'model_required',
    )
  }

  function checkPrompt(what: string, value: unknown): string {
    if (typeof value !== 'string' || value === '')
      throw new HttpError(400, `"${what}" must be a non-empty string`)
    if (Buffer.byteLength(value) > maxPrompt) {
      counters.rejected_too_large++
      throw new HttpError(
        413,
        `"${what}" is ${Buffer.byteLength(value)} bytes; this server accepts at most ${maxPrompt}`,
        'too_large',
        '54000',
      )
    }
    return value
  }

  function intParam(v: unknown, fallback: number, what: string, max = 10_000): number {
    if (v === undefined || v === null || v === '') return fallback
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0 || n > max)
      throw new HttpError(400, `"${what}" must be an integer from 0 to ${max}`)
    return n
  }

  /** One SQL statement under the request's deadline and forwarded settings. */
  async function sql(
    text: string,
    params: unknown[],
    opts: { timeoutMs?: number; settings?: Record<string, string> } = {},
  ) {
    const timeout = Math.max(
      1,
      Math.min(requestTimeoutMs, opts.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : Infinity),
    )
    const names = ['statement_timeout']
    const values = [String(timeout)]
    for (const [k, v] of Object.entries(opts.settings ?? {})) {
      if (!FORWARDED_SETTINGS.has(k))
        throw new HttpError(400, `setting "${k}" cannot be forwarded`, 'bad_setting')
      names.push(k)
      values.push(String(v))
    }
    return db.transaction(async (tx) => {
      // statement_timeout applies from the next statement: pg_infer stops there
      await tx.query(
        'SELECT set_config(k, v, true) FROM unnest($1::text[], $2::text[]) AS s(k, v)',
        [names, values],
      )
      return tx.query<unknown[]>(text, params, { rowMode: 'array', parsers: AS_TEXT })
    })
  }

  function stats(): ServerStats {
    const mem = process.memoryUsage()
    return {
      models: [...models.keys()],
      ...counters,
      running,
      queued: queue.length,
      queue_limit: queueLimit,
      rss_bytes: mem.rss,
      heap_used_bytes: mem.heapUsed,
      uptime_s: Math.round((Date.now() - started) / 1000),
    }
  }

  function modelStats(m: ModelInfo) {
    const row = m.row
    const ranges: Record<string, [number, number]> = {}
    for (const b of m.bands) {
      const r = ranges[b.band]
      ranges[b.band] = r ? [Math.min(r[0], b.layer), Math.max(r[1], b.layer)] : [b.layer, b.layer]
    }
    return {
      // larql-server's StatsResponse (crates/infer-client/src/types.rs)
      model: m.name,
      family: String(row.architecture),
      layers: row.layers,
      hidden_size: row.hidden,
      vocab_size: row.vocab,
      extract_level: row.extract_level,
      features_per_layer: row.features,
      layer_bands: {
        syntax: ranges.syntax ?? [0, 0],
        knowledge: ranges.knowledge ?? [0, 0],
        output: ranges.output ?? [0, 0],
      },
      // pglite-infer's own, for infer_create_model_remote
      architecture: row.architecture,
      dtype: row.dtype,
      num_layers: row.layers,
      features: m.featuresPerLayer,
      server: 'pglite-infer',
    }
  }

  type Handler = (
    q: URLSearchParams,
    body: Record<string, unknown>,
    abandoned: () => boolean,
  ) => Promise<unknown>

  const routes: Record<string, Handler> = {
    'GET /v1/health': async () => ({ status: 'ok', models: models.size }),
    'GET /v1/models': async () => ({
      models: [...models.values()].map((m) => ({
        name: m.name,
        id: m.name,
        layers: m.row.layers,
        hidden_size: m.row.hidden,
        extract_level: m.row.extract_level,
      })),
    }),
    'GET /v1/stats': async (q) => modelStats(model(q.get('model'))),
    'GET /v1/describe': async (q, _b, ab) => {
      const m = model(q.get('model'))
      const entity = checkPrompt('entity', q.get('entity'))
      const limit = intParam(q.get('limit'), 0, 'limit')
      const min = q.get('min_score')
      const t0 = performance.now()
      const r = await serialized(ab, () =>
        sql('SELECT relation, target, confidence, layer FROM describe($1, $2, $3)', [
          entity,
          m.name,
          min ? Number(min) : null,
        ]),
      )
      let rows = r.rows
      if (limit > 0) rows = rows.slice(0, limit)
      return {
        entity,
        model: m.name,
        edges: rows.map(([relation, target, confidence, layer]) => ({
          target,
          relation: relation ?? '',
          gate_score: Number(confidence),
          layer: Number(layer),
          also: [],
        })),
        latency_ms: performance.now() - t0,
      }
    },
    'GET /v1/walk': async (q, _b, ab) => {
      const m = model(q.get('model'))
      const prompt = checkPrompt('prompt', q.get('prompt'))
      const top = intParam(q.get('top'), 10, 'top')
      const layers = parseLayers(q.get('layers'))
      const t0 = performance.now()
      const r = await serialized(ab, () =>
        layers && layers.length === 1
          ? sql('SELECT $2::int, feature, score, token FROM nearest_to($1, $2, $3, $4)', [
              prompt,
              layers[0],
              top,
              m.name,
            ])
          : sql('SELECT layer, feature, activation, concept FROM walk($1, $2, $3)', [
              prompt,
              top,
              m.name,
            ]),
      )
      const hits = r.rows
        .map(([layer, feature, score, target]) => ({
          layer: Number(layer),
          feature: Number(feature),
          gate_score: Number(score),
          target: target ?? '',
        }))
        .filter((h) => !layers || layers.includes(h.layer))
      return { prompt, model: m.name, hits, latency_ms: performance.now() - t0 }
    },
    'GET /v1/relations': async (q, _b, ab) => {
      const m = model(q.get('model'))
      const r = await serialized(ab, () =>
        sql('SELECT relation, count, max_score, layers, examples FROM infer_show_relations($1)', [
          m.name,
        ]),
      )
      return {
        relations: r.rows.map(([token, count, max, layers, examples]) => ({
          token,
          count: Number(count),
          max_score: Number(max),
          layers: String(layers ?? '')
            .split(',')
            .filter(Boolean)
            .flatMap(expandRange),
          examples: String(examples ?? '')
            .split(', ')
            .filter(Boolean),
        })),
      }
    },
    'POST /v1/infer': async (q, b, ab) => {
      const m = model((b.model as string) ?? q.get('model'))
      const prompt = checkPrompt('prompt', b.prompt)
      const top = intParam(b.top ?? b.top_k, 5, 'top')
      const t0 = performance.now()
      const r = await serialized(ab, () =>
        sql('SELECT token, probability FROM infer($1, $2, $3)', [prompt, top, m.name]),
      )
      return {
        predictions: r.rows.map(([token, p]) => ({ token, probability: Number(p) })),
        latency_ms: performance.now() - t0,
      }
    },
    'POST /v1/rank': async (q, b, ab) => {
      // larql-server's rank (crates/infer-client RankResponse): candidates by
      // similar_to(candidate, query), best first
      const m = model((b.model as string) ?? q.get('model'))
      const query = checkPrompt('query', b.query)
      if (!Array.isArray(b.candidates) || b.candidates.length > 10_000)
        throw new HttpError(400, '"candidates" must be an array of at most 10000 strings')
      const candidates = b.candidates.map((c, i) => checkPrompt(`candidates[${i}]`, c))
      const top = intParam(b.top_k ?? b.top, 0, 'top_k')
      const t0 = performance.now()
      const r = await serialized(ab, () =>
        sql('SELECT similar_to_many($1, $2, $3)', [candidates, query, m.name]),
      )
      const scores = String(r.rows[0]?.[0] ?? '{}')
        .slice(1, -1)
        .split(',')
        .filter(Boolean)
        .map((x) => (x === 'NULL' ? 0 : Number(x)))
      let results = scores
        .map((score, index) => ({ index, score }))
        .sort((x, y) => y.score - x.score || x.index - y.index)
      if (top > 0) results = results.slice(0, top)
      return { results, latency_ms: performance.now() - t0 }
    },
    'POST /v1/embed': async (q, b, ab) => {
      const m = model((b.model as string) ?? q.get('model'))
      const text = checkPrompt('text', b.text ?? b.prompt ?? b.input)
      const t0 = performance.now()
      const r = await serialized(ab, () => sql('SELECT infer_embedding($1, $2)', [text, m.name]))
      const literal = String(r.rows[0]?.[0] ?? '{}')
      return {
        model: m.name,
        embedding: literal.slice(1, -1).split(',').filter(Boolean).map(Number),
        latency_ms: performance.now() - t0,
      }
    },
    'POST /v1/warmup': async (q, b, ab) => {
      const m = model((b.model as string) ?? q.get('model'))
      const entities = Array.isArray(b.entities) ? b.entities.map(String) : []
      for (const e of entities) checkPrompt('entities[]', e)
      const t0 = performance.now()
      await serialized(ab, () => sql('SELECT infer_warmup($1, $2)', [m.name, entities]))
      return { warmed: entities.length, already_cached: 0, latency_ms: performance.now() - t0 }
    },
    'GET /v1/cache/stats': async (q, _b, ab) => {
      const m = model(q.get('model'))
      const r = await serialized(ab, () =>
        sql('SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0) FROM infer_stats($1)', [
          m.name,
        ]),
      )
      const loaded = await serialized(ab, () =>
        sql('SELECT coalesce(sum(bytes), 0) FROM infer_loaded_models()', []),
      )
      return {
        entries: models.size,
        hit_count: Number(r.rows[0]?.[0] ?? 0),
        miss_count: 0,
        eviction_count: 0,
        memory_bytes: Number(loaded.rows[0]?.[0] ?? 0),
      }
    },
    'GET /v1/pglite/server': async () => stats(),
    'POST /v1/pglite/call': async (_q, b, ab) => {
      const m = model(typeof b.model === 'string' ? b.model : undefined)
      const fn = String(b.function ?? '')
      if (!CALLABLE_FUNCTIONS.has(fn))
        throw new HttpError(
          400,
          `function "${fn}" cannot be called remotely (callable: ${[...CALLABLE_FUNCTIONS].join(', ')})`,
          'bad_function',
          '42883',
        )
      if (!Array.isArray(b.args) || b.args.length > 16)
        throw new HttpError(400, '"args" must be an array of at most 16 {type, value}')
      const modelArg = intParam(b.model_arg, -1, 'model_arg', 15)
      const casts: string[] = []
      const params: unknown[] = []
      b.args.forEach((a: unknown, i: number) => {
        const arg = (a ?? {}) as { type?: unknown; value?: unknown }
        const type = String(arg.type ?? '')
        if (!CALLABLE_TYPES.has(type))
          throw new HttpError(400, `argument ${i + 1}: type "${type}" is not accepted`)
        let value = arg.value === undefined || arg.value === null ? null : String(arg.value)
        if (i === modelArg) value = m.name
        else if (value !== null && Buffer.byteLength(value) > maxPrompt) {
          counters.rejected_too_large++
          throw new HttpError(
            413,
            `argument ${i + 1} is ${Buffer.byteLength(value)} bytes; this server accepts at most ${maxPrompt}`,
            'too_large',
            '54000',
          )
        }
        params.push(value)
        casts.push(`$${i + 1}::${type}`)
      })
      const settings = (b.settings ?? {}) as Record<string, string>
      const timeoutMs = Number(b.timeout_ms) || undefined
      const r = await serialized(ab, () =>
        sql(`SELECT * FROM ${fn}(${casts.join(', ')})`, params, { settings, timeoutMs }),
      )
      return { columns: r.fields.map((f) => f.name), rows: r.rows }
    },
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++
    let gone = false
    res.on('close', () => {
      if (!res.writableEnded) gone = true
    })
    const t0 = Date.now()
    let status = 200
    let payload: unknown
    try {
      if (closing) throw new HttpError(503, 'the model server is shutting down', 'shutting_down')
      const url = new URL(req.url ?? '/', 'http://localhost')
      const route = routes[`${req.method} ${url.pathname}`]
      if (!route) {
        const known = Object.keys(routes).some((k) => k.endsWith(` ${url.pathname}`))
        throw new HttpError(
          known ? 405 : 404,
          known
            ? `${req.method} is not allowed on ${url.pathname}`
            : `no endpoint ${url.pathname} (see docs/remote-models.md)`,
          known ? 'method_not_allowed' : 'not_found',
        )
      }
      const body = req.method === 'POST' ? await readJson(req, maxBody, counters) : {}
      payload = await route(url.searchParams, body, () => gone)
    } catch (e) {
      counters.errors++
      if (e instanceof HttpError) {
        status = e.status
        payload = {
          error: e.message,
          code: e.code,
          ...(e.sqlstate ? { sqlstate: e.sqlstate } : {}),
        }
      } else {
        // an SQL error from pg_infer: its SQLSTATE travels to the client
        const err = e as { code?: string; message?: string }
        const sqlstate =
          typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : 'XX000'
        status =
          sqlstate === '57014'
            ? 504
            : sqlstate.startsWith('22') || sqlstate.startsWith('42')
              ? 400
              : 500
        payload = { error: String(err.message ?? e), code: 'sql_error', sqlstate }
      }
    }
    if (options.log)
      process.stderr.write(`${req.method} ${req.url} ${status} ${Date.now() - t0}ms\n`)
    if (gone) {
      // dropped before it ran, or ran (bounded by the client's remaining
      // time as statement_timeout) with nobody left to answer
      counters.abandoned++
      return
    }
    const text = JSON.stringify(payload)
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    res.end(text)
  }

  const server: Server = createServer((req, res) => {
    void handle(req, res)
  })
  server.requestTimeout = 0
  server.headersTimeout = 30_000
  server.keepAliveTimeout = 5_000

  let url: string
  if (options.socket) {
    const path = resolve(options.socket)
    if (existsSync(path)) unlinkSync(path) // a stale socket of an earlier run
    await new Promise<void>((ok, fail) => server.once('error', fail).listen(path, ok))
    url = `unix://${path}`
  } else {
    const host = options.host ?? '127.0.0.1'
    await new Promise<void>((ok, fail) =>
      server.once('error', fail).listen(options.port ?? 8080, host, ok),
    )
    const addr = server.address()
    const port = typeof addr === 'object' && addr ? addr.port : options.port
    url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  }

  return {
    url,
    db,
    stats,
    async close() {
      if (closing) return
      closing = true
      server.close()
      server.closeIdleConnections?.()
      while (running > 0 || queue.length > 0) await new Promise((r) => setTimeout(r, 10))
      server.closeAllConnections?.()
      await db.close()
      if (options.socket && existsSync(resolve(options.socket))) {
        try {
          unlinkSync(resolve(options.socket))
        } catch {
          // already gone
        }
      }
    },
  }
}

function parseLayers(v: string | null): number[] | undefined {
  if (!v) return undefined
  const out = v
    .split(',')
    .filter(Boolean)
    .flatMap((p) => expandRange(p.trim()))
  if (out.some((n) => !Number.isInteger(n) || n < 0 || n > 4096))
    throw new HttpError(400, `"layers" must be N, N-M or a comma list of them, not "${v}"`)
  return out
}

function expandRange(p: string): number[] {
  const m = /^(\d+)-(\d+)$/.exec(p)
  if (!m) return [Number(p)]
  const a = Number(m[1])
  const b = Math.min(Number(m[2]), a + 4096)
  return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i)
}

async function readJson(
  req: IncomingMessage,
  max: number,
  counters: { rejected_too_large: number },
): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) {
    counters.rejected_too_large++
    req.resume()
    throw new HttpError(
      413,
      `request body of ${declared} bytes is larger than this server accepts (${max})`,
      'too_large',
      '54000',
    )
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > max) {
      counters.rejected_too_large++
      req.resume()
      throw new HttpError(
        413,
        `request body is larger than this server accepts (${max} bytes)`,
        'too_large',
        '54000',
      )
    }
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch (e) {
    throw new HttpError(
      400,
      `request body is not a JSON object: ${(e as Error).message}`,
      'bad_json',
    )
  }
}

/** Starts a server and stops it on SIGINT / SIGTERM (the CLI's `serve`). */
export async function serveUntilSignal(options: ModelServerOptions): Promise<ModelServer> {
  const server = await startModelServer(options)
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`pglite-infer serve: ${signal}, finishing requests and stopping\n`)
    void server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  return server
}
