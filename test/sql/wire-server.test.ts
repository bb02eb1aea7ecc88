/**
 * PostgreSQL clients over the wire (docs/deployment.md): `pglite-infer serve
 * --pg-port 0 --data-dir DIR` as a child process, queried with Debian's psql
 * (postgresql-client, installed by .ci/run) and with node-postgres (pg);
 * describe / walk / infer / <~> answer exactly as an in-process PGlite with
 * the same vindex. PGlite is one session: a second client is refused with a
 * PostgreSQL error, or (--pg-max-connections 2) shares the session, its
 * queries queued.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from '../helpers/db.js'
import { repoPath } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

const run = promisify(execFile)
const CLI = repoPath('packages/cli/dist/main.js')

interface Wire {
  port: number
  child: ChildProcess
  stop(): Promise<number | null>
}

const started: Wire[] = []

function serveWire(args: string[]): Promise<Wire> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr!.on('data', (d) => (err += String(d)))
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += String(d)
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (!line || !out.includes('\n')) return
      const w: Wire = {
        port: JSON.parse(line).port,
        child,
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode)
            child.once('exit', (code) => done(code))
            child.kill('SIGTERM')
          }),
      }
      started.push(w)
      resolve(w)
    })
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)))
  })
}

/** psql -At: one line per row, columns joined by |. */
async function psql(port: number, sql: string): Promise<string> {
  const { stdout } = await run(
    'psql',
    [
      '-X',
      '-At',
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-U',
      'postgres',
      '-d',
      'postgres',
      '-c',
      sql,
    ],
    { env: { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' } },
  )
  return stdout.trimEnd()
}

/** The same rows as psql -At prints them, from a PGlite in this process. */
async function asPsql(db: PGlite, sql: string): Promise<string> {
  const r = await db.query<unknown[]>(sql, [], {
    rowMode: 'array',
    parsers: Object.fromEntries(
      [16, 20, 21, 23, 25, 700, 701, 1021, 1022, 1009, 1007].map((o) => [o, (v: string) => v]),
    ),
  })
  return r.rows.map((row) => row.map((v) => (v === null ? '' : String(v))).join('|')).join('\n')
}

let vindex: string
let wire: Wire
let local: PGlite

// %M: the model name; the wire server registers the vindex as "qwen", the
// in-process database as "qwen" too, so the statements are the same text
const QUERIES = [
  "select * from describe('France', 'qwen')",
  "select * from walk('The capital of France is', 8, 'qwen')",
  "select * from infer('The capital of France is', 5, 'qwen')",
  "select similar_to('France', 'Germany', 'qwen') as s",
  "select 'France' <~> 'Germany' as d",
]

beforeAll(async () => {
  vindex = await fixtureVindex('f16', 'inference')
  const dataDir = join(scratchDir('wire'), 'pgdata')
  wire = await serveWire([
    '--pg-port',
    '0',
    '--data-dir',
    dataDir,
    `qwen=${vindex}`,
    '--level',
    'inference',
  ])
  local = await openDb()
  await local.query("select infer_create_model('qwen', $1, 'inference')", [vindex])
  await local.exec("set infer.default_model = 'qwen'")
}, 120_000)

afterAll(async () => {
  await local?.close()
  for (const w of started) await w.stop()
})

describe('psql and node-postgres against serve --pg-port', () => {
  it.each(QUERIES)('psql: %s', async (q) => {
    const sql = q.includes('<~>') ? `set infer.default_model = 'qwen'; ${q}` : q
    const expected = await asPsql(local, q)
    expect(expected.length).toBeGreaterThan(0)
    // psql -c with two statements prints the last one's rows (SET prints nothing with -At... it prints "SET")
    const out = await psql(wire.port, sql)
    expect(out.replace(/^SET\n/, '')).toBe(expected)
  })

  it('node-postgres: the same rows, typed', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: wire.port,
      user: 'postgres',
      database: 'postgres',
    })
    await client.connect()
    try {
      await client.query("set infer.default_model = 'qwen'")
      for (const q of QUERIES) {
        const remote = await client.query({ text: q, rowMode: 'array' })
        const r = await local.query<unknown[]>(q, [], { rowMode: 'array' })
        // pg parses int4/float8 as numbers and float4 as numbers too; compare as text
        expect(
          remote.rows.map((row: unknown[]) => row.map(String)),
          q,
        ).toEqual(r.rows.map((row) => row.map(String)))
      }
      // a bound parameter through the extended protocol
      const p = await client.query('select * from walk($1, $2, $3)', ['Paris', 3, 'qwen'])
      const l = await local.query("select * from walk('Paris', 3, 'qwen')")
      expect(p.rows).toEqual(l.rows)
      // an error is an error, and the connection keeps working
      await expect(client.query("select * from walk('x', 3, 'nope')")).rejects.toMatchObject({
        code: '42704',
      })
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      await client.end()
    }
  })

  it('a second client while one is connected: refused with 53300, clearly', async () => {
    const first = new pg.Client({ host: '127.0.0.1', port: wire.port, user: 'postgres' })
    await first.connect()
    try {
      const e = await psql(wire.port, 'select 1').catch((x: { stderr: string; code: number }) => x)
      expect(typeof e).toBe('object')
      const failure = e as { stderr: string; code: number }
      expect(failure.code).toBe(2)
      expect(failure.stderr).toContain('too many clients')
      expect(failure.stderr).toContain('single-connection')
      const second = new pg.Client({ host: '127.0.0.1', port: wire.port, user: 'postgres' })
      await expect(second.connect()).rejects.toMatchObject({ code: '53300' })
      expect((await first.query('select 2 as two')).rows).toEqual([{ two: 2 }])
    } finally {
      await first.end()
    }
    // the slot is free again
    await new Promise((r) => setTimeout(r, 100))
    expect(await psql(wire.port, 'select 3')).toBe('3')
  })

  it('--pg-max-connections 2: two clients share the one session, queries queued', async () => {
    const shared = await serveWire([
      '--pg-port',
      '0',
      '--pg-max-connections',
      '2',
      `qwen=${vindex}`,
    ])
    const a = new pg.Client({ host: '127.0.0.1', port: shared.port, user: 'postgres' })
    const b = new pg.Client({ host: '127.0.0.1', port: shared.port, user: 'postgres' })
    await Promise.all([a.connect(), b.connect()])
    try {
      const q = "select * from walk('Paris', 5, 'qwen')"
      const [ra, rb] = await Promise.all([a.query(q), b.query(q)])
      expect(ra.rows).toEqual(rb.rows)
      expect(ra.rows).toEqual((await local.query(q)).rows)
      // one session: a setting made by one client is seen by the other
      await a.query('set infer.describe_top_k = 2')
      expect((await b.query('show infer.describe_top_k')).rows).toEqual([
        { 'infer.describe_top_k': '2' },
      ])
    } finally {
      await Promise.all([a.end(), b.end()])
    }
    expect(await shared.stop()).toBe(0)
  })

  it('the data directory persists: a restart finds the model and the tables', async () => {
    const dir = join(scratchDir('wire-persist'), 'pgdata')
    let w = await serveWire(['--pg-port', '0', '--data-dir', dir, `qwen=${vindex}`])
    await psql(w.port, "create table notes (body text); insert into notes values ('France')")
    expect(await w.stop()).toBe(0)
    w = await serveWire(['--pg-port', '0', '--data-dir', dir, `qwen=${vindex}`])
    expect(await psql(w.port, 'select body from notes')).toBe('France')
    expect(await psql(w.port, "select name from infer_models() where name = 'qwen'")).toBe('qwen')
    expect(await w.stop()).toBe(0)
  })
})
