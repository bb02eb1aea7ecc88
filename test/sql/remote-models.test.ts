/**
 * Remote models (docs/remote-models.md): `pglite-infer serve` as a child
 * process (a server in this process could not answer while a SQL call blocks
 * it), registered with infer_create_model_remote over TCP and a Unix socket;
 * every query function answers exactly as a local registration of the same
 * vindex. Then the failures: server down, wrong scheme, garbage, slow
 * (infer.remote_timeout_ms and statement_timeout), server limits, shutdown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'
import { RemoteCancel } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { repoPath } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

interface Child {
  url: string
  child: ChildProcess
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

const children: Child[] = []

/** Starts a child process that prints {"listening": url} when ready. */
function startChild(args: string[]): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d) => (err += String(d)))
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += String(d)
      // a complete line only: a long one arrives in several chunks
      const line = out
        .split('\n')
        .slice(0, -1)
        .find((l) => l.startsWith('{'))
      if (!line || children.some((c) => c.child === child)) return
      const c: Child = {
        url: JSON.parse(line).listening,
        child,
        stop: (signal = 'SIGTERM') =>
          new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode)
            child.once('exit', (code) => done(code))
            child.kill(signal)
          }),
      }
      children.push(c)
      resolve(c)
    })
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)))
  })
}

const CLI = repoPath('packages/cli/dist/main.js')
const serve = (...args: string[]) => startChild([CLI, 'serve', ...args])
const fake = (mode: string) => startChild([repoPath('test/helpers/fake-model-server.mjs'), mode])

let vindex: string
let server: Child
let socketServer: Child
let socketPath: string
let db: PGlite

async function stillWorks(d = db): Promise<void> {
  expect((await d.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }])
}

beforeAll(async () => {
  vindex = await fixtureVindex('f16', 'inference')
  socketPath = join(mkdtempSync(join(tmpdir(), 'pgi-sock-')), 'models.sock')
  ;[server, socketServer] = await Promise.all([
    serve(`qwen=${vindex}`, '--port', '0', '--level', 'inference'),
    serve(`qwen=${vindex}`, '--socket', socketPath, '--level', 'inference'),
  ])
  db = await openDb()
  await db.query("select infer_create_model('loc', $1, 'inference')", [vindex])
  await db.query('select infer_create_model_remote($1, $2)', ['qwen', server.url])
  await db.query('select infer_create_model_remote($1, $2)', ['sock', `unix://${socketPath}#qwen`])
}, 120_000)

afterAll(async () => {
  await db?.close()
  await Promise.all(children.map((c) => c.stop('SIGKILL')))
})

/** Each function, with %M for the model; local and remote rows must be equal. */
const QUERIES = [
  "select * from walk('The capital of France is', 8, %M)",
  "select * from describe('France', %M)",
  "select * from describe('France', %M, 0.3)",
  "select * from infer('The capital of France is', 5, %M)",
  "select similar_to('France', 'Germany', %M) as s",
  "select implies('France', 'Paris', %M) as i",
  "select infer_distance('France', 'Germany', %M) as d",
  "select similar_to_many(array['Germany', 'Paris', 'cat'], 'France', %M) as s",
  "select * from infer_signatures(array['France', 'Paris'], %M)",
  "select * from infer_signature_dots('France', array[5, 17, 300], %M)",
  "select * from describe_layers('France', %M)",
  "select * from nearest_to('France', 3, 5, %M)",
  "select * from infer_explain_walk('The capital of France is', 3, %M)",
  'select * from infer_show_layers(%M)',
  'select * from infer_show_features(2, NULL, NULL, 5, %M)',
  'select * from infer_show_relations(%M)',
  'select * from infer_layer_bands(%M)',
  "select infer_embedding('France', %M) as e",
]

