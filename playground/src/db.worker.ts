/**
 * The playground's database: PGlite with pg_infer (and pg_trgm, pgvector)
 * in this Web Worker, so queries never block the page. The page calls the
 * DbApi (api.ts) through comlink; SQL travels as text, results as rows.
 */
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import * as Comlink from 'comlink'
import { pgInfer } from 'pglite-infer'
import { vector } from 'pglite-infer/vector'
import type { DbApi, OpenResult, Progress, QueryResult } from './api.js'

const DATA_DIR = 'idb://pglite-infer-playground'

function create(dataDir: string | undefined) {
  return PGlite.create({ dataDir, extensions: { infer: pgInfer, pg_trgm, vector } })
}
type Db = Awaited<ReturnType<typeof create>>

let db: Db | undefined

/*
 * A failure inside PGlite's start (e.g. a Content-Security-Policy that
 * forbids compiling WebAssembly) surfaces as an unhandled rejection here
 * while PGlite.create never settles: open() races it against this.
 */
let fail: (e: unknown) => void = () => {}
const fatal = new Promise<never>((_, reject) => (fail = reject))
self.addEventListener('unhandledrejection', (e) => fail(e.reason))
self.addEventListener('error', (e) => fail(e.error ?? new Error(e.message)))
/** The page's base URL: public/ files (model, sample data) live under it. */
let base = self.location.href

function need(): Db {
  if (!db) throw new Error('the database is not open yet')
  return db
}

function result(
  rows: Record<string, unknown>[],
  fields: { name: string }[],
  t0: number,
): QueryResult {
  return { rows, fields: fields.map((f) => f.name), ms: performance.now() - t0 }
}

async function fetchBytes(url: URL, stage: string, onProgress: (p: Progress) => void) {
  const res = await fetch(url)
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`)
  const total = Number(res.headers.get('content-length') ?? 0)
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let done = 0
  for (;;) {
    const { value, done: end } = await reader.read()
    if (end) break
    chunks.push(value)
    done += value.length
    onProgress({ stage, done, total })
  }
  const out = new Uint8Array(done)
  let o = 0
  for (const c of chunks) {
    out.set(c, o)
    o += c.length
  }
  return out
}

async function loadJson<T>(path: string): Promise<T> {
  const res = await fetch(new URL(path, base))
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

const api: DbApi = {
  async open(memory, pageBase) {
    base = pageBase
    db = await Promise.race([create(memory ? undefined : DATA_DIR), fatal])
    await db.exec(`create extension if not exists pg_infer;
                   create extension if not exists pg_trgm;
                   create extension if not exists vector;
                   create extension if not exists pg_infer_vector;`)
    const { rows } = await db.query<{ pg: string; ext: string; vec: string; persisted: boolean }>(
      `select version() as pg, infer_version() as ext,
              (select extversion from pg_extension where extname = 'vector') as vec,
              exists (select 1 from infer.models where name = 'countries') as persisted`,
    )
    const r = rows[0]!
    const open: OpenResult = {
      persisted: r.persisted,
      postgres: r.pg,
      pgInfer: r.ext,
      vector: r.vec,
    }
    return open
  },

  async loadDemo(onProgress) {
    const d = need()
    const { rows } = await d.query("select 1 from infer.models where name = 'countries'")
    if (rows.length === 0) {
      const url = new URL('models/countries.vindex.tar.gz', base)
      const bytes = await fetchBytes(url, 'downloading the model', onProgress)
      onProgress({ stage: 'registering the model', done: 0, total: 1 })
      await d.infer.createModel('countries', bytes, { level: 'inference' })
    }
    await d.exec("set infer.default_model = 'countries'")
    const { rows: have } = await d.query<{ t: string | null }>(
      "select to_regclass('public.sentences')::text as t",
    )
    if (have[0]!.t === null) {
      onProgress({ stage: 'loading the sample tables', done: 0, total: 1 })
      const facts =
        await loadJson<{ subject: string; relation: string; object: string; template: string }[]>(
          'data/facts.json',
        )
      const sentences = await loadJson<string[]>('data/sentences.json')
      await d.transaction(async (tx) => {
        await tx.exec(`create table facts (subject text, relation text, object text, template text);
                       create table sentences (id int primary key, body text not null,
                                               embed vector(256));`)
        await tx.query(
          `insert into facts select * from jsonb_to_recordset($1::jsonb)
             as f(subject text, relation text, object text, template text)`,
          [JSON.stringify(facts)],
        )
        await tx.query(
          'insert into sentences select ord, body from unnest($1::text[]) with ordinality as t(body, ord)',
          [sentences],
        )
        for (const f of facts.filter(
          (x, i, a) => a.findIndex((y) => y.relation === x.relation) === i,
        ))
          await tx.query("select infer_add_relation('countries', $1, $2)", [f.relation, f.template])
      })
      onProgress({ stage: 'building the indexes', done: 0, total: 1 })
      await d.exec(`update sentences set embed = infer_embed(body);
                    create index sentences_body on sentences using infer (body) with (model = 'countries');
                    create index sentences_trgm on sentences using gin (body gin_trgm_ops);
                    create index sentences_embed on sentences using hnsw (embed vector_cosine_ops);`)
    }
    onProgress({ stage: 'ready', done: 1, total: 1 })
  },

  async uploadModel(name, bytes, level) {
    return await need().infer.createModel(name, bytes, { level })
  },

  async addModelFromUrl(name, url, level, onProgress) {
    return await need().infer.createModel(name, new URL(url, base).href, {
      level,
      store: 'database',
      onProgress: (p) =>
        onProgress({
          stage: `downloading ${p.file} (${p.filesDone + 1} of ${p.files})`,
          done: p.done,
          total: p.total,
        }),
    })
  },

  async useCompute(backend) {
    const d = need()
    // a compute worker must be running before the database thread waits on it
    const client = backend === 'webgpu' ? d.infer.webgpu : d.infer.compute
    await client.start()
    const served = client.probe()
    await d.exec(`set infer.compute = '${backend}'`)
    return `${served.name || served.vendor}${served.software ? ' (software)' : ''}`
  },

  async query(sql, params = []) {
    const t0 = performance.now()
    const r = await need().query<Record<string, unknown>>(sql, params)
    return result(r.rows, r.fields, t0)
  },

  async exec(sql) {
    const t0 = performance.now()
    const all = await need().exec(sql)
    const last = all[all.length - 1]
    return result((last?.rows ?? []) as Record<string, unknown>[], last?.fields ?? [], t0)
  },
}

Comlink.expose(api)