describe('remote models answer as local ones', () => {
  it.each(QUERIES)('%s', async (q) => {
    const local = (await db.query(q.replaceAll('%M', "'loc'"))).rows
    const tcp = (await db.query(q.replaceAll('%M', "'qwen'"))).rows
    const uds = (await db.query(q.replaceAll('%M', "'sock'"))).rows
    expect(local.length).toBeGreaterThan(0)
    expect(tcp).toEqual(local)
    expect(uds).toEqual(local)
  })

  it('infer.default_model, the operators and forwarded settings', async () => {
    const q =
      "select 'France' <~> 'Germany' as d, infer_similarity('France', 'Germany') as s, " +
      "'France' @> 'Paris' as i"
    await db.exec("set infer.default_model = 'loc'")
    const local = (await db.query(q)).rows
    await db.exec("set infer.default_model = 'qwen'")
    expect((await db.query(q)).rows).toEqual(local)
    // a setting that changes describe() travels with the call
    await db.exec('set infer.describe_top_k = 3')
    const remote = (await db.query("select * from describe('France')")).rows
    await db.exec("set infer.default_model = 'loc'")
    expect((await db.query("select * from describe('France')")).rows).toEqual(remote)
    await db.exec('reset infer.describe_top_k; reset infer.default_model')
  })

  it('registry, server stats, and what needs a local model', async () => {
    const models = await db.query<{ name: string; backend: string; server_url: string }>(
      "select name, backend, server_url, source, layers from infer_models() where name in ('qwen', 'sock') order by name",
    )
    expect(models.rows).toEqual([
      { name: 'qwen', backend: 'remote', server_url: server.url, source: 'qwen', layers: 6 },
      {
        name: 'sock',
        backend: 'remote',
        server_url: `unix://${socketPath}#qwen`,
        source: 'qwen',
        layers: 6,
      },
    ])
    const stats = await db.query<{ stat_name: string; stat_value: string }>(
      "select * from infer_server_stats('qwen')",
    )
    const byName = Object.fromEntries(stats.rows.map((r) => [r.stat_name, r.stat_value]))
    expect(byName.layers).toBe('6')
    expect(byName.server).toBe('pglite-infer')
    expect(Number(byName.requests)).toBeGreaterThan(0)
    expect((await db.query("select * from infer_server_stats('loc')")).rows).toEqual([])
    // nothing of a remote model is loaded here
    expect(
      (await db.query("select name from infer_loaded_models() where name in ('qwen','sock')")).rows,
    ).toEqual([])
    await stillWorks()
  })

  it('the column index on a remote model ranks as a local one (index scan = sorted scan)', async () => {
    const words = ['France', 'Paris', 'Germany', 'Berlin', 'cat', 'dog', 'Spain', 'the river']
    await db.exec(
      'create table rdocs (id int primary key, body text); create table ldocs (like rdocs)',
    )
    const rows = words.map((w, i) => `(${i + 1}, '${w}')`).join(', ')
    await db.exec(
      `insert into rdocs values ${rows}, (99, null); insert into ldocs select * from rdocs`,
    )
    await db.exec("create index rdocs_body on rdocs using infer (body) with (model = 'qwen')")
    await db.exec("create index ldocs_body on ldocs using infer (body) with (model = 'loc')")
    // rows after the build go through aminsert (one remote infer_signatures call each)
    await db.exec("insert into rdocs values (20, 'Madrid'), (21, 'Italy')")
    await db.exec("insert into ldocs values (20, 'Madrid'), (21, 'Italy')")
    const ranked = async (table: string, model: string, index: boolean) => {
      await db.exec(
        `set infer.default_model = '${model}'; set enable_seqscan = ${index ? 'off' : 'on'}; ` +
          `set enable_indexscan = ${index ? 'on' : 'off'}`,
      )
      const q = `select id, body <~> 'France' as d from ${table} order by body <~> 'France'`
      const plan = (await db.query<{ 'QUERY PLAN': string }>(`explain ${q}`)).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n')
      expect(plan.includes(`Index Scan using ${table}_body`), plan).toBe(index)
      const r = (await db.query(q)).rows
      await db.exec('reset infer.default_model; reset enable_seqscan; reset enable_indexscan')
      return r
    }
    const local = await ranked('ldocs', 'loc', false)
    expect(local).toHaveLength(words.length + 3)
    expect(await ranked('rdocs', 'qwen', true)).toEqual(local)
    expect(await ranked('ldocs', 'loc', true)).toEqual(local)
    expect(await ranked('rdocs', 'qwen', false)).toEqual(local)
    // the server computed the query's dots: the client loaded nothing
    expect(
      (await db.query("select name from infer_loaded_models() where name = 'qwen'")).rows,
    ).toEqual([])
    await db.exec('drop table rdocs; drop table ldocs')
    await stillWorks()
  })

  it('a second database and a second process share the one server', async () => {
    const rss = async () =>
      ((await (await fetch(`${server.url}/v1/pglite/server`)).json()) as { rss_bytes: number })
        .rss_bytes
    const before = await rss()
    const other = await openDb()
    try {
      await other.query('select infer_create_model_remote($1, $2)', ['m', server.url + '#qwen'])
      const q = "select * from walk('Paris', 5, %M)"
      expect((await other.query(q.replaceAll('%M', "'m'"))).rows).toEqual(
        (await db.query(q.replaceAll('%M', "'loc'"))).rows,
      )
    } finally {
      await other.close()
    }
    const script = `
      import { Worker } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'
import { RemoteCancel } from 'pglite-infer'
      import { pgInfer } from 'pglite-infer'
      const db = await PGlite.create({ extensions: { pgInfer } })
      await db.exec('CREATE EXTENSION pg_infer')
      await db.query('select infer_create_model_remote($1, $2)', ['m', ${JSON.stringify(server.url)}])
      const r = await db.query("select * from walk('Paris', 5, 'm')")
      process.stdout.write(JSON.stringify({ listening: r.rows }) + '\\n')
      await db.close()`
    // a file in the repository, so that 'pglite-infer' resolves (and not `node -e`,
    // whose flags worker threads inherit)
    const file = join(scratchDir('remote-child'), 'client.mjs')
    writeFileSync(file, script)
    const c = await startChild([file])
    await c.stop()
    expect(c.url).toEqual((await db.query("select * from walk('Paris', 5, 'loc')")).rows)
    // one copy: two more clients did not make the server load the model again
    // (a copy of this fixture is about 17 MiB; docs/benchmarks-remote.md, table 4)
    expect((await rss()) - before).toBeLessThan(16 * 2 ** 20)
  })

  it('infer_create_models_remote and infer_detect_server', async () => {
    expect(
      (
        await db.query("select infer_create_models_remote(array['a1', 'a2'], $1) as n", [
          server.url,
        ])
      ).rows,
    ).toEqual([{ n: 2 }])
    await db.exec(`set infer.default_server_url = '${server.url}'`)
    expect((await db.query('select infer_detect_server() as u')).rows).toEqual([{ u: server.url }])
    await db.exec("select infer_drop_model('a1'); select infer_drop_model('a2')")
    await db.exec('reset infer.default_server_url')
  })
})

describe('a real larql-server: calls mapped onto its endpoints', () => {
  it('walk, describe, infer, layers and bands answer as local; the rest is 0A000', async () => {
    const proxy = await startChild([repoPath('test/helpers/larql-proxy.mjs'), server.url])
    await db.query('select infer_create_model_remote($1, $2)', ['lq', `${proxy.url}#qwen`])
    const same = [
      "select * from walk('The capital of France is', 8, %M)",
      "select * from describe('France', %M)",
      "select * from describe('France', %M, 0.3)",
      "select * from infer('The capital of France is', 5, %M)",
      'select * from infer_show_layers(%M)',
      'select * from infer_layer_bands(%M)',
    ]
    for (const q of same) {
      const local = (await db.query(q.replaceAll('%M', "'loc'"))).rows
      expect(local.length, q).toBeGreaterThan(0)
      expect((await db.query(q.replaceAll('%M', "'lq'"))).rows, q).toEqual(local)
    }
    // implies as pg_infer's RemoteBackend answers it: a describe edge to the object
    const edges = (
      await db.query<{ target: string }>("select target from describe('France', 'loc')")
    ).rows
    expect(
      (await db.query("select implies('France', $1, 'lq') as i", [edges[0]!.target])).rows,
    ).toEqual([{ i: true }])
    expect(
      (await db.query("select * from infer_show_relations('lq')")).rows.length,
    ).toBeGreaterThan(0)
    const e = await sqlError(db, "select similar_to('France', 'Germany', 'lq')")
    expect(e.code).toBe('0A000')
    expect(e.message).toContain('larql-server has no endpoint')
    const paths = await (await fetch(`${proxy.url}/count`)).json()
    expect(Object.keys(paths).sort()).toEqual(
      ['/v1/describe', '/v1/infer', '/v1/relations', '/v1/stats', '/v1/walk'].sort(),
    )
    await db.query("select infer_drop_model('lq')")
    await proxy.stop()
    await stillWorks()
  })
})

describe('failures give clear errors and the session keeps working', () => {
  it('registration: bad scheme, unknown model, server down, duplicate', async () => {
    let e = await sqlError(db, "select infer_create_model_remote('x', 'ftp://h/')")
    expect(e.code).toBe('22023')
    e = await sqlError(db, 'select infer_create_model_remote($1, $2)', ['x', server.url + '#nope'])
    expect(e.code).toBe('42704')
    expect(e.message).toContain('"nope" is not served here')
    e = await sqlError(db, "select infer_create_model_remote('x', 'http://127.0.0.1:9')")
    expect(e.code).toBe('08001')
    expect(e.message).toContain('http://127.0.0.1:9')
    e = await sqlError(db, "select infer_create_model_remote('x', 'uds:///nonexistent/x.sock')")
    expect(e.code).toBe('08001')
    e = await sqlError(db, 'select infer_create_model_remote($1, $2)', ['qwen', server.url])
    expect(e.code).toBe('42710')
    await stillWorks()
  })

  it('a server that went away: 08001, then fine again', async () => {
    const s = await serve(`qwen=${vindex}`, '--port', '0')
    await db.query('select infer_create_model_remote($1, $2)', ['gone', s.url])
    expect((await db.query("select similar_to('a', 'b', 'gone') as s")).rows).toHaveLength(1)
    expect(await s.stop()).toBe(0) // graceful: SIGTERM exits 0
    const e = await sqlError(db, "select * from walk('Paris', 5, 'gone')")
    expect(e.code).toBe('08001')
    expect(e.message).toContain(s.url)
    await stillWorks()
    await db.query("select infer_drop_model('gone')")
  })

  it('garbage, a wrong shape and a server error: XX001 / 08006', async () => {
    for (const [mode, code] of [
      ['garbage', 'XX001'],
      ['shape', 'XX001'],
      ['error', '08006'],
    ] as const) {
      const f = await fake(mode)
      await db.query('select infer_create_model_remote($1, $2)', [`f_${mode}`, f.url])
      const e = await sqlError(db, `select * from walk('Paris', 5, 'f_${mode}')`)
      expect(e.code, mode).toBe(code)
      expect(e.message).toContain(f.url)
      await stillWorks()
    }
  })

  it('a slow server: infer.remote_timeout_ms (08006) and statement_timeout (57014) within 100 ms', async () => {
    const f = await fake('slow')
    await db.query('select infer_create_model_remote($1, $2)', ['slow', f.url])
    await db.exec('set infer.remote_timeout_ms = 300; set infer.remote_retries = 0')
    let t0 = performance.now()
    let e = await sqlError(db, "select similar_to('a', 'b', 'slow')")
    expect(e.code).toBe('08006')
    expect(performance.now() - t0).toBeLessThan(2000)
    await db.exec('reset infer.remote_timeout_ms; reset infer.remote_retries')
    const late: number[] = []
    for (let i = 0; i < 5; i++) {
      await db.exec('set statement_timeout = 200')
      t0 = performance.now()
      e = await sqlError(db, "select similar_to('a', 'b', 'slow')")
      late.push(performance.now() - t0 - 200)
      await db.exec('reset statement_timeout')
      expect(e.code).toBe('57014')
    }
    // measured from the statement's start, so the round trip of the query is included
    expect(Math.max(...late)).toBeLessThan(100)
    // the server saw the abandoned requests go
    await new Promise((r) => setTimeout(r, 200))
    const count = await (await fetch(`${f.url}/count`)).json()
    expect(count.aborted).toBeGreaterThanOrEqual(5)
    await stillWorks()
  })
})

describe('application-level cancel (RemoteCancel, an AbortSignal)', () => {
  it('ends an in-flight remote call within 100 ms with 57014; the server sees the request go', async () => {
    const f = await fake('slow')
    const cancel = new RemoteCancel()
    const file = join(scratchDir('remote-cancel'), 'db-worker.mjs')
    writeFileSync(
      file,
      `
      import { parentPort, workerData } from 'node:worker_threads'
      import { PGlite } from '@electric-sql/pglite'
      import { createPgInfer, RemoteCancel } from 'pglite-infer'
      const db = await PGlite.create({
        extensions: { infer: createPgInfer({ remoteCancel: RemoteCancel.from(workerData.cancel) }) },
      })
      await db.exec('CREATE EXTENSION pg_infer; SET infer.remote_retries = 0')
      await db.query('select infer_create_model_remote($1, $2)', ['slow', workerData.url])
      parentPort.on('message', async (sql) => {
        try {
          const r = await db.query(sql)
          parentPort.postMessage({ rows: r.rows, t: Date.now() })
        } catch (e) {
          parentPort.postMessage({ code: e.code, message: e.message, t: Date.now() })
        }
      })
      parentPort.postMessage({ ready: true })`,
    )
    // execArgv: [], not the test runner's flags (its module hooks)
    const worker = new Worker(file, {
      workerData: { cancel: cancel.buffer, url: f.url },
      execArgv: [],
    })
    const next = () =>
      new Promise<{ code?: string; message?: string; rows?: unknown[]; t: number }>((ok) =>
        worker.once('message', ok),
      )
    try {
      await next() // ready
      expect(cancel.cancel()).toBe(false) // nothing in flight
      const late: number[] = []
      for (let i = 0; i < 5; i++) {
        const controller = new AbortController()
        const unfollow = cancel.follow(controller.signal)
        const answer = next()
        worker.postMessage("select similar_to('a', 'b', 'slow') as s")
        for (let n = 0; !cancel.inFlight && n < 2500; n++)
          await new Promise((r) => setTimeout(r, 2))
        expect(cancel.inFlight).toBe(true)
        await new Promise((r) => setTimeout(r, 50))
        const t0 = Date.now()
        controller.abort()
        const r = await answer
        late.push(r.t - t0)
        unfollow()
        expect(r.code).toBe('57014')
        expect(r.message).toContain('user request')
      }
      expect(Math.max(...late)).toBeLessThan(100)
      // the session goes on
      const again = next()
      worker.postMessage('select 1 as one')
      expect((await again).rows).toEqual([{ one: 1 }])
      await new Promise((r) => setTimeout(r, 200))
      const count = await (await fetch(`${f.url}/count`)).json()
      expect(count.aborted).toBeGreaterThanOrEqual(5)
    } finally {
      await worker.terminate()
      await f.stop()
    }
  })
})

describe('the server itself', () => {
  it('speaks the larql-server subset (crates/infer-client DTOs)', async () => {
    const get = async (path: string) => {
      const r = await fetch(server.url + path)
      expect(r.status, path).toBe(200)
      return r.json()
    }
    expect(await get('/v1/health')).toMatchObject({ status: 'ok' })
    const stats = await get('/v1/stats')
    expect(stats).toMatchObject({ model: 'qwen', layers: 6, hidden_size: 256, vocab_size: 2595 })
    expect(stats.layer_bands.knowledge).toHaveLength(2)
    const d = await get('/v1/describe?entity=France&limit=5')
    expect(d.entity).toBe('France')
    expect(d.edges.length).toBeLessThanOrEqual(5)
    for (const e of d.edges) {
      expect(typeof e.target).toBe('string')
      expect(typeof e.gate_score).toBe('number')
      expect(Number.isInteger(e.layer)).toBe(true)
    }
    const w = await get('/v1/walk?prompt=Paris&top=3')
    expect(w.hits).toHaveLength(3)
    expect(Object.keys(w.hits[0]).sort()).toEqual(['feature', 'gate_score', 'layer', 'target'])
    const w12 = await get('/v1/walk?prompt=Paris&top=3&layers=3')
    expect(w12.hits.every((h: { layer: number }) => h.layer === 3)).toBe(true)
    const rel = await get('/v1/relations')
    expect(rel.relations[0]).toMatchObject({ token: expect.any(String), count: expect.any(Number) })
    const inf = await (
      await fetch(server.url + '/v1/infer', {
        method: 'POST',
        body: JSON.stringify({ prompt: 'The capital of France is', top: 3, mode: 'dense' }),
      })
    ).json()
    expect(inf.predictions).toHaveLength(3)
    expect(typeof inf.predictions[0].probability).toBe('number')
    const warm = await (
      await fetch(server.url + '/v1/warmup', {
        method: 'POST',
        body: JSON.stringify({ entities: ['France'] }),
      })
    ).json()
    expect(warm).toMatchObject({ warmed: 1 })
    expect(await get('/v1/cache/stats')).toMatchObject({ entries: 1 })
    expect((await fetch(server.url + '/v1/bogus')).status).toBe(404)
  })

  it("replays the request and response shapes of pg_infer's crates/infer-client (types.rs)", async () => {
    // each DTO as serde reads it: [type, required] per field (#[serde(default)]: not required)
    type Field = [string | Spec, boolean]
    interface Spec {
      [field: string]: Field
    }
    const LAYER_BANDS: Spec = {
      syntax: ['[usize;2]', false],
      knowledge: ['[usize;2]', false],
      output: ['[usize;2]', false],
    }
    const DTO: Record<string, Spec> = {
      StatsResponse: {
        model: ['String', true],
        family: ['String', false],
        layers: ['usize', true],
        hidden_size: ['usize', true],
        vocab_size: ['usize', false],
        extract_level: ['String', false],
        layer_bands: [LAYER_BANDS, false],
      },
      DescribeResponse: {
        entity: ['String', true],
        model: ['String', false],
        edges: [
          {
            '[]': [
              {
                target: ['String', true],
                relation: ['String', false],
                gate_score: ['f32', true],
                layer: ['usize', true],
                also: ['Vec<String>', false],
                source: ['Option<String>', false],
              },
              true,
            ],
          },
          false,
        ],
        latency_ms: ['f64', false],
      },
      WalkResponse: {
        prompt: ['String', true],
        model: ['String', false],
        hits: [
          {
            '[]': [
              {
                layer: ['usize', true],
                feature: ['usize', true],
                gate_score: ['f32', true],
                target: ['String', false],
                relation: ['Option<String>', false],
              },
              true,
            ],
          },
          false,
        ],
        latency_ms: ['f64', false],
      },
      RelationsResponse: {
        relations: [
          {
            '[]': [
              {
                token: ['String', true],
                count: ['usize', true],
                max_score: ['f32', false],
                layers: ['Vec<usize>', false],
                examples: ['Vec<String>', false],
              },
              true,
            ],
          },
          false,
        ],
      },
      RankResponse: {
        results: [{ '[]': [{ index: ['usize', true], score: ['f64', true] }, true] }, false],
        latency_ms: ['f64', false],
      },
      InferResponse: {
        predictions: [
          { '[]': [{ token: ['String', true], probability: ['f64', true] }, true] },
          false,
        ],
        latency_ms: ['f64', false],
      },
      WarmupResponse: {
        warmed: ['usize', false],
        already_cached: ['usize', false],
        latency_ms: ['f64', false],
      },
      CacheStatsResponse: {
        entries: ['usize', false],
        hit_count: ['u64', false],
        miss_count: ['u64', false],
        eviction_count: ['u64', false],
        memory_bytes: ['usize', false],
      },
    }
    const isUint = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0
    const check = (where: string, v: unknown, t: string | Spec): void => {
      if (typeof t !== 'string') {
        if ('[]' in t) {
          expect(Array.isArray(v), where).toBe(true)
          ;(v as unknown[]).forEach((x, i) => check(`${where}[${i}]`, x, t['[]']![0]))
          return
        }
        expect(typeof v === 'object' && v !== null && !Array.isArray(v), where).toBe(true)
        for (const [k, [ft, required]] of Object.entries(t)) {
          const x = (v as Record<string, unknown>)[k]
          if (x === undefined) {
            expect(required, `${where}.${k} is required`).toBe(false)
            continue
          }
          check(`${where}.${k}`, x, ft)
        }
        return
      }
      const ok: Record<string, (x: unknown) => boolean> = {
        String: (x) => typeof x === 'string',
        usize: isUint,
        u64: isUint,
        f32: (x) => typeof x === 'number' && Number.isFinite(x),
        f64: (x) => typeof x === 'number' && Number.isFinite(x),
        'Vec<String>': (x) => Array.isArray(x) && x.every((y) => typeof y === 'string'),
        'Vec<usize>': (x) => Array.isArray(x) && x.every(isUint),
        '[usize;2]': (x) => Array.isArray(x) && x.length === 2 && x.every(isUint),
        'Option<String>': (x) => x === null || typeof x === 'string',
      }
      expect(ok[t]!(v), `${where}: ${JSON.stringify(v)} is not ${t}`).toBe(true)
    }
    // the requests exactly as infer-client / RemoteBackend sends them
    const replay = async (dto: string, path: string, body?: unknown) => {
      const r = await fetch(server.url + path, {
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      expect(r.status, path).toBe(200)
      const v = await r.json()
      check(dto, v, DTO[dto]!)
      return v
    }
    await replay('StatsResponse', '/v1/stats')
    const d = await replay('DescribeResponse', '/v1/describe?entity=France&limit=20')
    expect(d.edges.length).toBeGreaterThan(0)
    await replay('DescribeResponse', '/v1/describe?entity=France&limit=20&min_score=0.3')
    const w = await replay(
      'WalkResponse',
      '/v1/walk?prompt=The%20capital%20of%20France%20is&top=10',
    )
    expect(w.hits).toHaveLength(10)
    await replay('WalkResponse', '/v1/walk?prompt=France&top=5&layers=3')
    await replay('RelationsResponse', '/v1/relations')
    const rank = await replay('RankResponse', '/v1/rank', {
      query: 'France',
      candidates: ['Germany', 'cat', 'Paris'],
      top_k: 2,
    })
    expect(rank.results).toHaveLength(2)
    const inf = await replay('InferResponse', '/v1/infer', {
      prompt: 'The capital of France is',
      top: 5,
      mode: 'dense',
    })
    expect(inf.predictions).toHaveLength(5)
    await replay('WarmupResponse', '/v1/warmup', { entities: ['France', 'Paris'] })
    await replay('CacheStatsResponse', '/v1/cache/stats')
    // rank's scores are similar_to's
    const top = (
      await db.query<{ s: number[] }>(
        "select similar_to_many(array['Germany', 'cat', 'Paris'], 'France', 'loc') as s",
      )
    ).rows[0]!.s
    expect(rank.results[0].score).toBe(Math.max(...top))
  })

  it('limits: 413 for a large body or prompt, 400 for bad input', async () => {
    let r = await fetch(server.url + '/v1/infer', {
      method: 'POST',
      body: JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) }),
    })
    expect(r.status).toBe(413)
    expect((await r.json()).code).toBe('too_large')
    r = await fetch(server.url + `/v1/walk?prompt=${'x'.repeat(70 * 1024)}`)
    expect([413, 431]).toContain(r.status)
    r = await fetch(server.url + '/v1/pglite/call', {
      method: 'POST',
      body: JSON.stringify({ function: 'pg_sleep', args: [] }),
    })
    expect(r.status).toBe(400)
    r = await fetch(server.url + '/v1/infer', { method: 'POST', body: '{not json' })
    expect(r.status).toBe(400)
    // from SQL: the server's limit is a clear error
    const e = await sqlError(db, "select similar_to(repeat('x', 100000), 'b', 'qwen')")
    expect(e.code).toBe('54000')
    await stillWorks()
  })

  it('a 10 MB prompt, 200 concurrent requests, a client leaving mid-request: clear answers, no crash', async () => {
    const s = await serve(`qwen=${vindex}`, '--port', '0')
    // 10 MB: refused before the body is read (413), and from SQL a clear 54000
    const big = 'x'.repeat(10 * 1024 * 1024)
    const r = await fetch(s.url + '/v1/infer', {
      method: 'POST',
      body: JSON.stringify({ prompt: big }),
    })
    expect(r.status).toBe(413)
    expect(await r.json()).toMatchObject({ code: 'too_large', sqlstate: '54000' })
    await db.query('select infer_create_model_remote($1, $2)', ['load', s.url])
    const e = await sqlError(db, "select * from walk(repeat('x', 10 * 1024 * 1024), 5, 'load')")
    expect(e.code).toBe('54000')
    expect(e.message).toContain(s.url)
    await stillWorks()
    // 200 at once: every one answered (200, or 503 when the queue is full)
    const statuses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        fetch(`${s.url}/v1/walk?prompt=Paris${i % 7}&top=3`).then((x) => x.status),
      ),
    )
    const ok = statuses.filter((x) => x === 200).length
    expect(ok + statuses.filter((x) => x === 503).length).toBe(200)
    expect(ok).toBeGreaterThan(0)
    // clients that leave mid-request: the server drops or discards their work and goes on
    const before = (await (await fetch(`${s.url}/v1/pglite/server`)).json()).abandoned
    // 20 at once, the last 10 given up while they wait their turn
    const controllers = Array.from({ length: 20 }, () => new AbortController())
    const done = controllers.map((c, i) =>
      fetch(`${s.url}/v1/relations?i=${i}`, { signal: c.signal }).then(
        (x) => x.status,
        () => 'aborted',
      ),
    )
    await new Promise((x) => setTimeout(x, 20))
    for (const c of controllers.slice(10)) c.abort()
    const outcomes = await Promise.all(done)
    expect(outcomes.slice(0, 10).every((x) => x === 200)).toBe(true)
    expect(outcomes.slice(10).filter((x) => x === 'aborted').length).toBeGreaterThan(0)
    // and clients that send half a request body and hang up
    const { hostname, port } = new URL(s.url)
    for (let i = 0; i < 3; i++) {
      const sock = connect(Number(port), hostname)
      await new Promise((x) => sock.once('connect', x))
      sock.write(
        'POST /v1/pglite/call HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
          'content-length: 1000\r\n\r\n{"model":"qwen","function":"walk","args":[',
      )
      await new Promise((x) => setTimeout(x, 20))
      sock.destroy()
    }
    await new Promise((x) => setTimeout(x, 500))
    const after = await (await fetch(`${s.url}/v1/pglite/server`)).json()
    expect(after.abandoned - before).toBeGreaterThanOrEqual(1)
    expect(after.running).toBe(0)
    expect(after.queued).toBe(0)
    expect((await db.query("select * from walk('Paris', 5, 'load')")).rows).toEqual(
      (await db.query("select * from walk('Paris', 5, 'loc')")).rows,
    )
    await db.query("select infer_drop_model('load')")
    expect(await s.stop()).toBe(0)
  })

  it('40 concurrent requests all get an answer; SIGTERM finishes in-flight work and exits 0', async () => {
    // PGlite runs each request to its end before the server reads the next, so
    // the queue (and its 503) only fills where the database yields; every
    // concurrent request is answered in turn
    const s = await serve(`qwen=${vindex}`, '--port', '0', '--queue-limit', '0')
    const statuses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        fetch(`${s.url}/v1/relations?i=${i}`).then((r) => r.status),
      ),
    )
    expect(statuses.every((x) => x === 200 || x === 503)).toBe(true)
    const inflight = fetch(`${s.url}/v1/relations`).then((r) => r.status)
    await new Promise((r) => setTimeout(r, 20))
    const code = await s.stop('SIGTERM')
    expect(code).toBe(0)
    expect([200, 503]).toContain(await inflight)
  })
})
